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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

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


def _timeline_sql(v: ViewSource) -> str:
    cols = ", ".join(q(f) for f in v.features)
    return f"""
        with src as (
            select {q(JOIN_KEY)}, {EVENT_TS}, {CREATED_TS}, greatest({EVENT_TS}, {CREATED_TS}) as _e, {cols}
            from read_parquet('{v.path}')),
        grp as (  -- the best row becoming visible at each (firm, e)
            select * from src qualify row_number() over (
                partition by {q(JOIN_KEY)}, _e order by {EVENT_TS} desc, {CREATED_TS} desc) = 1),
        run as (
            select *, max(struct_pack(a := {EVENT_TS}, b := {CREATED_TS})) over (
                partition by {q(JOIN_KEY)} order by _e rows between unbounded preceding and 1 preceding) as _prev
            from grp)
        select * exclude (_prev) from run
        where _prev is null or struct_pack(a := {EVENT_TS}, b := {CREATED_TS}) > _prev"""


def point_in_time_join(entity_df: pd.DataFrame, views: Sequence[ViewSource],
                       timestamp_col: str = "event_timestamp", threads: int | None = None) -> pd.DataFrame:
    """entity_df (uscc, timestamp_col) enriched with `<view>__<feature>` columns as known at each row."""
    con = duckdb.connect()
    if threads:
        con.execute(f"set threads = {int(threads)}")
    ent = entity_df[[JOIN_KEY, timestamp_col]].copy()
    ts = pd.to_datetime(ent[timestamp_col])
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ent["_t"] = ts.astype("datetime64[us]")
    ent["_row"] = range(len(ent))
    con.register("_ent_df", ent[[JOIN_KEY, "_t", "_row"]])
    con.execute("create temp table _ent as select * from _ent_df")
    out = pa.Table.from_pandas(entity_df.reset_index(drop=True), preserve_index=False)
    for v in views:
        ttl = (f" and tl.{EVENT_TS} >= e._t - interval '{int(v.ttl.total_seconds())} seconds'"
               if v.ttl else "")
        sel = ", ".join(f"case when tl._e is not null{ttl} then tl.{q(f)} end as {q(v.name + '__' + f)}"
                        for f in v.features)
        tab = con.sql(f"""
            with tl as ({_timeline_sql(v)})
            select {sel} from _ent e asof left join tl on e.{q(JOIN_KEY)} = tl.{q(JOIN_KEY)} and e._t >= tl._e
            order by e._row""").to_arrow_table()
        for name in tab.column_names:
            out = out.append_column(name, tab.column(name))
    con.close()
    return out.to_pandas()
