"""Serious credit events (ratings_and_signals.md §0), dated by when the platform could know them.

The event date is the *availability* date of the first trigger, never the business date: a label or a
contagion feature built from it is therefore observable at that date. Triggers:
E1 platform loan 90+ days past due (bank feedback, report date); E2 dishonest-debtor listing;
E3 financial-loan suit against the firm by a bank / non-bank FI; E4 enforcement terminated for lack
of assets; E5 bankruptcy case as debtor; E6 business licence revoked.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

TRIGGER_SQL: dict[str, str] = {
    "E2_dishonest_debtor": "select uscc, min(_available_date) d from dishonest_debtors group by uscc",
    "E3_financial_loan_suit": """select uscc, min(_available_date) d from litigation_cases
        where cause_category = 'financial_loan' and party_role = 'defendant'
          and counterparty_type in ('bank', 'non_bank_fi') group by uscc""",
    "E4_enforcement_no_assets": """select uscc, min(_available_date) d from enforcement_cases
        where status = 'terminated_no_assets' group by uscc""",
    "E5_bankruptcy": """select uscc, min(_available_date) d from litigation_cases
        where case_type = 'bankruptcy' and party_role = 'defendant' group by uscc""",
    "E6_licence_revoked": """select uscc, min(_available_date) d from ent_registration
        where ent_status = 'revoked' group by uscc""",
}


def serious_credit_events(con: duckdb.DuckDBPyConnection, platform: Path | None = None) -> pd.DataFrame:
    """All trigger dates per firm: columns uscc, event_date (availability), trigger.

    One row per (firm, trigger) with the trigger's first availability; a firm may have several
    triggers. Callers wanting "the first event after t" take the min over rows with event_date > t.
    Sub-items absent from the warehouse (a world without court data) contribute nothing.
    """
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    frames = []
    for trigger, sql in TRIGGER_SQL.items():
        table = sql.split(" from ")[1].split()[0]
        if table in have:
            df = con.execute(sql).df().rename(columns={"d": "event_date"})
            df["trigger"] = trigger
            frames.append(df)
    perf = (platform / "loan_performance.parquet") if platform else None
    if perf is not None and perf.exists():
        df = con.execute(f"""select uscc, min(report_date) event_date from read_parquet('{perf}')
                             where dpd >= 90 group by uscc""").df()
        df["trigger"] = "E1_loan_90dpd"
        frames.append(df)
    cols = ["uscc", "event_date", "trigger"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat([f[cols] for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else pd.DataFrame(columns=cols)
    out["event_date"] = pd.to_datetime(out["event_date"]).dt.normalize()
    return out.sort_values(["event_date", "uscc", "trigger"], ignore_index=True)
