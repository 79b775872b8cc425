"""Judge ingestion against the simulator's own record of what it dirtied (truth/dirty_log).

Evaluation code: the only warehouse module allowed to read truth/. For each defect kind it reports
how many dirtied records were quarantined (and with which rule), normalised, dropped as duplicates or
accepted, and how many clean records were quarantined by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from data.simulate.truth import read_truth

# How each defect kind should be handled, and which rules count as the right one.
EXPECTED = {
    "D1": ("quarantined", {"uscc_check"}),
    "D2": ("normalised", set()),
    "D3": ("duplicate", set()),
    "D4": ("quarantined", {"key_conflict"}),
    "D5": ("quarantined", {"implausible_magnitude", "inconsistent_amounts"}),
    "D6": ("quarantined", {"implausible_magnitude", "inconsistent_amounts"}),
    "D7": ("quarantined", {"range", "inconsistent_amounts"}),
    "D8a": ("quarantined", {"date_order", "date_in_future"}),
    "D8b": ("quarantined", {"date_placeholder"}),
    "D9": ("normalised", set()),
}
UNDETECTABLE = {
    "D10": "shareholder ratios off by <=2% or one holder missing: no single record is wrong; the sum over an "
           "enterprise's active holders is checked in the data-quality report",
    "D11": "a late source-month is valid data delivered late: it lands with its true (later) availability date and "
           "shows up as a freshness breach in the data-quality report",
    "D12": "a revision is a legitimate new version of the same key (更正申报); it lands bitemporally",
    "D13": "a stale snapshot repeats last month's plausible values; only a cross-month comparison can suspect it",
    "D14": "a meter spike is a plausible single reading; detecting it needs the firm's own history (features flag it)",
    "D15": "a mislinked row carries a valid, registered USCC of another firm; nothing in the record reveals it",
}


@dataclass(frozen=True)
class DetectionRow:
    defect: str
    injected: int
    handled_as_expected: int
    right_rule: int
    outcome_counts: str

    @property
    def rate(self) -> float:
        return self.right_rule / self.injected if self.injected else float("nan")


def _line_offset(source_file: str) -> int:
    return 2 if source_file.endswith(".csv") else 1


def detection_report(ws: Path) -> tuple[list[DetectionRow], float, int]:
    """Per defect kind: injected, handled as expected, with the right rule; plus the clean false-quarantine rate."""
    log = read_truth("dirty_log", ws / "truth")
    wh = ws / "warehouse"
    con = duckdb.connect()
    quarantine = con.sql(f"select batch_id, source_file, line, failures from read_parquet('{wh}/_quarantine/**/*.parquet')"
                         ).df() if (wh / "_quarantine").is_dir() else pd.DataFrame(columns=["batch_id", "line", "failures"])
    quarantine = quarantine[quarantine["line"] > 0]
    dups = con.sql(f"select batch_id, line from read_parquet('{wh}/_duplicates/**/*.parquet')").df() \
        if (wh / "_duplicates").is_dir() else pd.DataFrame(columns=["batch_id", "line"])
    norm = con.sql(f"select distinct batch_id, line, field from read_parquet('{wh}/_normalised/**/*.parquet')").df() \
        if (wh / "_normalised").is_dir() else pd.DataFrame(columns=["batch_id", "line", "field"])
    files = {b: f for b, f in zip(quarantine.get("batch_id", []), quarantine.get("source_file", []), strict=False)}
    files |= _batch_files(wh)
    log = log.assign(line=[int(r) + _line_offset(files.get(b, ".parquet")) for b, r in zip(log["batch_id"], log["row_number"], strict=True)])
    qkey = {(b, int(ln)): list(fs) for b, ln, fs in zip(quarantine["batch_id"], quarantine["line"], quarantine["failures"], strict=True)}
    dkey = {(b, int(ln)) for b, ln in zip(dups["batch_id"], dups["line"], strict=True)}
    nkey = {(b, int(ln), f) for b, ln, f in zip(norm["batch_id"], norm["line"], norm["field"], strict=True)}
    rows = []
    for defect, part in log.groupby("defect", sort=True):
        outcome = {"quarantined": 0, "duplicate": 0, "normalised": 0, "accepted": 0}
        expected, rules = EXPECTED.get(str(defect), (None, set()))
        right = 0
        for b, ln, fld in zip(part["batch_id"], part["line"], part["field"], strict=True):
            k = (b, int(ln))
            if k in qkey:
                outcome["quarantined"] += 1
                if expected == "quarantined" and any(f.split(":")[1] in rules for f in qkey[k]):
                    right += 1
            elif k in dkey:
                outcome["duplicate"] += 1
                right += expected == "duplicate"
            elif (b, int(ln), fld) in nkey:
                outcome["normalised"] += 1
                right += expected == "normalised"
            else:
                outcome["accepted"] += 1
        handled = outcome.get(expected, 0) if expected else 0
        rows.append(DetectionRow(str(defect), len(part), handled, right,
                                 ", ".join(f"{k} {v}" for k, v in outcome.items() if v)))
    dirty_keys = set(zip(log["batch_id"], log["line"].astype(int), strict=True))
    total_in = sum(_manifest_counts(wh))
    false_q = sum(1 for k in qkey if k not in dirty_keys)
    clean = total_in - len(dirty_keys)
    return rows, (false_q / clean if clean else 0.0), false_q


def _batch_files(wh: Path) -> dict[str, str]:
    import json

    out = {}
    for p in (wh / "_manifest").glob("*.json"):
        m = json.loads(p.read_text(encoding="utf-8"))
        out[m["batch_id"]] = m["source_file"]
    return out


def _manifest_counts(wh: Path) -> list[int]:
    import json

    return [json.loads(p.read_text(encoding="utf-8"))["records_in"] for p in (wh / "_manifest").glob("*.json")]
