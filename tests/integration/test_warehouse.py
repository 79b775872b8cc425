"""The warehouse on a small simulated world: conservation, idempotence, crash safety, detection."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.warehouse.evaluation import EXPECTED, detection_report
from data.warehouse.ingest import Ingestor, RedeliveryError, ingest_all, list_deliveries
from kernel.catalog import load_catalog

pytestmark = pytest.mark.integration
VIEWS_DB = ("warehouse.duckdb",)   # DuckDB's catalog file of views, rebuilt after every run: not data


def _copy_raw(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "raw", dst / "raw")
    return dst


def test_conservation_holds_on_every_batch(small_warehouse) -> None:
    ws, summary = small_warehouse
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in (ws / "warehouse" / "_manifest").glob("*.json")]
    assert len(manifests) == summary.batches > 0
    for m in manifests:
        assert m["records_in"] == m["accepted"] + m["quarantined"] + m["duplicates"], m["batch_id"]
        assert m["balanced"]
    raw_rows = json.loads((ws / "raw" / "manifest.json").read_text(encoding="utf-8"))["total_rows"]
    assert summary.records_in == raw_rows


def test_reingesting_changes_nothing(small_warehouse, hash_tree, tmp_path: Path) -> None:
    ws, _ = small_warehouse
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    before = hash_tree(copy / "warehouse", skip=VIEWS_DB)
    again = ingest_all(copy)
    assert again.skipped == again.batches
    assert hash_tree(copy / "warehouse", skip=VIEWS_DB) == before


def test_redelivery_with_other_content_is_refused(small_warehouse, tmp_path: Path) -> None:
    ws, _ = small_warehouse
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    d = list_deliveries(copy / "raw", load_catalog())[0]
    d.path.write_bytes(d.path.read_bytes() + b"\n")
    with pytest.raises(RedeliveryError, match=d.batch_id):
        Ingestor(copy).ingest(d)


def test_killed_run_then_rerun_gives_the_same_warehouse(small_world, small_warehouse, hash_tree,
                                                        tmp_path: Path) -> None:
    src, _ = small_world
    ref, _ = small_warehouse
    ws = _copy_raw(src, tmp_path / "ws")
    env = os.environ | {"ZHOUXIN_WORKSPACE": str(ws)}
    proc = subprocess.Popen([sys.executable, "-m", "zhouxin.cli", "data", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifests = ws / "warehouse" / "_manifest"
    deadline = time.time() + 120
    while time.time() < deadline and (not manifests.is_dir() or len(list(manifests.glob("*.json"))) < 20):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(manifests.glob("*.json")))
    total = len(list((ref / "warehouse" / "_manifest").glob("*.json")))
    assert 0 < partial < total, "the run should have been killed part-way"
    ingest_all(ws)
    assert hash_tree(ws / "warehouse", skip=VIEWS_DB) == hash_tree(ref / "warehouse", skip=VIEWS_DB)


def test_dirty_records_are_caught_and_clean_ones_kept(small_warehouse) -> None:
    ws, _ = small_warehouse
    rows, false_rate, _ = detection_report(ws)
    by = {r.defect: r for r in rows}
    caught = sum(by[k].right_rule for k in EXPECTED if k in by)
    injected = sum(by[k].injected for k in EXPECTED if k in by)
    assert injected > 50
    assert caught / injected >= 0.99, {k: (r.injected, r.right_rule, r.outcome_counts) for k, r in by.items()}
    assert false_rate <= 0.001


def test_damaged_delivery_is_quarantined_line_by_line(small_world, tmp_path: Path) -> None:
    src, _ = small_world
    ws = _copy_raw(src, tmp_path / "ws")
    cat = load_catalog()
    deliveries = [d for d in list_deliveries(ws / "raw", cat) if d.fmt == "csv" and d.sub_item == "ent_registration"]
    d = deliveries[0]
    data = d.path.read_bytes()
    lines = data.split(b"\n")
    lines[2] = lines[2].decode("utf-8").encode("gbk")          # a wrongly encoded record
    broken = b"\n".join(lines).rstrip(b"\n")
    d.path.write_bytes(broken[: len(broken) - 25])               # and a file cut mid-record
    res = Ingestor(ws, cat).ingest(d)
    assert res.records_in == res.accepted + res.quarantined + res.duplicates
    q = __import__("pandas").read_parquet(ws / "warehouse" / "_quarantine" / d.sub_item / f"{d.batch_id}.parquet")
    rules = {f for fs in q["failures"] for f in fs}
    assert "*:encoding" in rules and "*:truncated_record" in rules
    assert 3 in set(q["line"]) and any("line 3" in x for x in q["detail"])
