"""Point-in-time retrieval on hand-built sources: Feast (DuckDB) and our set-based join agree, and a
late correction never leaks into an earlier training row."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureView, Field, FileSource
from feast.types import Float64

from data.feature_store.definitions import enterprise_entity
from data.feature_store.store import historical_features, open_store
from data.feature_store.training_set import ViewSource, point_in_time_join
from kernel.profile import load_profile

A, B, C = "91330900MA2A00000A", "91330900MA2A00001B", "91330900MA2A00002C"


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def _store(tmp_path: Path, rows: list[tuple], ttl_days: int = 0):
    src = tmp_path / "x.parquet"
    pd.DataFrame(rows, columns=["uscc", "event_timestamp", "created_ts", "x"]).astype(
        {"event_timestamp": "datetime64[us]", "created_ts": "datetime64[us]"}).to_parquet(src, index=False)
    fv = FeatureView(name="v", entities=[enterprise_entity()], ttl=timedelta(days=ttl_days),
                     schema=[Field(name="x", dtype=Float64)],
                     source=FileSource(path=str(src), timestamp_field="event_timestamp",
                                       created_timestamp_column="created_ts"))
    store = open_store(tmp_path, load_profile("local"))
    store.apply([enterprise_entity(), fv])
    view = ViewSource(name="v", path=src, features=("x",), ttl=timedelta(days=ttl_days) if ttl_days else None)
    return store, view


def _entities(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"uscc": [r[0] for r in rows], "event_timestamp": [ts(r[1]) for r in rows]})


def _feast(store, ent: pd.DataFrame, filtered: bool = True) -> list[float | None]:
    if filtered:
        df = historical_features(store, ent, ["v:x"])
    else:
        df = store.get_historical_features(entity_df=ent, features=["v:x"], full_feature_names=True).to_df()
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"]).dt.tz_localize(None)
    out = ent.merge(df, on=["uscc", "event_timestamp"], how="left")["v__x"]
    return [None if pd.isna(v) else float(v) for v in out]


def _ours(view: ViewSource, ent: pd.DataFrame) -> list[float | None]:
    out = point_in_time_join(ent, [view])["v__x"]
    return [None if pd.isna(v) else float(v) for v in out]


def test_late_correction_does_not_leak_into_an_earlier_row(tmp_path):
    # January's value 2.0 arrives on 5 Feb; a correction to 3.0 for the same month arrives on 10 Apr.
    store, view = _store(tmp_path, [(A, ts("2020-01-31"), ts("2020-02-05"), 2.0),
                                    (A, ts("2020-01-31"), ts("2020-04-10"), 3.0)])
    ent = _entities([(A, "2020-03-31"), (A, "2020-04-30"), (A, "2020-01-31")])
    expected = [2.0, 3.0, None]      # known on 31 Mar: 2.0; on 30 Apr: the correction; on 31 Jan: nothing
    assert _feast(store, ent) == expected
    assert _ours(view, ent) == expected
    # Without the created-timestamp filter Feast lets the April correction into March (the pitfall).
    assert _feast(store, ent, filtered=False)[0] == 3.0


def test_point_in_time_rules_agree_with_feast(tmp_path):
    rows = [
        (A, ts("2020-01-31"), ts("2020-01-31"), 1.0),   # event exactly at the entity time counts
        (A, ts("2020-03-31"), ts("2020-04-02"), 2.0),   # a later event, known two days after month end
        (B, ts("2020-02-29"), ts("2020-03-01"), 5.0),
        (B, ts("2020-02-29"), ts("2020-03-05"), 6.0),   # same event time, later created wins once known
        (C, ts("2019-01-31"), ts("2019-02-01"), 9.0),   # stale beyond the TTL below
    ]
    store, view = _store(tmp_path, rows, ttl_days=365)
    ent = _entities([(A, "2020-01-31"), (A, "2020-03-31"), (A, "2020-04-30"), (B, "2020-03-03"),
                     (B, "2020-03-31"), (C, "2019-06-30"), (C, "2020-06-30"), ("91330900MA2A00009X", "2020-06-30")])
    expected = [1.0, 1.0, 2.0, 5.0, 6.0, 9.0, None, None]
    assert _feast(store, ent) == expected
    assert _ours(view, ent) == expected


@pytest.mark.parametrize("dup", [1, 3])
def test_duplicate_entity_rows_all_come_back(tmp_path, dup):
    store, view = _store(tmp_path, [(A, ts("2020-01-31"), ts("2020-01-31"), 1.0)])
    ent = _entities([(A, "2020-02-29")] * dup + [(B, "2020-02-29")])
    assert _ours(view, ent) == [1.0] * dup + [None]
    assert len(historical_features(store, ent, ["v:x"])) == dup + 1
