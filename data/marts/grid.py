"""The monthly as-of grid every mart is computed on.

A mart row for (uscc, as_of) may only use warehouse rows whose availability date is on or before
`as_of` (month end). The `<code>_scd` views carry `_known_from` / `_known_to`, so "what the platform
knew at as_of" is the set-based filter `known_at(...)` below: one range join over all months at once
instead of one query per month (the shape Spark/Dask also execute well).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from kernel.errors import ZhouxinError


def month_ends(start: str, end: str) -> list[date]:
    """Last calendar day of every month from `start` to `end` (YYYY-MM, inclusive)."""
    idx = pd.period_range(start, end, freq="M")
    if len(idx) == 0:
        raise ZhouxinError(f"empty month range {start}..{end}")
    return [p.end_time.date() for p in idx]


def connect_warehouse(db: Path) -> duckdb.DuckDBPyConnection:
    """Read-only connection to warehouse.duckdb (refuses a missing warehouse with a clear error)."""
    if not db.exists():
        raise ZhouxinError(f"no warehouse at {db}: run `zhouxin data ingest` first")
    con = duckdb.connect(str(db), read_only=True)
    con.execute("set enable_progress_bar = false")   # our own progress display owns the terminal
    return con


def register_months(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> None:
    """Create the temp table `_months(as_of DATE)` used by the set-based as-of joins."""
    con.execute("create or replace temp table _months (as_of date)")
    con.executemany("insert into _months values (?)", [(m,) for m in months])


def known_at(code: str) -> str:
    """SQL: every version of sub-item `code` known at each `_months.as_of` (columns + as_of).

    A version is known from its availability date until the next version of the same key arrives.
    """
    return (f'select m.as_of, s.* from _months m join "{code}_scd" s '
            f"on s._known_from <= m.as_of and (s._known_to is null or s._known_to > m.as_of)")


def registered_grid(con: duckdb.DuckDBPyConnection, months: Sequence[date]) -> pd.DataFrame:
    """(uscc, as_of) for every enterprise registered on the platform's knowledge at each month end.

    Deregistered and moved-out firms drop out; revoked and liquidating firms stay (they are scored
    as in default / capped, not forgotten).
    """
    register_months(con, months)
    return con.execute(f"""
        select uscc, as_of from ({known_at('ent_registration')})
        where ent_status not in ('deregistered', 'moved_out')
        order by as_of, uscc""").df()
