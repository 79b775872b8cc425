"""DuckDB views over the landed Parquet: every version, SCD-2 validity, and as-of snapshots.

Landing is append-only; validity is derived here, so nothing is ever rewritten. For each sub-item:
  <code>          every landed record (business time in its own fields, `_available_date`, `_ingest_ts`)
  <code>_scd      one row per version with `_known_from` / `_known_to`: the next version of the same key
                  (by availability) closes the previous one — SCD-2 on the platform's knowledge time
and the table macro `<code>_as_of(d)` returns what the platform knew on date d (latest version per key
available on or before d). Kept in `warehouse/warehouse.duckdb`, rebuilt after each ingest.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from data.warehouse.rules import q
from kernel.catalog import Catalog, load_catalog


def refresh_views(ws: Path, catalog: Catalog | None = None) -> Path:
    """(Re)create the views for every sub-item that has landed data; returns the database path."""
    catalog = catalog or load_catalog()
    wh = ws / "warehouse"
    path = wh / "warehouse.duckdb"
    tmp = wh / "warehouse.duckdb.tmp"
    if tmp.exists():
        tmp.unlink()
    con = duckdb.connect(str(tmp))
    for spec in catalog.sub_items:
        folder = wh / spec.code
        if not folder.is_dir() or not any(folder.rglob("*.parquet")):
            continue
        key = ", ".join(q(k) for k in spec.key if k != "valid_from") or q("uscc")
        con.execute(f"create or replace view {q(spec.code)} as select * from "
                    f"read_parquet('{folder}/**/*.parquet', hive_partitioning = true, union_by_name = true)")
        con.execute(f"""create or replace view {q(spec.code + '_scd')} as
            select *, _available_date as _known_from,
                   lead(_available_date) over (partition by {key} order by _available_date, _ingest_ts, _source_line)
                   as _known_to
            from {q(spec.code)}""")
        con.execute(f"""create or replace macro {q(spec.code + '_as_of')}(d) as table
            select * exclude (_rk) from (
              select *, row_number() over (partition by {key}
                                           order by _available_date desc, _ingest_ts desc, _source_line desc) as _rk
              from {q(spec.code)} where _available_date <= d) where _rk = 1""")
    con.close()
    tmp.replace(path)
    return path
