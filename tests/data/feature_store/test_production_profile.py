"""The production profile against the real servers on 127.0.0.1: Feast SQL registry on PostgreSQL and the
Redis online store. Online values must equal the latest offline values, as in the local profile."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from data.feature_store.bulk import bulk_materialize
from data.feature_store.store import apply_definitions, online_features, open_store
from data.feature_store.training_set import point_in_time_join, view_sources
from kernel.profile import FeastProfile, load_profile

pytestmark = [pytest.mark.integration, pytest.mark.services]


@pytest.fixture()
def production_store(small_feature_store, tmp_path):
    """The small world's definitions in a throw-away project of the production profile."""
    ws, _, defs = small_feature_store
    prod = load_profile("production")
    project = f"zhouxin_test_{os.getpid()}"
    profile = prod.model_copy(update={"feast": FeastProfile(**(prod.feast.model_dump() | {"project": project}))})
    shutil.copytree(ws / "features" / "sources", tmp_path / "features" / "sources")
    store = open_store(tmp_path, profile)
    assert store.config.registry.registry_type == "sql"
    assert store.config.online_store.type == "redis"
    apply_definitions(store, defs)
    yield tmp_path, store, defs
    store.teardown()        # drops the project's Redis keys and its registry rows


def test_registry_on_postgres_and_online_on_redis_equal_offline(production_store, direct_equals_feast):
    ws, store, defs = production_store
    # the registry really lives in PostgreSQL: a fresh store object reads it back from the server
    again = open_store(ws, load_profile("production").model_copy(update={"feast": store_profile(store)}))
    assert {v.name for v in again.list_feature_views()} == set(defs.views)
    reg = pd.read_parquet(ws / "features" / "sources" / "ent_registration.parquet", columns=["uscc"])
    firms = [*np.random.default_rng(5).choice(sorted(reg["uscc"].unique()), 40, replace=False), "91330900MA2A00009X"]
    bulk_materialize(store, view_sources(store, list(defs.views)))
    online = online_features(store, firms, "credit_rating")
    no_ttl = [replace(v, ttl=None) for v in view_sources(store, "credit_rating")]
    latest = point_in_time_join(pd.DataFrame({"uscc": firms, "event_timestamp": pd.Timestamp("2100-01-01")}), no_ttl)
    cols = [c for c in online.columns if "__" in c]
    for c in cols:
        a, b = online[c], latest[c]
        if pd.api.types.is_datetime64_any_dtype(a) or pd.api.types.is_datetime64_any_dtype(b):
            a, b = pd.to_datetime(a, utc=True), pd.to_datetime(b, utc=True)
        assert ((a.isna() & b.isna()) | (a == b)).all(), c
    assert online.iloc[-1][cols].isna().all()
    assert online.iloc[:-1][cols].notna().to_numpy().mean() > 0.2
    assert direct_equals_feast(store, list(firms)) > 40 * 100      # the serving fast path reads Redis identically


def store_profile(store) -> FeastProfile:
    """The FeastProfile a store was opened with (rebuilt from its config)."""
    cfg = store.config
    return FeastProfile(project=cfg.project, registry={"type": "sql", "url": cfg.registry.path},
                        online_store={"type": "redis", "connection_string": cfg.online_store.connection_string},
                        offline_store="duckdb")
