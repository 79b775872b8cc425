"""Labels of ratings_and_signals.md §0 on a firm-month grid, from observable serious-credit-event dates.

y_obs_N(t) = 1 if the first event after t falls in (t, t + N days]. A firm with an event in the 12 months
up to t is *in default* (grade D) and leaves the scored population. A row whose horizon runs past the end
of the observed data is *censored*: its label is unknown unless the event already happened.
"""

from __future__ import annotations

import pandas as pd


def label_panel(grid: pd.DataFrame, events: pd.DataFrame, horizon_days: int = 365,
                data_end: pd.Timestamp | None = None, default_window_days: int = 365) -> pd.DataFrame:
    """grid (uscc, as_of) + columns y, in_default, censored, days_to_event (NaN when none follows)."""
    g = grid[["uscc", "as_of"]].copy()
    g["as_of"] = pd.to_datetime(g["as_of"]).astype("datetime64[ns]")
    g["_row"] = range(len(g))
    ev = events[["uscc", "event_date"]].dropna().copy()
    ev["event_date"] = pd.to_datetime(ev["event_date"]).astype("datetime64[ns]")
    ev = ev.drop_duplicates().sort_values("event_date")
    left = g.sort_values("as_of")
    nxt = pd.merge_asof(left, ev.rename(columns={"event_date": "next_event"}), left_on="as_of",
                        right_on="next_event", by="uscc", direction="forward", allow_exact_matches=False)
    prev = pd.merge_asof(left, ev.rename(columns={"event_date": "last_event"}), left_on="as_of",
                         right_on="last_event", by="uscc", direction="backward", allow_exact_matches=True)
    out = nxt.merge(prev[["_row", "last_event"]], on="_row").sort_values("_row")
    days = (out["next_event"] - out["as_of"]).dt.days
    out["y"] = (days <= horizon_days).astype("int8")
    out["days_to_event"] = days
    out["in_default"] = ((out["as_of"] - out["last_event"]).dt.days < default_window_days).fillna(False)
    end = pd.Timestamp(data_end) if data_end is not None else ev["event_date"].max()
    out["censored"] = (out["as_of"] + pd.Timedelta(days=horizon_days) > end) & (out["y"] == 0)
    cols = ["uscc", "as_of", "y", "in_default", "censored", "days_to_event"]
    return out[cols].reset_index(drop=True)
