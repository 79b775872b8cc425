"""A bulk refresh that fails part-way, on a real (tiny) Feast store: the views written before the failure
are recorded in the registry, and the error raised is the one that stopped the write, also when the
registry cannot be written; a registry failure alone names the views it does not know of."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Float64

from data.feature_store.bulk import bulk_materialize
from data.feature_store.training_set import ViewSource

FIRMS = [f"91330900MA{i:08d}" for i in range(6)]


def _source(path: Path, scale: float) -> Path:
    pd.DataFrame({"uscc": FIRMS, "event_timestamp": pd.Timestamp("2023-12-31"),
                  "created_ts": pd.Timestamp("2024-01-02"),
                  "x": [i * scale for i in range(len(FIRMS))]}).to_parquet(path)
    return path


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    config = RepoConfig(project="p", provider="local", registry=str(tmp_path / "registry" / "registry.db"),
                        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
                        offline_store={"type": "duckdb"}, repo_path=tmp_path, entity_key_serialization_version=3)
    (tmp_path / "registry").mkdir()
    firm = Entity(name="enterprise", join_keys=["uscc"], value_type=ValueType.STRING)
    views = [FeatureView(name=name, entities=[firm], schema=[Field(name="x", dtype=Float64)], ttl=timedelta(0),
                         source=FileSource(path=str(_source(tmp_path / f"{name}.parquet", k + 1.0)),
                                           timestamp_field="event_timestamp", created_timestamp_column="created_ts"))
             for k, name in enumerate(("a", "b"))]
    fs = FeatureStore(config=config)
    fs.apply([firm, *views])
    return fs


def _sources(store: FeatureStore) -> list[ViewSource]:
    root = Path(store.config.repo_path)
    return [ViewSource(name, root / f"{name}.parquet", ("x",), None) for name in ("a", "b")]


def _recorded(store: FeatureStore) -> dict[str, int]:
    reread = FeatureStore(config=store.config)
    return {v.name: len(v.materialization_intervals) for v in reread.list_feature_views()}


def test_a_complete_refresh_is_recorded_for_every_view(store):
    written = bulk_materialize(store, _sources(store))
    assert [(r.view, r.entities, r.values) for r in written] == [("a", 6, 6), ("b", 6, 6)]
    assert _recorded(store) == {"a": 1, "b": 1}
    values = store.get_online_features(features=["a:x", "b:x"], entity_rows=[{"uscc": FIRMS[3]}],
                                       full_feature_names=True).to_dict()
    assert (values["a__x"], values["b__x"]) == ([3.0], [6.0])


def test_the_views_written_before_a_failure_are_recorded(store):
    (Path(store.config.repo_path) / "b.parquet").unlink()
    with pytest.raises(duckdb.IOException, match=r"b\.parquet"):
        bulk_materialize(store, _sources(store))
    assert _recorded(store) == {"a": 1, "b": 0}


def test_when_the_registry_fails_too_the_write_error_is_raised_with_a_note(store):
    root = Path(store.config.repo_path)
    (root / "b.parquet").unlink()
    shutil.rmtree(root / "registry")
    with pytest.raises(duckdb.IOException, match=r"b\.parquet") as caught:
        bulk_materialize(store, _sources(store))
    notes = getattr(caught.value, "__notes__", [])
    assert len(notes) == 1 and "1 view(s) (a)" in notes[0] and "registry could not record" in notes[0]


def test_a_registry_failure_alone_names_the_views_it_does_not_know_of(store):
    shutil.rmtree(Path(store.config.repo_path) / "registry")
    with pytest.raises(RuntimeError, match=r"holds the new values of 2 view\(s\) \(a, b\), but the registry"):
        bulk_materialize(store, _sources(store))
    with_values = store.get_online_features(features=["a:x"], entity_rows=[{"uscc": FIRMS[2]}]).to_dict()
    assert with_values["x"] == [2.0]                        # the values themselves were written
