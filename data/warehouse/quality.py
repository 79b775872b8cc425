"""Data-quality report per department: freshness vs publication lag, completeness, rule failures over time.

Like the daily quality rules a provincial platform runs over its departments' feeds; written as
Markdown, HTML and JSON under workspace/reports/, computed with DuckDB over the warehouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from data.warehouse.rules import load_validation_config, q
from kernel.catalog import Catalog, load_catalog
from kernel.workspace import reports_dir


@dataclass
class QualityReport:
    freshness: pd.DataFrame        # per library: months delivered, missing months, availability lag vs catalog lag
    completeness: pd.DataFrame     # per sub-item x field: share of null values among accepted records
    failures: pd.DataFrame         # quarantine counts per department x rule x month
    batches: pd.DataFrame          # per department: records in / accepted / quarantined / duplicates
    share_sums: pd.DataFrame       # enterprises whose active shareholders' ratios do not sum to 1


def quarantine_summary(ws: Path) -> pd.DataFrame:
    """Quarantined records by department, rule and month (one record may fail several rules)."""
    folder = ws / "warehouse" / "_quarantine"
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return pd.DataFrame(columns=["department", "rule", "month", "records"])
    con = duckdb.connect()
    return con.sql(f"""
        select department, split_part(f, ':', 2) as rule, month, count(*) as records
        from (select department, month, unnest(failures) as f from read_parquet('{folder}/**/*.parquet'))
        group by all order by department, rule, month""").df()


def _manifests(ws: Path) -> pd.DataFrame:
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in (ws / "warehouse" / "_manifest").glob("*.json")]
    return pd.DataFrame(rows)


def build_quality_report(ws: Path, catalog: Catalog | None = None) -> QualityReport:
    catalog = catalog or load_catalog()
    con = duckdb.connect()
    wh = ws / "warehouse"
    man = _manifests(ws)
    batches = man.groupby("department")[["records_in", "accepted", "quarantined", "duplicates", "normalised"]].sum() \
        .reset_index() if len(man) else pd.DataFrame()
    fresh_rows = []
    all_months = sorted(man["month"].unique()) if len(man) else []
    for lib in catalog.libraries:
        spec = catalog.sub_item(lib.sub_item)
        got = set(man.loc[man["library"] == lib.id, "month"]) if len(man) else set()
        folder = wh / spec.code
        lag = pd.Series(dtype=float)
        anchor = spec.availability_anchor
        if anchor and folder.is_dir() and any(folder.rglob("*.parquet")):
            lag = con.sql(f"select date_diff('day', {q(anchor)}, _available_date) as d from "
                          f"read_parquet('{folder}/**/*.parquet') where _source_library = '{lib.id}' "
                          f"and {q(anchor)} is not null").df()["d"]
            if spec.grain == "monthly_series":
                lag = lag - 30
        expected_monthly = spec.grain in ("monthly_series", "monthly_snapshot")
        first = min(got) if got else None
        missing = [m for m in all_months if expected_monthly and first and m >= first and m not in got]
        fresh_rows.append({
            "department": lib.department, "library": lib.id, "sub_item": spec.code, "months_delivered": len(got),
            "missing_months": len(missing), "missing_examples": ", ".join(missing[:4]),
            "catalog_lag_days": f"{spec.lag_days[0]}-{spec.lag_days[1]}",
            "lag_p50_days": float(lag.median()) if len(lag) else None,
            "lag_p95_days": float(lag.quantile(0.95)) if len(lag) else None,
            "late_share": float((lag > spec.lag_days[1] + 1).mean()) if len(lag) else None})
    comp_rows = []
    for spec in catalog.sub_items:
        folder = wh / spec.code
        if not folder.is_dir() or not any(folder.rglob("*.parquet")):
            continue
        nulls = ", ".join(f"avg(case when {q(f)} is null then 1.0 else 0.0 end) as {q(f)}" for f in spec.field_names)
        r = con.sql(f"select count(*) as n, {nulls} from read_parquet('{folder}/**/*.parquet')").df().iloc[0]
        for f in spec.field_names:
            comp_rows.append({"sub_item": spec.code, "department": spec.department, "field": f,
                              "records": int(r["n"]), "null_share": float(r[f])})
    tol = load_validation_config().share_ratio_tolerance
    share = pd.DataFrame()
    folder = wh / "shareholders"
    if folder.is_dir() and any(folder.rglob("*.parquet")):
        share = con.sql(f"""
            with latest as (
              select *, row_number() over (partition by uscc, shareholder_id, valid_from
                                           order by _available_date desc, _source_line desc) as rk
              from read_parquet('{folder}/**/*.parquet'))
            select uscc, round(sum(coalesce(share_ratio, 0)), 4) as share_sum, count(*) as holders,
                   count(*) filter (where share_ratio is null) as missing_ratios
            from latest where rk = 1 and valid_to is null
            group by uscc having abs(sum(coalesce(share_ratio, 0)) - 1) > {tol} or count(*) filter (where share_ratio is null) > 0
            order by uscc""").df()
    return QualityReport(freshness=pd.DataFrame(fresh_rows), completeness=pd.DataFrame(comp_rows),
                         failures=quarantine_summary(ws), batches=batches, share_sums=share)


def write_quality_report(report: QualityReport, ws: Path) -> list[Path]:
    """Markdown + HTML + JSON under workspace/reports/data_quality.*"""
    out = reports_dir(ws)
    out.mkdir(parents=True, exist_ok=True)
    by_rule = report.failures.groupby(["department", "rule"], as_index=False)["records"].sum() \
        if len(report.failures) else report.failures
    worst = report.completeness.sort_values("null_share", ascending=False).head(25) if len(report.completeness) else report.completeness
    sections = [("Batches per department", report.batches), ("Freshness vs publication lag", report.freshness),
                ("Rule failures by department", by_rule), ("Least complete fields", worst),
                ("Enterprises whose shareholder ratios do not sum to 1", report.share_sums.head(50))]
    md = ["# Data-quality report", ""]
    html = ["<html><head><meta charset='utf-8'><title>Zhouxin data quality</title></head><body>",
            "<h1>Data-quality report</h1>"]
    for title, frame in sections:
        md += [f"## {title}", "", frame.to_markdown(index=False) if len(frame) else "_none_", ""]
        html += [f"<h2>{title}</h2>", frame.to_html(index=False) if len(frame) else "<p>none</p>"]
    html.append("</body></html>")
    paths = [out / "data_quality.md", out / "data_quality.html", out / "data_quality.json"]
    paths[0].write_text("\n".join(md), encoding="utf-8")
    paths[1].write_text("\n".join(html), encoding="utf-8")
    paths[2].write_text(json.dumps({
        "batches": report.batches.to_dict("records"), "freshness": report.freshness.to_dict("records"),
        "failures_by_month": report.failures.to_dict("records"),
        "completeness": report.completeness.to_dict("records"),
        "share_sum_violations": report.share_sums.to_dict("records")}, indent=1, ensure_ascii=False, default=str),
        encoding="utf-8")
    return paths
