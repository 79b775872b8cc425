"""Calibration report: each target of simulation.md §11 as target / got / pass, from what was delivered.

Rates come from the raw deliveries (read with DuckDB, as the warehouse will see them, dirty rows
included) and from truth/ for latent quantities (default rates, oracle). Platform counts are scaled by
enterprises / 50,000, the spec's scale-1 universe.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from data.simulate.calendar import month_index, month_label
from data.simulate.truth import read_truth
from kernel.catalog import Catalog, load_catalog
from kernel.workspace import reports_dir

SCALE_ONE = 50_000
GRADE_EDGES = (0.0005, 0.0012, 0.0030, 0.0070, 0.020, 0.045, 0.10, 0.20)
GRADES = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C")


@dataclass(frozen=True)
class TargetResult:
    name: str
    expected: str
    got: str
    passed: bool | None       # None: not applicable at this stage / no data


def sub_item_sql(ws: Path, catalog: Catalog, code: str) -> str | None:
    """A DuckDB relation over every delivery file of one sub-item (all columns as delivered)."""
    spec = catalog.sub_item(code)
    dept = catalog.department(spec.department)
    globs = [ws / "raw" / dept.id / lib.id for lib in catalog.libraries_of(code)]
    files = [str(p / f"*.{dept.delivery_format}") for p in globs if p.is_dir() and any(p.iterdir())]
    if not files:
        return None
    lst = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    if dept.delivery_format == "parquet":
        return f"read_parquet({lst}, union_by_name=true)"
    if dept.delivery_format == "csv":
        return f"read_csv({lst}, union_by_name=true, all_varchar=true, header=true)"
    meta = ("_source_library", "_batch_id", "_ingest_ts", "_available_date", "_row_hash")
    meta += ("_valid_from", "_valid_to") if spec.is_versioned else ()
    return f"read_json({lst}, union_by_name=true, format='newline_delimited', columns=" + "{" + ", ".join(
        f"'{c}': 'VARCHAR'" for c in (*spec.field_names, *meta)) + "})"


def _fmt(x: float, pct: bool = True) -> str:
    return f"{100 * x:.2f}%" if pct else f"{x:,.3f}"


def _within(got: float, lo: float, hi: float) -> bool:
    return bool(lo <= got <= hi)


def calibration_report(ws: Path) -> list[TargetResult]:
    """Compute every §11 target on the world in `ws`."""
    catalog = load_catalog()
    world = json.loads((ws / "world.json").read_text(encoding="utf-8"))
    params = world["params"]
    scale = params["enterprises"] / SCALE_ONE
    con = duckdb.connect()
    panel = read_truth("truth_enterprise_month", ws / "truth")
    out: list[TargetResult] = []
    out += _active_counts(panel, scale)
    out += _shares(con, ws, catalog, params)
    out += _default_rates(panel)
    out += _oracle_targets(ws, panel, params)
    out += _tax_grades(con, ws, catalog)
    out += _simple_rates(con, ws, catalog, panel)
    out += _annual_reports(con, ws, catalog, panel)
    out += _litigation(con, ws, catalog, panel)
    out += _platform(ws, params, scale)
    out += _fields_present(con, ws, catalog)
    out.append(TargetResult("CCI tiers excellent + good", ">= 90%", "computed by the indicator stage", None))
    out.append(TargetResult("Signal-level shares", "ratings_and_signals.md §2 ±30% rel.", "computed by the signal stage",
                            None))
    return out


def _active_counts(panel: pd.DataFrame, scale: float) -> list[TargetResult]:
    res = []
    for label, target in (("2018-01", 56_000), ("2021-01", 61_000)):
        got = int(((panel["month"] == label) & (panel["status"] == 0)).sum())
        exp = target * scale
        res.append(TargetResult(f"Active enterprises {label}", f"{exp:,.0f} ±5%", f"{got:,}",
                                _within(got, 0.95 * exp, 1.05 * exp) if got else None))
    return res


def _shares(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog, params: dict) -> list[TargetResult]:
    truth = read_truth("truth_enterprise", ws / "truth")
    shares = {k: v[0] for k, v in params["sectors"].items()}
    got = truth["sector"].value_counts(normalize=True)
    worst = max(abs(got.get(k, 0) - v) for k, v in shares.items())
    res = [TargetResult("Sector shares (max abs deviation)", "<= 2 pp", f"{100 * worst:.2f} pp", worst <= 0.02)]
    rel = sub_item_sql(ws, catalog, "ent_registration")
    if rel is None:
        return [*res, TargetResult("District / FTZ shares", "catalog S01 ±2 pp", "no ent_registration deliveries", None)]
    reg = con.sql(f"select upper(trim(uscc)) as uscc, district_code, ftz_area from {rel}").df().drop_duplicates("uscc", keep="last")
    d = reg["district_code"].astype(str).str.strip().value_counts(normalize=True)
    dist_target = {"330902": 0.46, "330903": 0.31, "330921": 0.17, "330922": 0.06}
    worst_d = max(abs(d.get(k, 0) - v) for k, v in dist_target.items())
    ftz = float((reg["ftz_area"].astype(str).str.strip().str.lower() != "none").mean())
    res.append(TargetResult("District shares (max abs deviation)", "<= 3 pp (sector mix shifts them)", f"{100 * worst_d:.2f} pp",
                            worst_d <= 0.03))
    res.append(TargetResult("FTZ share", "~26% ±2 pp", _fmt(ftz), _within(ftz, 0.24, 0.28)))
    return res


def latent_labels(panel: pd.DataFrame, horizon: int = 12) -> pd.DataFrame:
    """Per (slot, month) of performing firms: y_true = a latent default in (t, t + horizon]."""
    p = panel[["slot", "month", "performing", "defaulted_now", "status"]].copy()
    p["t"] = p["month"].map(month_index)
    defaults = p.loc[p["defaulted_now"], ["slot", "t"]].rename(columns={"t": "td"})
    base = p[p["performing"] & (p["status"] <= 1)][["slot", "t", "month"]]
    m = base.merge(defaults, on="slot", how="left")
    m["hit"] = (m["td"] > m["t"]) & (m["td"] <= m["t"] + horizon)
    y = m.groupby(["slot", "t", "month"], as_index=False)["hit"].any()
    last = p["t"].max()
    return y[y["t"] <= last - horizon]


def _default_rates(panel: pd.DataFrame) -> list[TargetResult]:
    y = latent_labels(panel)
    pooled = y[(y["t"] >= month_index("2018-01")) & (y["t"] <= month_index("2022-12"))]["hit"].mean()
    c2020 = y[(y["t"] >= month_index("2020-01")) & (y["t"] <= month_index("2020-12"))]["hit"].mean()
    return [TargetResult("Latent 12-month default rate, pooled 2018-2022", "1.0–1.4%", _fmt(pooled),
                         _within(pooled, 0.010, 0.014) if pd.notna(pooled) else None),
            TargetResult("Latent 12-month default rate, 2020 cohort", "<= 2.2%", _fmt(c2020),
                         bool(c2020 <= 0.022) if pd.notna(c2020) else None)]


def grade_of(pd12: np.ndarray) -> np.ndarray:
    """Master-scale grade (ratings_and_signals.md §1.2) from a 12-month PD."""
    return np.array(GRADES, dtype=object)[np.searchsorted(np.array(GRADE_EDGES), pd12, side="right")]


def _oracle_targets(ws: Path, panel: pd.DataFrame, params: dict) -> list[TargetResult]:
    try:
        oracle = read_truth("truth_oracle_pd", ws / "truth")
    except FileNotFoundError:
        return [TargetResult("Oracle AUC (12 months, y_true)", "0.84–0.89", "no oracle computed", None)]
    col = "oracle_pd12" if oracle["oracle_pd12"].notna().any() else "oracle_pd12_approx"
    o = oracle.dropna(subset=[col])
    g = pd.Series(grade_of(o[col].to_numpy())).value_counts(normalize=True)
    good = float(sum(g.get(k, 0) for k in GRADES[:5]))
    shares = " ".join(f"{k} {100 * g.get(k, 0):.1f}" for k in GRADES)
    res = [TargetResult("Rating shares AAA–BB (oracle PD, master scale)", ">= 90%", _fmt(good), good >= 0.90),
           TargetResult("Grade distribution (oracle, %)", "§1.2 expected shares", shares, None)]
    y = latent_labels(panel)
    o = o.assign(t=o["as_of"].map(month_index)).merge(y, on=["slot", "t"], how="inner")
    if o["hit"].nunique() < 2:
        return [*res, TargetResult("Oracle AUC (12 months, y_true)", "0.84–0.89", "labels not matured", None)]
    auc = roc_auc_score(o["hit"], o[col])
    res.append(TargetResult(f"Oracle AUC (12 months, y_true; {col})", "0.84–0.89", f"{auc:.3f} (n={len(o):,})",
                            _within(auc, 0.84, 0.89)))
    return res


def _tax_grades(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog) -> list[TargetResult]:
    rel = sub_item_sql(ws, catalog, "tax_profile")
    if rel is None:
        return [TargetResult("Tax credit grades A/B/M/C/D", "25/50/15/7/3% ±3pp", "no tax_profile deliveries", None)]
    df = con.sql(f"select upper(trim(uscc)) u, cast(grade_year as varchar) y, trim(cast(tax_credit_grade as varchar)) g "
                 f"from {rel}").df().drop_duplicates(["u", "y"], keep="last")
    df = df[df["g"].isin(["A", "B", "M", "C", "D"])]
    s = df["g"].value_counts(normalize=True)
    target = {"A": 0.25, "B": 0.50, "M": 0.15, "C": 0.07, "D": 0.03}
    ok = all(abs(s.get(k, 0) - v) <= 0.03 for k, v in target.items())
    got = "/".join(f"{100 * s.get(k, 0):.1f}" for k in target)
    return [TargetResult("Tax credit grades A/B/M/C/D (%)", "25/50/15/7/3 ±3pp", got, ok)]


def _active_denominator(panel: pd.DataFrame, months: list[str]) -> int:
    return int(panel[panel["month"].isin(months) & (panel["status"] == 0)].shape[0])


def _simple_rates(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog, panel: pd.DataFrame) -> list[TargetResult]:
    res = []
    rel = sub_item_sql(ws, catalog, "public_credit_eval")
    if rel:
        s = con.sql(f"select avg(case when lower(trim(cast(public_credit_grade as varchar))) in ('excellent','good') "
                    f"then 1.0 else 0.0 end) from {rel}").fetchall()[0][0]
        res.append(TargetResult("Public credit grades excellent + good", ">= 90%", _fmt(s), s >= 0.90))
    else:
        res.append(TargetResult("Public credit grades excellent + good", ">= 90%", "no deliveries", None))
    rel = sub_item_sql(ws, catalog, "social_insurance_monthly")
    if rel:
        s = con.sql(f"select avg(case when try_cast(arrears_months as double) > 0 then 1.0 else 0.0 end) from {rel}").fetchall()[0][0]
        res.append(TargetResult("Social-insurance arrears (arrears_months > 0)", "~3% ±1pp", _fmt(s), _within(s, 0.02, 0.04)))
    else:
        res.append(TargetResult("Social-insurance arrears", "~3% ±1pp", "no deliveries", None))
    rel = sub_item_sql(ws, catalog, "electricity_monthly")
    if rel:
        s = con.sql(f"select avg(case when lower(cast(paid_on_time as varchar)) in ('true','1') then 1.0 else 0.0 end) "
                    f"from {rel} where paid_on_time is not null").fetchall()[0][0]
        res.append(TargetResult("Electricity paid_on_time", "~96% ±1.5pp", _fmt(s), _within(s, 0.945, 0.975)))
    else:
        res.append(TargetResult("Electricity paid_on_time", "~96% ±1.5pp", "no deliveries", None))
    dates = [f"{y}-12" for y in range(2018, 2023)]
    active = _active_denominator(panel, dates)
    for code, where, start, stop, name, lo, hi, exp in (
        ("msa_credit_lists", "trim(cast(list_type as varchar)) = 'abnormal_operation'", "list_date", "removal_date",
         "Active abnormal-operation listing", 0.035, 0.065, "~5% ±1.5pp"),
        ("dishonest_debtors", "true", "publish_date", "removal_date", "Active dishonest debtors", 0.003, 0.009,
         "~0.6% ±0.3pp"),
    ):
        rel = sub_item_sql(ws, catalog, code)
        if rel is None or active == 0:
            res.append(TargetResult(name, exp, "no deliveries", None))
            continue
        key = "case_id" if code == "dishonest_debtors" else "list_date, list_reason"
        rows = con.sql(f"select upper(trim(uscc)) u, {key}, try_cast({start} as date) s, try_cast({stop} as date) e "
                       f"from {rel} where {where}").df()
        rows = rows.drop_duplicates([c for c in rows.columns if c not in ("e",)], keep="last")
        hits = 0
        for label in dates:
            d = pd.Timestamp(label + "-01") + pd.offsets.MonthEnd(0)
            s_ = pd.to_datetime(rows["s"])
            e_ = pd.to_datetime(rows["e"])
            act = rows[(s_ <= d) & (e_.isna() | (e_ > d))]
            # numerator and denominator are the same population: firms still operating at that year end
            # (a deregistered firm stays on the list but is no longer part of the active stock)
            live = panel.loc[(panel["month"] == label) & (panel["status"] == 0), "uscc"]
            hits += act.loc[act["u"].isin(live), "u"].nunique()
        got = hits / active
        res.append(TargetResult(name + " (year-ends 2018-2022)", exp, _fmt(got), _within(got, lo, hi)))
    return res


def _annual_reports(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog, panel: pd.DataFrame) -> list[TargetResult]:
    rel = sub_item_sql(ws, catalog, "annual_report")
    if rel is None:
        return [TargetResult("Annual reports on time / late / missing", "88/6/6 ±3pp", "no deliveries", None)]
    rep = con.sql(f"select upper(trim(uscc)) u, try_cast(report_year as integer) y, try_cast(submit_date as date) d "
                  f"from {rel}").df().drop_duplicates(["u", "y"], keep="first")
    counts = np.zeros(3)
    for year in range(2018, 2022):
        pop = panel[(panel["month"] == f"{year + 1}-06") & (panel["status"] == 0)]
        born = pop[pop["slot"].isin(panel.loc[panel["month"] == f"{year}-01", "slot"])]
        ids = set(born["uscc"])
        r = rep[(rep["y"] == year) & rep["u"].isin(ids)]
        deadline, late_end = pd.Timestamp(f"{year + 1}-06-30"), pd.Timestamp(f"{year + 1}-12-31")
        filed = pd.to_datetime(r["d"])
        on_time = int((filed <= deadline).sum())
        late = int(((filed > deadline) & (filed <= late_end)).sum())   # the July-December late window
        counts += [on_time, late, len(ids) - on_time - late]
    s = counts / counts.sum()
    ok = all(abs(a - b) <= 0.03 for a, b in zip(s, (0.88, 0.06, 0.06), strict=True))
    return [TargetResult("Annual reports on time / late (Jul-Dec) / missing at year end (%)", "88/6/6 ±3pp",
                         "/".join(f"{100 * v:.1f}" for v in s), ok)]


def _litigation(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog, panel: pd.DataFrame) -> list[TargetResult]:
    rel = sub_item_sql(ws, catalog, "litigation_cases")
    if rel is None:
        return [TargetResult("Firms with a new civil case per year / as defendant", "~12% / ~6% ±2pp", "no deliveries", None)]
    cases = con.sql(f"select upper(trim(uscc)) u, case_id, try_cast(filing_date as date) f, "
                    f"trim(cast(case_type as varchar)) ct, trim(cast(party_role as varchar)) pr from {rel}").df()
    cases = cases.drop_duplicates(["u", "case_id"], keep="first")
    cases = cases[cases["ct"] == "civil"]
    any_, dfd = [], []
    for year in range(2018, 2023):
        ids = set(panel.loc[(panel["month"] == f"{year}-06") & (panel["status"] == 0), "uscc"])
        c = cases[(pd.to_datetime(cases["f"]).dt.year == year) & cases["u"].isin(ids)]
        any_.append(c["u"].nunique() / len(ids))
        dfd.append(c.loc[c["pr"] == "defendant", "u"].nunique() / len(ids))
    a, d = float(np.mean(any_)), float(np.mean(dfd))
    return [TargetResult("Firms with a new civil case per year", "~12% ±2pp", _fmt(a), _within(a, 0.10, 0.14)),
            TargetResult("Firms with a new civil case as defendant per year", "~6% ±2pp", _fmt(d), _within(d, 0.04, 0.08))]


def _platform(ws: Path, params: dict, scale: float) -> list[TargetResult]:
    folder = ws / "platform"
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        return [TargetResult("Seed platform statistics at 2020-06", "products_and_demands.md §8", "no platform tables", None)]
    from data.simulate.observe.platform import seed_statistics

    tables = {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}
    rows = seed_statistics(tables, params["seed_checkpoint"], scale)
    return [TargetResult(f"Seed: {r['name']}", r["expected"], r["got"], r["passed"]) for r in rows]


def _fields_present(con: duckdb.DuckDBPyConnection, ws: Path, catalog: Catalog) -> list[TargetResult]:
    missing, empty = [], []
    for spec in catalog.sub_items:
        rel = sub_item_sql(ws, catalog, spec.code)
        if rel is None:
            empty.append(spec.code)
            continue
        cols = {c[0] for c in con.sql(f"describe select * from {rel}").fetchall()}
        missing += [f"{spec.code}.{f}" for f in spec.field_names if f not in cols]
    present = catalog.field_count - len(missing) - sum(len(catalog.sub_item(c).fields) for c in empty)
    detail = f"{present}/{catalog.field_count}" + (f"; no rows: {', '.join(empty)}" if empty else "")
    return [TargetResult("Every catalog field delivered", "290/290", detail, not missing and not empty)]


def write_report(rows: list[TargetResult], ws: Path) -> tuple[Path, Path]:
    """Store the report as JSON and Markdown next to the world."""
    out = reports_dir(ws)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "calibration.json"
    payload = [asdict(r) | {"passed": None if r.passed is None else bool(r.passed)} for r in rows]
    js.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    md = out / "calibration.md"
    lines = ["# Calibration report (simulation.md §11)", "", "| target | expected | got | pass |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.expected} | {r.got} | {'n/a' if r.passed is None else ('pass' if r.passed else 'FAIL')} |"
              for r in rows]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md, js


__all__ = ["TargetResult", "calibration_report", "grade_of", "latent_labels", "month_label", "write_report"]
