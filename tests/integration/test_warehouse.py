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


def test_torn_batch_is_redone_as_if_it_never_started(small_warehouse, hash_tree, tmp_path: Path) -> None:
    """A kill between renaming a batch's files and writing its manifest leaves files without a manifest:
    the rerun redoes that batch, and its own landed rows must not count as 'already landed'."""
    ws, _ = small_warehouse
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    manifests = sorted((copy / "warehouse" / "_manifest").glob("*.json"))
    torn = [p for p in manifests if json.loads(p.read_text(encoding="utf-8"))["accepted"] > 0][len(manifests) // 2]
    torn.unlink()
    again = ingest_all(copy)
    assert again.batches - again.skipped == 1
    assert hash_tree(copy / "warehouse", skip=VIEWS_DB) == hash_tree(ws / "warehouse", skip=VIEWS_DB)


def test_grouped_reading_lands_what_one_by_one_reading_lands(small_world, small_warehouse, hash_tree,
                                                              tmp_path: Path, monkeypatch) -> None:
    """Batches validated together in one query land exactly what they land when each is read alone."""
    import data.warehouse.ingest as ingest_mod

    src, _ = small_world
    ref, _ = small_warehouse
    alone = ingest_mod.IngestConfig(group_max_bytes=1, group_max_batches=1, read_ahead_batches=0)
    monkeypatch.setattr(ingest_mod, "load_ingest_config", lambda: alone)
    ws = _copy_raw(src, tmp_path / "ws")
    ingest_all(ws)
    assert hash_tree(ws / "warehouse", skip=VIEWS_DB) == hash_tree(ref / "warehouse", skip=VIEWS_DB)


def test_damaged_delivery_in_a_group_falls_back_alone(small_world, small_warehouse, tmp_path: Path) -> None:
    """One damaged file in a group of deliveries read together: that batch goes through the line reader,
    the others of its group land as they do without it, and every batch balances."""
    src, _ = small_world
    ref, _ = small_warehouse
    ws = _copy_raw(src, tmp_path / "ws")
    cat = load_catalog()
    deliveries = [d for d in list_deliveries(ws / "raw", cat) if d.fmt == "csv" and d.sub_item != "ent_registration"]
    d = deliveries[len(deliveries) // 2]
    lines = d.path.read_bytes().split(b"\n")
    lines[2] = lines[2] + b",one field too many"
    d.path.write_bytes(b"\n".join(lines))
    ingest_all(ws)
    def manifests(root: Path) -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (root / "warehouse" / "_manifest").glob("*.json")}
    got, want = manifests(ws), manifests(ref)
    assert got.keys() == want.keys()
    assert all(m["balanced"] for m in got.values())
    assert "*:malformed_record" in got[d.batch_id]["rules"]
    others = [b for b, m in want.items() if m["sub_item"] != d.sub_item]
    assert all({k: v for k, v in got[b].items() if k != "source_sha256"} ==
               {k: v for k, v in want[b].items() if k != "source_sha256"} for b in others)
