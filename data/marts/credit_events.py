"""The firm's own serious credit events (ratings_and_signals.md §0) as of each month end.

A firm with an event known within the last 12 months is in default: rated D, never scored by a model
(the rating model is trained without such rows). Publishing this as a mart lets the online answer, the
offline profile and training apply the same rule from the same feature store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pandas as pd

from data.marts.grid import registered_grid
from data.marts.spec import MartFeature

DEFAULT_WINDOW_DAYS = 365
GROUP = "serious_credit_event"

CREDIT_EVENT_FEATURES: tuple[MartFeature, ...] = (
    MartFeature("in_default", "bool",
                "a serious credit event (E1-E6) became known within the last 365 days: in default, grade D",
                "近365天内出现严重信用事件(E1-E6): 违约, 评级D", "+", GROUP),
    MartFeature("days_since_serious_event", "float", "days since the latest serious credit event became known",
                "距最近一次严重信用事件的天数", "-", GROUP),
    MartFeature("serious_event_triggers", "int", "number of distinct serious-event triggers ever known",
                "已知严重信用事件触发类型数", "+", GROUP),
    MartFeature("last_serious_trigger", "string", "the trigger of the latest serious credit event (E1..E6)",
                "最近一次严重信用事件的触发类型", "none", GROUP),
)


def build_credit_event_mart(con: duckdb.DuckDBPyConnection, months: Sequence[date],
                            events: pd.DataFrame) -> pd.DataFrame:
    """One row per registered firm-month: in default or not, and the firm's event history known by then."""
    grid = registered_grid(con, months)
    out = grid.copy()
    out["in_default"] = False
    out["days_since_serious_event"] = float("nan")
    out["serious_event_triggers"] = 0
    out["last_serious_trigger"] = None
    if len(events) == 0 or len(grid) == 0:
        return out
    ev = events[["uscc", "event_date", "trigger"]].copy()
    ev["event_date"] = pd.to_datetime(ev["event_date"])
    con.register("_zx_grid", grid)
    con.register("_zx_events", ev)
    try:
        agg = con.execute("""
            select g.uscc, g.as_of,
                   max(e.event_date) as last_date,
                   count(distinct e.trigger) as n_triggers,
                   split_part(max(strftime(e.event_date, '%Y-%m-%d') || '|' || e.trigger), '|', 2)
                       as last_trigger
            from _zx_grid g join _zx_events e
              on e.uscc = g.uscc and e.event_date <= cast(g.as_of as timestamp)
            group by g.uscc, g.as_of""").df()
    finally:
        con.unregister("_zx_grid")
        con.unregister("_zx_events")
    if len(agg) == 0:
        return out
    agg["as_of"] = pd.to_datetime(agg["as_of"])
    out["as_of"] = pd.to_datetime(out["as_of"])
    merged = out.drop(columns=["serious_event_triggers", "last_serious_trigger"]).merge(
        agg, on=["uscc", "as_of"], how="left")
    days = (merged["as_of"] - merged["last_date"]).dt.days.astype("float64")
    result = pd.DataFrame({
        "uscc": merged["uscc"], "as_of": merged["as_of"].dt.date,
        "in_default": (days <= DEFAULT_WINDOW_DAYS).fillna(False).astype(bool),
        "days_since_serious_event": days,
        "serious_event_triggers": merged["n_triggers"].fillna(0).astype("int64"),
        "last_serious_trigger": merged["last_trigger"].astype(object).where(merged["last_trigger"].notna(), None),
    })
    return result
