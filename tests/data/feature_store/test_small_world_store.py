"""The feature store over the small world: registry contents, Feast-equal training sets, online = offline."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from data.feature_store.bulk import bulk_materialize
from data.feature_store.store import feast_materialize, historical_features, online_features
from data.feature_store.training_set import point_in_time_join, view_sources
from kernel.catalog import load_catalog

pytestmark = pytest.mark.integration


def _firms(ws, n: int, seed: int = 3) -> list[str]:
    reg = pd.read_parquet(ws / "features" / "sources" / "ent_registration.parquet", columns=["uscc"])
    firms = sorted(reg["uscc"].unique())
    return list(np.random.default_rng(seed).choice(firms, size=min(n, len(firms)), replace=False))


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    def norm(s: pd.Series) -> pd.Series:
        if pd.api.types.is_datetime64_any_dtype(s) or s.dropna().map(lambda v: hasattr(v, "year")).any():
            s = pd.to_datetime(s, utc=True)
        return s
    a, b = norm(a), norm(b)
    return (a.isna() & b.isna()) | (a == b)


def test_registry_lists_every_source_view_and_service(small_feature_store):
    _, store, defs = small_feature_store
    catalog = load_catalog()
    names = {v.name for v in store.list_feature_views()}
    assert {s.code for s in catalog.sub_items} <= names
    assert {s.name for s in store.list_feature_services()} == {"credit_rating", "risk_signal", "recommender"}
    svc = store.get_feature_service("credit_rating")
    served = {(p.name, f.name) for p in svc.feature_view_projections for f in p.features}
    # every catalog field is served: 255 features + the join key `uscc` of each of the 35 sub-items = 290
    expected = {(s.code, f.name) for s in catalog.sub_items for f in s.fields if f.name != "uscc"}
    assert expected <= served
    assert len(expected) + len(catalog.sub_items) == 290


def test_set_based_training_set_equals_feast(small_feature_store):
    ws, store, _ = small_feature_store
    ent = pd.DataFrame([(u, pd.Timestamp(m)) for u in _firms(ws, 60) for m in ("2018-03-31", "2018-09-30", "2018-12-31")],
                       columns=["uscc", "event_timestamp"])
    feast_df = historical_features(store, ent, "credit_rating")
    feast_df["event_timestamp"] = pd.to_datetime(feast_df["event_timestamp"]).dt.tz_localize(None)
    ours = point_in_time_join(ent, view_sources(store, "credit_rating"))
    merged = ent.merge(feast_df, on=["uscc", "event_timestamp"]).merge(
        ours, on=["uscc", "event_timestamp"], suffixes=("_feast", "_ours"))
    assert len(merged) == len(ent)
    cols = [c for c in feast_df.columns if "__" in c]
    assert len(cols) >= 255
    bad = {c: int((~_same(merged[c + "_feast"], merged[c + "_ours"])).sum()) for c in cols}
    assert not {c: n for c, n in bad.items() if n}
    assert merged[[c + "_ours" for c in cols]].notna().to_numpy().mean() > 0.2   # not vacuous


def test_bulk_online_values_equal_latest_offline_and_feast_materialize(small_feature_store, tmp_path):
    ws, store, defs = small_feature_store
    views = view_sources(store, list(defs.views))
    firms = [*_firms(ws, 80), "91330900MA2A00009X"]          # plus a firm the platform has never seen
    bulk_materialize(store, views, as_of=datetime(2100, 1, 1))
    # the registry knows what was written, as after Feast's materialize (one commit for every view)
    from feast import FeatureStore

    reread = FeatureStore(config=store.config)
    ends = {fv.name: [iv[1].replace(tzinfo=None) for iv in fv.materialization_intervals]
            for fv in reread.list_feature_views()}
    assert {v.name: ends[v.name] for v in views} == {v.name: [datetime(2100, 1, 1)] for v in views}
    online = online_features(store, firms, "credit_rating")
    # the online store keeps the latest value however old (no TTL at read): compare without TTL
    no_ttl = [replace(v, ttl=None) for v in view_sources(store, "credit_rating")]
    latest = point_in_time_join(pd.DataFrame({"uscc": firms, "event_timestamp": pd.Timestamp("2100-01-01")}), no_ttl)
    cols = [c for c in online.columns if "__" in c]
    bad = {c: int((~_same(online[c], latest[c])).sum()) for c in cols}
    assert not {c: n for c, n in bad.items() if n}
    assert online.iloc[-1][cols].isna().all()
    assert online.iloc[:-1][cols].notna().to_numpy().mean() > 0.2

    # Feast's own materialize into a second store writes the same values (the baseline of the benchmark).
    import shutil

    from data.feature_store.store import apply_definitions, open_store
    from kernel.profile import load_profile

    ws2 = tmp_path / "ws2"
    shutil.copytree(ws / "features" / "sources", ws2 / "features" / "sources")
    store2 = open_store(ws2, load_profile("local"))
    apply_definitions(store2, defs)
    feast_materialize(store2, datetime(1900, 1, 1), datetime(2100, 1, 1))
    online2 = online_features(store2, firms, "credit_rating")
    bad2 = {c: int((~_same(online[c], online2[c])).sum()) for c in cols}
    assert not {c: n for c, n in bad2.items() if n}

    # and the tables themselves hold the same rows, byte for byte: value blobs, value_text, both stamps
    import sqlite3

    def table_rows(path, table):
        with sqlite3.connect(path) as con:
            return con.execute(f'select entity_key, feature_name, value, typeof(value), value_text, '
                               f'event_ts, created_ts from "{table}" order by 1, 2').fetchall()

    from data.feature_store.sqlite_layout import is_clustered

    def ddl(path, table):
        with sqlite3.connect(path) as con:
            return con.execute("select sql from sqlite_master where name = ?", (table,)).fetchone()[0]

    for v in views:
        table = f"{store.config.project}_{v.name}"
        ours, feast = table_rows(store.config.online_store.path, table), table_rows(store2.config.online_store.path, table)
        assert len(ours) == len(feast) > 0, v.name
        assert ours == feast, v.name
        # both clustered by the key: the bulk refresh's table, and the one apply declared that Feast filled
        assert is_clustered(ddl(store.config.online_store.path, table)), v.name
        assert is_clustered(ddl(store2.config.online_store.path, table)), v.name

    # Feast's upsert (INSERT ... ON CONFLICT DO UPDATE) over the bulk-written clustered tables: same rows after
    narrow = min(views, key=lambda v: len(v.features)).name
    table = f"{store.config.project}_{narrow}"
    before = table_rows(store.config.online_store.path, table)
    feast_materialize(store, datetime(1900, 1, 1), datetime(2100, 1, 1), views=[narrow])
    assert table_rows(store.config.online_store.path, table) == before
