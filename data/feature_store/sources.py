"""Offline sources for Feast: one Parquet file per sub-item and per mart, in the time shape Feast joins on.

Every row carries `event_timestamp` (business time: the period, the event date, or the start of a
version's validity) and `created_ts` (availability: when the platform could first know the row). A late
correction is a second row with the same business time and a later `created_ts`; nothing is collapsed,
so point-in-time retrieval with `filter_by_created_timestamp` sees exactly what was known at each date.
Rows sharing (uscc, event_timestamp, created_ts) in multi-row grains (several shareholders registered
the same day) keep one deterministic row: the source view answers "the latest record known", the
aggregates over all rows live in the marts.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from data.warehouse.rules import q
from kernel.catalog import Catalog, SubItem, load_catalog

EVENT_TS = "event_timestamp"
CREATED_TS = "created_ts"
JOIN_KEY = "uscc"


def business_time_sql(spec: SubItem) -> str:
    """SQL expression for a sub-item's business time (see module docstring)."""
    if spec.grain == "monthly_series":
        return "cast(period_month as timestamp)"
    if spec.grain == "event_list":
        dates = [k for k in spec.key if spec.field(k).dtype == "date"] or \
                [f.name for f in spec.fields if f.dtype == "date"]
        if dates:
            return f"cast(coalesce({q(dates[0])}, _available_date) as timestamp)"
        return "cast(_available_date as timestamp)"
    return "cast(coalesce(_valid_from, _available_date) as timestamp)"


def feature_fields(spec: SubItem) -> list[str]:
    """The sub-item's catalog fields served as features: all but the join key."""
    return [f for f in spec.field_names if f != JOIN_KEY]


def source_path(sources_dir: Path, name: str) -> Path:
    return sources_dir / f"{name}.parquet"


def export_sub_item(con: duckdb.DuckDBPyConnection, spec: SubItem, out: Path) -> int:
    """Write the Feast source of one sub-item from the warehouse view; returns the row count."""
    key_order = ", ".join(f"{q(k)} desc nulls last" for k in spec.key if k != JOIN_KEY) or "_source_line desc"
    cols = ", ".join(q(f) for f in feature_fields(spec))
    tmp = out.with_suffix(".parquet.tmp")
    con.execute(f"""copy (
        select {q(JOIN_KEY)}, {business_time_sql(spec)} as {EVENT_TS},
               cast(_available_date as timestamp) as {CREATED_TS}, {cols}
        from {q(spec.code)}
        qualify row_number() over (partition by {q(JOIN_KEY)}, {EVENT_TS}, {CREATED_TS}
                                   order by {key_order}, _ingest_ts desc, _source_line desc) = 1
        order by {q(JOIN_KEY)}, {EVENT_TS}, {CREATED_TS}
    ) to '{tmp}' (format parquet, compression zstd)""")
    tmp.replace(out)
    return int(con.execute(f"select count(*) from read_parquet('{out}')").fetchall()[0][0])


def export_sources(warehouse_db: Path, sources_dir: Path, catalog: Catalog | None = None) -> dict[str, int]:
    """Export every landed sub-item; sub-items with no landed data get an empty, typed file."""
    catalog = catalog or load_catalog()
    sources_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse_db), read_only=True)
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    counts: dict[str, int] = {}
    try:
        for spec in catalog.sub_items:
            out = source_path(sources_dir, spec.code)
            if spec.code in have:
                counts[spec.code] = export_sub_item(con, spec, out)
            else:
                empty_source(spec).to_parquet(out, index=False)
                counts[spec.code] = 0
    finally:
        con.close()
    return counts


_PANDAS_DTYPE = {"string": "string", "category": "string", "int": "Int64", "float": "float64",
                 "bool": "boolean", "date": "datetime64[us]"}


def empty_source(spec: SubItem) -> pd.DataFrame:
    """A zero-row source frame with the catalog's types (so Feast can still infer and join)."""
    cols: dict[str, pd.Series] = {JOIN_KEY: pd.Series([], dtype="string"),
                                  EVENT_TS: pd.Series([], dtype="datetime64[us]"),
                                  CREATED_TS: pd.Series([], dtype="datetime64[us]")}
    for f in spec.fields:
        if f.name != JOIN_KEY:
            cols[f.name] = pd.Series([], dtype=_PANDAS_DTYPE[f.dtype])
    return pd.DataFrame(cols)


def export_mart(mart: pd.DataFrame, out: Path) -> int:
    """Write a mart (uscc, as_of, features...) as a Feast source: a mart row is known at its as_of."""
    return export_mart_batches([mart], list(mart.columns), out)


def export_mart_batches(batches, columns: list[str], out: Path) -> int:
    """Write a mart arriving in row batches as one Feast source file (atomic rename at the end)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".parquet.tmp")
    writer = None
    rows = 0
    try:
        for batch in batches:
            df = batch[columns].rename(columns={"as_of": EVENT_TS})
            df[EVENT_TS] = pd.to_datetime(df[EVENT_TS]).astype("datetime64[us]")
            df.insert(2, CREATED_TS, df[EVENT_TS])
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += len(df)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError(f"mart for {out.name} produced no batches")
    tmp.replace(out)
    return rows
