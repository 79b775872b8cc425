"""The whole simulator on a small world: deterministic, every field delivered, dirt at its rates."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from data.simulate.calibration import sub_item_sql
from data.simulate.dirty import DirtyParams
from data.simulate.params import load_module_params
from data.simulate.truth import read_truth
from kernel.catalog import load_catalog

pytestmark = pytest.mark.integration


def test_same_seed_gives_byte_identical_world(small_world, simulate_small, hash_tree, tmp_path: Path) -> None:
    ws, _ = small_world
    again = tmp_path / "again"
    simulate_small(again)
    assert hash_tree(ws, skip=("world.json",)) == hash_tree(again, skip=("world.json",))


def test_other_seed_gives_another_world(small_world, simulate_small, hash_tree, tmp_path: Path) -> None:
    ws, _ = small_world
    other = tmp_path / "other"
    simulate_small(other, seed=8)
    a, b = hash_tree(ws), hash_tree(other)
    assert a["raw/manifest.json"] != b["raw/manifest.json"]


def test_every_catalog_field_is_delivered_with_its_values(small_world) -> None:
    ws, summary = small_world
    cat = load_catalog()
    con = duckdb.connect()
    dirty = read_truth("dirty_log", ws / "truth")
    spoiled = set(zip(dirty["batch_id"], dirty["row_number"], strict=True))
    for spec in cat.sub_items:
        rel = sub_item_sql(ws, cat, spec.code)
        assert rel is not None, f"{spec.code}: no deliveries"
        frame = con.sql(f"select * from {rel}").df()
        assert set(spec.field_names) <= set(frame.columns), spec.code
        frame["_row"] = frame.groupby("_batch_id").cumcount()
        for f in spec.fields:
            if f.dtype != "category":
                continue
            vals = frame[f.name].astype("string")
            bad = vals.notna() & ~vals.isin(list(f.allowed or ()))
            offenders = {(b, r) for b, r in zip(frame.loc[bad, "_batch_id"], frame.loc[bad, "_row"], strict=True)}
            assert offenders <= spoiled, f"{spec.code}.{f.name}: values outside the catalog that were not injected dirt"


def test_dirty_kinds_appear_at_their_rates(small_world) -> None:
    ws, summary = small_world
    dirty = read_truth("dirty_log", ws / "truth")
    p = load_module_params(DirtyParams, "dirty")
    manifest = json.loads((ws / "raw" / "manifest.json").read_text(encoding="utf-8"))
    rows = manifest["rows_by_sub_item"]
    total = sum(rows.values())
    counts = dirty.groupby("defect").size()
    # per-row defects over all tables: within a binomial band of the configured rate
    n2 = counts.get("D2", 0)
    expected = p.uscc_normalisable.rate * total
    assert abs(n2 - expected) < 5 * np.sqrt(expected) + 5
    events = sum(v for k, v in rows.items() if load_catalog().sub_item(k).grain == "event_list")
    n3 = counts.get("D3", 0)
    exp3 = p.exact_duplicate.rate * events
    assert abs(n3 - exp3) < 5 * np.sqrt(exp3) + 5
    # every configured kind that the world's size makes likely actually appears
    for kind in ("D1", "D2", "D3", "D5", "D8a", "D9", "D12", "D13"):
        assert counts.get(kind, 0) > 0, f"{kind} never injected"


def test_truth_tables_exist_and_agree(small_world) -> None:
    ws, _ = small_world
    panel = read_truth("truth_enterprise_month", ws / "truth")
    oracle = read_truth("truth_oracle_pd", ws / "truth")
    assert {"h", "lambda", "tau", "oracle_pd12_approx"} <= set(panel.columns)
    perf = oracle.dropna(subset=["oracle_pd12"])
    assert len(perf) > 0 and perf["oracle_pd12"].between(0, 1).all()
    assert np.corrcoef(perf["oracle_pd12"], perf["oracle_pd12_approx"])[0, 1] > 0.8
    edges = read_truth("truth_edges", ws / "truth")
    assert {"ownership", "guarantee", "trade", "control"} <= set(edges["edge_type"])
    assert (~edges.loc[edges["edge_type"] == "guarantee", "disclosed"]).mean() == pytest.approx(0.3, abs=0.1)
    cascade = read_truth("truth_cascade", ws / "truth")
    assert set(cascade["cause"]) >= {"background", "cascade"}
    assert pd.api.types.is_integer_dtype(cascade["slot"])
