"""The firm's own serious credit events as of each month end: in default for 365 days after an event
becomes known, never before it is known."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from data.marts.credit_events import build_credit_event_mart
from data.marts.grid import connect_warehouse, month_ends
from kernel.workspace import warehouse_db

pytestmark = pytest.mark.integration


def test_in_default_for_365_days_after_an_event_is_known(small_warehouse):
    ws, _ = small_warehouse
    con = connect_warehouse(warehouse_db(ws))
    try:
        months = month_ends("2018-01", "2018-12")
        empty = build_credit_event_mart(con, months, pd.DataFrame(columns=["uscc", "event_date", "trigger"]))
        firms = sorted(empty["uscc"].unique())[:3]
        a, b, c = firms
        events = pd.DataFrame({"uscc": [a, a, b], "trigger": ["E2_dishonest_debtor", "E5_bankruptcy", "E4_enforcement_no_assets"],
                               "event_date": pd.to_datetime(["2018-03-15", "2018-08-01", "2017-06-30"])})
        mart = build_credit_event_mart(con, months, events).set_index(["uscc", "as_of"])
    finally:
        con.close()
    assert len(mart) == len(empty) and not empty["in_default"].any()
    assert not mart.loc[(a, date(2018, 2, 28)), "in_default"]                    # not known yet
    row = mart.loc[(a, date(2018, 3, 31))]
    assert row["in_default"] and row["days_since_serious_event"] == 16 and row["serious_event_triggers"] == 1
    assert mart.loc[(a, date(2018, 9, 30)), "last_serious_trigger"] == "E5_bankruptcy"
    assert mart.loc[(a, date(2018, 9, 30)), "serious_event_triggers"] == 2
    assert mart.loc[(b, date(2018, 6, 30)), "in_default"]                        # 365 days after 2017-06-30
    assert not mart.loc[(b, date(2018, 7, 31)), "in_default"]                    # 396 days: cured
    assert mart.loc[(b, date(2018, 7, 31)), "days_since_serious_event"] == 396
    assert not mart.loc[c, "in_default"].any() and mart.loc[c, "days_since_serious_event"].isna().all()
