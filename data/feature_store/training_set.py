"""Point-in-time training sets at warehouse speed: the same answer as Feast's join, set-based in DuckDB.

Feast's duckdb offline store joins every feature row of an entity with every earlier entity row, which
grows as (rows per firm) x (months per firm) x (columns) — fine for hundreds of features, too slow for
a million firm-months x 1,000+ marts columns (benchmarks/bench_features.py measures both). Here each
view first becomes a *knowledge timeline*: a row is visible from e = max(event_timestamp, created_ts),
and the value known at t is the visible row with the greatest (event_timestamp, created_ts) — exactly
Feast's rule with `filter_by_created_timestamp=True`, including TTL (the winner expires first, since it
has the latest event time). The timeline keeps only the rows that change the winner, and one ASOF join
per view attaches it to the entity rows. tests/data/feature_store checks equality with Feast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.feature_store.sources import CREATED_TS, EVENT_TS, JOIN_KEY
from data.warehouse.rules import q


@dataclass(frozen=True)
class ViewSource:
    """What the join needs of one feature view: its name, Parquet source, features and TTL."""

    name: str
    path: Path
    features: tuple[str, ...]
    ttl: timedelta | None


def view_sources(store, service_or_views: str | Sequence[str]) -> list[ViewSource]:
    """Read the join inputs from the Feast registry (a FeatureService name or view names)."""
    if isinstance(service_or_views, str):
        projections = store.get_feature_service(service_or_views).feature_view_projections
        pairs = [(p.name, [f.name for f in p.features]) for p in projections]
    else:
        pairs = [(v, None) for v in service_or_views]
    out = []
    for name, feats in pairs:
        fv = store.get_feature_view(name)
        feats = feats or [f.name for f in fv.features]
        ttl = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
        out.append(ViewSource(name=name, path=Path(fv.batch_source.path), features=tuple(feats), ttl=ttl))
    return out


def _timeline_sql(relation: str) -> str:
    """SQL over a (uscc, event_timestamp, created_ts, _src_row) relation: the rows that change the winner."""
    return f"""
        with src as (select *, greatest({EVENT_TS}, {CREATED_TS}) as _e from {relation}),
        grp as (  -- the best row becoming visible at each (firm, e)
            select * from src qualify row_number() over (
                partition by {q(JOIN_KEY)}, _e order by {EVENT_TS} desc, {CREATED_TS} desc) = 1),
        run as (
            select *, max(struct_pack(a := {EVENT_TS}, b := {CREATED_TS})) over (
                partition by {q(JOIN_KEY)} order by _e rows between unbounded preceding and 1 preceding) as _prev
            from grp)
        select {q(JOIN_KEY)}, _e, {EVENT_TS}, _src_row from run
        where _prev is null or struct_pack(a := {EVENT_TS}, b := {CREATED_TS}) > _prev"""


def _winner_rows(con: duckdb.DuckDBPyConnection, src: pa.Table, ttl: timedelta | None) -> np.ndarray:
    """Per entity row (in _ent order): the source row known then, or -1 (none, or expired by the TTL)."""
    keys = src.select([JOIN_KEY, EVENT_TS, CREATED_TS]).append_column(
        "_src_row", pa.array(np.arange(src.num_rows, dtype=np.int64)))
    con.register("_keys", keys)
    ttl_sql = f" and tl.{EVENT_TS} >= e._t - interval '{int(ttl.total_seconds())} seconds'" if ttl else ""
    rows = con.sql(f"""
        with tl as ({_timeline_sql('_keys')})
        select case when tl._src_row is not null{ttl_sql} then tl._src_row else -1 end as i
        from _ent e asof left join tl on e.{q(JOIN_KEY)} = tl.{q(JOIN_KEY)} and e._t >= tl._e
        order by e._row""").fetchnumpy()["i"]
    con.unregister("_keys")
    return np.asarray(rows, dtype=np.int64)


def iter_point_in_time_join(entity_df: pd.DataFrame, views: Sequence[ViewSource],
                            timestamp_col: str = "event_timestamp") -> Iterator[tuple[str, pa.Table]]:
    """Yield (view, columns `<view>__<feature>` aligned with entity_df's rows), one view at a time.

    The ASOF join carries only keys and a row index; the feature columns are gathered afterwards with
    Arrow `take`, so a view with 1,000+ columns costs one pass over its columns, not a wide join.
    """
    con = duckdb.connect()
    try:
        ent = entity_df[[JOIN_KEY, timestamp_col]].copy()
        ts = pd.to_datetime(ent[timestamp_col])
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        ent["_t"] = ts.astype("datetime64[us]")
        ent["_row"] = np.arange(len(ent))
        con.register("_ent_df", ent[[JOIN_KEY, "_t", "_row"]])
        con.execute("create temp table _ent as select * from _ent_df")
        for v in views:
            src = pq.read_table(v.path, columns=[JOIN_KEY, EVENT_TS, CREATED_TS, *v.features]).combine_chunks()
            idx = _winner_rows(con, src, v.ttl)
            taken = src.select(list(v.features)).take(pa.array(idx, mask=idx < 0))
            yield v.name, taken.rename_columns([f"{v.name}__{f}" for f in v.features])
    finally:
        con.close()


def point_in_time_join(entity_df: pd.DataFrame, views: Sequence[ViewSource],
                       timestamp_col: str = "event_timestamp", as_arrow: bool = False) -> pd.DataFrame | pa.Table:
    """entity_df (uscc, timestamp_col, ...) enriched with `<view>__<feature>` columns as known at each row."""
    out = pa.Table.from_pandas(entity_df.reset_index(drop=True), preserve_index=False)
    for _, cols in iter_point_in_time_join(entity_df, views, timestamp_col):
        for name, col in zip(cols.column_names, cols.columns, strict=True):
            out = out.append_column(name, col)
    return out if as_arrow else out.to_pandas()
