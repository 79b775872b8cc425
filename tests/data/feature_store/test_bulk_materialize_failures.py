"""A bulk refresh that fails part-way, on a real (tiny) Feast store: the views written before the failure
are recorded in the registry, and the error raised is the one that stopped the write, also when the
registry cannot be written; a registry failure alone names the views it does not know of."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from feast import FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64

from data.feature_store.bulk import bulk_materialize, entity_keys
from data.feature_store.definitions import enterprise_entity
from data.feature_store.store import open_store
from data.feature_store.training_set import ViewSource
from kernel.profile import load_profile

FIRMS = [f"91330900MA{i:08d}" for i in range(6)]


def _source(path: Path, scale: float) -> Path:
    pd.DataFrame({"uscc": FIRMS, "event_timestamp": pd.Timestamp("2023-12-31"),
                  "created_ts": pd.Timestamp("2024-01-02"),
                  "x": [i * scale for i in range(len(FIRMS))]}).to_parquet(path)
    return path


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    firm = enterprise_entity()
    views = [FeatureView(name=name, entities=[firm], schema=[Field(name="x", dtype=Float64)], ttl=timedelta(0),
                         source=FileSource(path=str(_source(tmp_path / f"{name}.parquet", k + 1.0)),
                                           timestamp_field="event_timestamp", created_timestamp_column="created_ts"))
             for k, name in enumerate(("a", "b"))]
    fs = open_store(tmp_path, load_profile("local"))
    fs.apply([firm, *views])
    return fs


def _sources(tmp_path: Path) -> list[ViewSource]:
    return [ViewSource(name, tmp_path / f"{name}.parquet", ("x",), None) for name in ("a", "b")]


def _break_registry(store: FeatureStore) -> None:
    """A directory where the registry file was: the next registry write fails (the cached copy still reads)."""
    path = Path(store.config.registry.path)
    path.unlink()
    path.mkdir()


def _recorded(store: FeatureStore) -> dict[str, int]:
    reread = FeatureStore(config=store.config)
    return {v.name: len(v.materialization_intervals) for v in reread.list_feature_views()}


def test_a_complete_refresh_is_recorded_for_every_view(store, tmp_path):
    written = bulk_materialize(store, _sources(tmp_path))
    assert [(r.view, r.entities, r.values) for r in written] == [("a", 6, 6), ("b", 6, 6)]
    assert _recorded(store) == {"a": 1, "b": 1}
    values = store.get_online_features(features=["a:x", "b:x"], entity_rows=[{"uscc": FIRMS[3]}],
                                       full_feature_names=True).to_dict()
    assert (values["a__x"], values["b__x"]) == ([3.0], [6.0])


def test_the_views_written_before_a_failure_are_recorded(store, tmp_path):
    (tmp_path / "b.parquet").unlink()
    with pytest.raises(duckdb.IOException, match=r"b\.parquet"):
        bulk_materialize(store, _sources(tmp_path))
    assert _recorded(store) == {"a": 1, "b": 0}


def test_when_the_registry_fails_too_the_write_error_is_raised_with_a_note(store, tmp_path):
    (tmp_path / "b.parquet").unlink()
    _break_registry(store)
    with pytest.raises(duckdb.IOException, match=r"b\.parquet") as caught:
        bulk_materialize(store, _sources(tmp_path))
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "1 view(s) (a)" in notes[0] and "registry could not record" in notes[0]


def test_a_registry_failure_alone_names_the_views_it_does_not_know_of(store, tmp_path):
    _break_registry(store)
    with pytest.raises(RuntimeError, match=r"holds the new values of 2 view\(s\) \(a, b\), but the registry"):
        bulk_materialize(store, _sources(tmp_path))
    with sqlite3.connect(store.config.online_store.path) as con:     # the values themselves were written
        assert [con.execute(f'select count(*) from "{store.project}_{v}"').fetchone()[0] for v in "ab"] == [6, 6]
        assert con.execute(f'select value_text from "{store.project}_a" where entity_key = ?',
                           entity_keys([FIRMS[2]])).fetchone() == ("2.0",)
