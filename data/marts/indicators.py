"""The 49 third-level credit indicators, the 17/5 sub-indices and the composite credit index (CCI).

shared/domain/indicators.md §1-§5. For every registered (uscc, as_of) month end the mart holds each
indicator's raw value and score (0-100, higher = better), the second- and first-level sub-indices,
CCI_raw, the veto cap, CCI, its tier and the flags thin_file / insufficient_history.

Two stages, both batch over all months at once:
1. raw inputs in DuckDB SQL: every source is read through `known_at()` (what the platform knew at each
   month end, availability-based), monthly series are laid on a dense month grid per (firm, as_of)
   with gaps of <= 2 months carried forward, and everything is aggregated to one row per firm-month;
2. scores in vectorised numpy (a pandas UDF in Spark/Dask): PW / PCT / PCT_S / DED / EXP / CAT / LIN
   with the frozen reference parameters, N/A weight rescaling, caps and tiers.

Every number (knots, deductions, weights, windows, caps, tiers) comes from configs/indicators.yaml;
the percentile references and B1.3 seasonal factors are estimated once by `fit_reference` on the base
month and frozen in a versioned JSON (`NormParams`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import Field

from data.marts.grid import known_at, register_months
from data.marts.indicator_config import Indicator, IndicatorConfig, PercentileForm, load_indicator_config
from data.marts.spec import MartFeature
from kernel.catalog import load_catalog
from kernel.config import FrozenModel
from kernel.errors import ConfigError, ZhouxinError

# ------------------------------------------------------------------------------------------------
# Normalisation methods (§3): pure functions of arrays, NaN in -> NaN out.
# ------------------------------------------------------------------------------------------------


def score_pw(x: np.ndarray, knots: Sequence[tuple[float, float]]) -> np.ndarray:
    """PW (§3.1): linear interpolation between knots, constant outside [x_1, x_k]; NaN stays NaN.

    Interpolated as s_j + t (s_j+1 - s_j) with t clipped to [0, 1], so a score never leaves its knots'
    range: `np.interp` multiplies by the slope, which overflows to inf for knots a few ulps apart."""
    x = np.asarray(x, dtype=float)
    xs = np.array([k[0] for k in knots], dtype=float)
    ss = np.array([k[1] for k in knots], dtype=float)
    if len(xs) == 1:
        return np.where(np.isnan(x), np.nan, ss[0])
    j = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 2)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):   # NaN rows are restored below
        t = np.clip((x - xs[j]) / (xs[j + 1] - xs[j]), 0.0, 1.0)
    out = ss[j] + t * (ss[j + 1] - ss[j])
    return np.where(np.isnan(x), np.nan, out)


def cdf_from_quantiles(x: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """F(x) from the stored quantiles q_0..q_n (§3.2): 0 below q_0, 1 above q_n, linear between
    neighbouring quantiles, and the midpoint of a flat stretch for a value equal to tied quantiles."""
    x = np.asarray(x, dtype=float)
    q = np.asarray(quantiles, dtype=float)
    n = len(q) - 1
    lo = np.searchsorted(q, x, side="left")
    hi = np.searchsorted(q, x, side="right")
    tied = hi > lo
    inside = ~tied & (lo > 0) & (lo <= n)
    f = np.where(lo > n, 1.0, 0.0)
    f = np.where(tied, (lo + hi - 1) / 2.0 / n, f)
    i = np.clip(lo - 1, 0, n - 1)
    width = q[np.clip(i + 1, 0, n)] - q[i]
    with np.errstate(over="ignore", invalid="ignore"):  # rows outside [q_i, q_i+1] are discarded below
        frac = np.clip(np.divide(x - q[i], width, out=np.zeros_like(x), where=width > 0), 0.0, 1.0)
    f = np.where(inside, (i + frac) / n, f)
    return np.where(np.isnan(x), np.nan, f)


def score_pct(x: np.ndarray, quantiles: Sequence[float], form: PercentileForm) -> np.ndarray:
    """PCT (§3.2): s = base + span F(x), or base + span (1 - F(x)) for reversed indicators."""
    f = cdf_from_quantiles(x, quantiles)
    return form.base + form.span * ((1.0 - f) if form.reversed else f)


def score_ded(*deductions: np.ndarray) -> np.ndarray:
    """DED (§3.3): max(0, 100 - sum of deductions)."""
    total = np.sum([np.asarray(d, dtype=float) for d in deductions], axis=0)
    return np.maximum(0.0, 100.0 - total)


def decay_factor(age_days: np.ndarray, half_life_days: float | None) -> np.ndarray:
    """0.5^(age / half-life) (§3.4); 1 when the indicator does not decay."""
    age = np.asarray(age_days, dtype=float)
    if half_life_days is None:
        return np.ones_like(age)
    return np.power(0.5, age / half_life_days)


def score_exp(severity_sum: np.ndarray, k: float) -> np.ndarray:
    """EXP (§3.4): s = 100 exp(-k S)."""
    return 100.0 * np.exp(-k * np.asarray(severity_sum, dtype=float))


def score_lin(x: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """LIN (§3.6): intercept + slope x, clipped to [0, 100]."""
    return np.clip(intercept + slope * np.asarray(x, dtype=float), 0.0, 100.0)


def rescaled_weights(weights: Sequence[float], available: np.ndarray) -> np.ndarray:
    """N/A rescaling (§3.7): w'_k = w_k / sum of available w_j per row; 0 where N/A; all-N/A rows are 0."""
    avail = np.asarray(available, dtype=bool)
    w = np.where(avail, np.asarray(weights, dtype=float)[None, :], 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def aggregate_available(scores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """sum of w'_k s_k over the available (non-NaN) scores of each row; NaN when all are N/A."""
    s = np.asarray(scores, dtype=float)
    avail = ~np.isnan(s)
    w = rescaled_weights(weights, avail)
    out = np.sum(np.where(avail, s, 0.0) * w, axis=1)
    return np.where(avail.any(axis=1), out, np.nan)


def cap_cci(cci_raw: np.ndarray, cap: np.ndarray, decimals: int = 1) -> np.ndarray:
    """§4.5: CCI = min(CCI_raw, lowest applicable cap), rounded."""
    return np.round(np.minimum(np.asarray(cci_raw, dtype=float), np.asarray(cap, dtype=float)), decimals)


# ------------------------------------------------------------------------------------------------
# Frozen reference parameters (§3.8)
# ------------------------------------------------------------------------------------------------


class QuantileReference(FrozenModel):
    """Winsorisation limits and the quantiles q_0..q_n of one reference population."""

    n: int = Field(ge=1)
    winsor: tuple[float, float]
    quantiles: tuple[float, ...]


class IndicatorReference(FrozenModel):
    pooled: QuantileReference
    sectors: dict[str, QuantileReference] = Field(default_factory=dict)


class NormParams(FrozenModel):
    """Everything estimated on the reference population; the index moves only when firms change."""

    norm_version: str
    config_sha256: str
    base_month_requested: str
    base_month: str
    base_month_note: str | None = None
    reference_enterprises: int
    references: dict[str, IndicatorReference]
    seasonal_factors: dict[str, tuple[float, ...]]
    seasonal_note: str | None = None
    content_hash: str = ""


def _params_hash(params: NormParams) -> str:
    payload = params.model_dump(mode="json", exclude={"content_hash"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def save_norm_params(params: NormParams, path: Path) -> Path:
    """Write the parameters as JSON with their content hash (the caller chooses the versioned path)."""
    sealed = params.model_copy(update={"content_hash": _params_hash(params)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sealed.model_dump(mode="json"), indent=1, sort_keys=True), encoding="utf-8")
    return path


def load_norm_params(path: Path) -> NormParams:
    """Read frozen parameters; a file whose content does not match its hash is refused."""
    if not path.is_file():
        raise ZhouxinError(f"no normalisation parameters at {path}: run fit_reference first")
    params = NormParams.model_validate_json(path.read_text(encoding="utf-8"))
    if params.content_hash != _params_hash(params):
        raise ZhouxinError(f"{path}: content_hash does not match the parameters (edited by hand?)")
    return params


def fit_quantile_reference(x: np.ndarray, lower: float, upper: float, n_quantiles: int
                           ) -> QuantileReference | None:
    """Winsorise at the reference p_lower / p_upper and store n_quantiles quantiles; None if empty."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return None
    lo, hi = np.quantile(x, [lower, upper])
    q = np.quantile(np.clip(x, lo, hi), np.linspace(0.0, 1.0, n_quantiles))
    return QuantileReference(n=len(x), winsor=(float(lo), float(hi)), quantiles=tuple(float(v) for v in q))


# ------------------------------------------------------------------------------------------------
# Stage 1: raw inputs in SQL
# ------------------------------------------------------------------------------------------------

_SQL_TYPES = {"string": "varchar", "category": "varchar", "int": "bigint", "float": "double",
              "bool": "boolean", "date": "date"}
_SOURCES = ("ent_registration", "shareholders", "key_personnel", "registration_changes", "annual_report",
            "external_guarantees", "msa_credit_lists", "equity_pledges", "tax_profile", "tax_monthly",
            "tax_announcements", "litigation_cases", "enforcement_cases", "dishonest_debtors",
            "consumption_restrictions", "judicial_freezes", "hpf_monthly", "social_insurance_monthly",
            "labor_disputes", "customs_monthly", "env_credit", "admin_penalties", "public_credit_eval",
            "real_property_rights", "ip_assets", "movable_collateral_registry", "electricity_monthly",
            "water_monthly", "gas_monthly", "vessels", "oil_trade_license", "safety_production",
            "news_sentiment", "recruitment")


_MONTHLY = ("tax_monthly", "electricity_monthly", "water_monthly", "gas_monthly", "social_insurance_monthly",
            "hpf_monthly", "customs_monthly", "recruitment")


def _ensure_sources(con: duckdb.DuckDBPyConnection) -> None:
    """Empty temp `<code>_scd` views for sub-items absent from the warehouse: no rows = not covered."""
    have = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    catalog = load_catalog()
    for code in _SOURCES:
        if f"{code}_scd" in have:
            continue
        cols = [f"null::{_SQL_TYPES[f.dtype]} as {f.name}" for f in catalog.sub_item(code).fields]
        cols += ["null::date as _available_date", "null::varchar as _ingest_ts", "null::bigint as _source_line",
                 "null::date as _known_from", "null::date as _known_to"]
        con.execute(f'create or replace temp view "{code}_scd" as select {", ".join(cols)} where false')


def _lit(v: float) -> str:
    return repr(float(v))


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _case(expr: str, table: dict[str, float]) -> str:
    """CASE lookup from a YAML table; `_default` covers null and unlisted categories."""
    default = table.get("_default")
    whens = " ".join(f"when '{k}' then {_lit(v)}" for k, v in table.items() if k != "_default")
    return f"(case {expr} {whens} else {_lit(default) if default is not None else 'null'} end)"


def _months_ago(n: float) -> str:
    return f"(as_of - to_months({int(n)}))"


def _sector_sql(cfg: IndicatorConfig, col: str = "industry_code") -> str:
    whens = []
    for rule in cfg.sectors:
        if "" in rule.prefixes:
            whens.append(f"else '{rule.name}'")
            break
        cond = " or ".join(f"starts_with(coalesce({col}, ''), '{p}')" for p in rule.prefixes)
        whens.append(f"when {cond} then '{rule.name}'")
    return "(case " + " ".join(whens) + " end)"


def _monthly_series(con: duckdb.DuckDBPyConnection, code: str, fill: Sequence[str], keep: Sequence[str],
                    window: int, max_gap: int) -> None:
    """Temp table `_ms_<code>`: per (uscc, as_of) a dense grid k = 0..window-1 months back from the
    platform's latest month of the source known at as_of (ref_pm), observed flag, `keep` fields as
    observed and `fill` fields carried forward over gaps of <= max_gap months, plus the firm's history
    length in months (first known month .. ref_pm)."""
    fields = list(dict.fromkeys([*fill, *keep]))
    filled = ",\n".join(
        f"case when {f} is not null then {f} "
        f"when min(case when {f} is not null then k end) over w - k <= {max_gap} "
        f"then last_value({f} ignore nulls) over w end as {f}" for f in fill)
    kept = "".join(f", {f} as {f}_obs" for f in keep)
    con.execute(f"""
        create or replace temp table _ms_{code} as
        with known as (
            select s.uscc, s.as_of, s.period_month, {", ".join('s.' + f for f in fields)}
            from ({known_at(code)}) s join _reg g on s.uscc = g.uscc and s.as_of = g.as_of
            where s.period_month <= s.as_of
            qualify row_number() over (partition by s.uscc, s.as_of, s.period_month
                                       order by s._known_from desc, s._ingest_ts desc) = 1),
        ref as (select as_of, max(period_month) as ref_pm from known group by as_of),
        firms as (select uscc, as_of, min(period_month) as first_pm from known group by uscc, as_of),
        obs as (select k.*, datediff('month', k.period_month, r.ref_pm) as k
                from known k join ref r using (as_of)),
        dense as (select f.uscc, f.as_of, g.k, r.ref_pm,
                         datediff('month', f.first_pm, r.ref_pm) + 1 as hist_months
                  from firms f join ref r using (as_of), range({window}) g(k)),
        j as (select d.*, cast(d.ref_pm - to_months(d.k) as date) as pm, o.k is not null as observed,
                     {", ".join('o.' + f for f in fields)}
              from dense d left join obs o on o.uscc = d.uscc and o.as_of = d.as_of and o.k = d.k)
        select uscc, as_of, k, pm, ref_pm, hist_months, observed{kept}{"," if fill else ""}
               {filled}
        from j
        window w as (partition by uscc, as_of order by k desc rows between unbounded preceding and current row)
    """)


def _series_sql(cfg: IndicatorConfig, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Build the monthly-series temp tables; return the per-source aggregate queries."""
    gap = cfg.norm.carry_forward_months
    ind = cfg.indicator
    _monthly_series(con, "tax_monthly",
                    fill=["invoices_issued_amount", "total_tax_paid", "top5_customer_share",
                          "red_letter_invoice_ratio", "void_invoice_ratio"],
                    keep=["invoices_issued_amount", "declared_on_time", "late_fee_amount", "zero_declaration"],
                    window=36, max_gap=gap)
    _monthly_series(con, "electricity_monthly", fill=["consumption_kwh", "contracted_capacity_kva"],
                    keep=["paid_on_time", "arrears_days"], window=24, max_gap=gap)
    _monthly_series(con, "water_monthly", fill=["consumption_m3", "arrears_amount"],
                    keep=["paid_on_time"], window=24, max_gap=gap)
    _monthly_series(con, "gas_monthly", fill=["consumption_m3", "arrears_amount"],
                    keep=["paid_on_time", "supply_suspended"], window=24, max_gap=gap)
    _monthly_series(con, "social_insurance_monthly",
                    fill=["insured_count", "new_enrollments", "terminations", "amount_due", "amount_paid",
                          "arrears_months"], keep=[], window=24, max_gap=gap)
    _monthly_series(con, "hpf_monthly", fill=["account_status", "arrears_months"], keep=[], window=6,
                    max_gap=gap)
    _monthly_series(con, "customs_monthly", fill=["import_value", "export_value"], keep=[], window=36,
                    max_gap=gap)
    # recruitment has rows only for months with postings: absence is zero, never carried forward
    _monthly_series(con, "recruitment", fill=[], keep=["new_job_posts", "active_job_posts"], window=24,
                    max_gap=gap)
    b22, b23 = ind("B2.2"), ind("B2.3")
    d12 = ind("D1.2")
    nm, wm, gm = int(ind("B2.1").param("months")), int(b23.param("water_months")), int(b23.param("gas_months"))
    hours = b22.param("load_factor") * b22.param("hours_per_month")
    six_si, six_rec = int(ind("B3.2").param("months")), int(ind("B3.3").param("months"))
    trader = int(ind("B4.2").param("trader_lookback_months"))
    rec_look = int(ind("B3.3").param("lookback_months"))

    def cur(field: str) -> str:
        # covered now: the source's main value at the reference month, observed or carried forward
        return f"coalesce(bool_or(k = 0 and {field} is not null), false)"

    return {
        "tax": f"""
            select t.uscc, t.as_of, any_value(hist_months) as tax_hist,
              {cur('invoices_issued_amount')} as tax_current,
              count(*) filter (where observed and k < 12) as tax_obs12,
              sum(invoices_issued_amount) filter (where k < 12) as sales12,
              sum(invoices_issued_amount) filter (where k between 12 and 23) as sales12_prior,
              sum(total_tax_paid) filter (where k < 12) as tax12,
              sum(total_tax_paid) filter (where k between 12 and 23) as tax12_prior,
              any_value(top5_customer_share) filter (where k = 0) as top5_share,
              sum(red_letter_invoice_ratio * invoices_issued_amount) filter (where k < 12)
                / nullif(sum(invoices_issued_amount) filter (where k < 12), 0) as red_weighted,
              avg(red_letter_invoice_ratio) filter (where k < 12) as red_mean,
              avg(void_invoice_ratio) filter (where k < 12) as void_mean,
              stddev_pop(invoices_issued_amount / coalesce(sf.factor, 1.0)) filter (where k < 12)
                / nullif(avg(invoices_issued_amount / coalesce(sf.factor, 1.0)) filter (where k < 12), 0)
                as sales_cv,
              count(*) filter (where observed and k < {int(d12.param('months'))}
                               and declared_on_time_obs = false) as n_late_filing,
              count(*) filter (where observed and k < {int(d12.param('months'))}
                               and late_fee_amount_obs > 0) as n_late_fee
            from _ms_tax_monthly t join _reg g on t.uscc = g.uscc and t.as_of = g.as_of
            left join _season sf on sf.sector = g.sector and sf.month_num = month(t.pm)
            group by t.uscc, t.as_of""",
        "zero_stop": f"""
            with z as (select uscc, as_of, k, zero_declaration_obs as z from _ms_tax_monthly
                       where observed and k < {int(d12.param('months'))} and zero_declaration_obs is not null),
            c as (select *, case when z = lag(z) over (partition by uscc, as_of order by k desc)
                                 then 0 else 1 end as chg from z),
            i as (select *, sum(chg) over (partition by uscc, as_of order by k desc
                                           rows between unbounded preceding and current row) as isl from c),
            runs as (select uscc, as_of, isl, any_value(z) as z, count(*) as n from i group by uscc, as_of, isl),
            p as (select *, lag(n) over (partition by uscc, as_of order by isl) as prev_n,
                            lag(z) over (partition by uscc, as_of order by isl) as prev_z from runs)
            select uscc, as_of, bool_or(z and n >= {int(d12.param('zero_run'))} and not prev_z
                                        and prev_n >= {int(d12.param('nonzero_run'))}) as zero_stop
            from p group by uscc, as_of""",
        "elec": f"""
            select uscc, as_of, any_value(hist_months) as elec_hist, {cur('consumption_kwh')} as elec_current,
              count(*) filter (where observed and k < 12) as elec_obs12,
              sum(consumption_kwh) filter (where k < {nm}) as kwh_t3,
              sum(consumption_kwh) filter (where k between 12 and {11 + nm}) as kwh_t3_prior,
              avg(consumption_kwh) filter (where k < {int(b22.param('months'))}) as kwh_mean3,
              any_value(contracted_capacity_kva) filter (where k = 0) * {_lit(hours)} as kwh_capacity,
              count(*) filter (where observed and k < 12 and paid_on_time_obs = false) as elec_late,
              coalesce(max(arrears_days_obs) filter (where observed and k < 12), 0) as elec_arrears_days
            from _ms_electricity_monthly group by uscc, as_of""",
        "water": f"""
            select uscc, as_of, any_value(hist_months) as water_hist, {cur('consumption_m3')} as water_current,
              count(*) filter (where observed and k < 12) as water_obs12,
              sum(consumption_m3) filter (where k < {wm}) as water_t4,
              sum(consumption_m3) filter (where k between 12 and {11 + wm}) as water_t4_prior,
              any_value(arrears_amount) filter (where k = 0) as water_arrears
            from _ms_water_monthly group by uscc, as_of""",
        "gas": f"""
            select uscc, as_of, any_value(hist_months) as gas_hist, {cur('consumption_m3')} as gas_current,
              count(*) filter (where observed and k < 12) as gas_obs12,
              sum(consumption_m3) filter (where k < {gm}) as gas_t3,
              sum(consumption_m3) filter (where k between 12 and {11 + gm}) as gas_t3_prior,
              any_value(arrears_amount) filter (where k = 0) as gas_arrears,
              coalesce(bool_or(supply_suspended_obs) filter (where observed and k < 12), false) as gas_suspended
            from _ms_gas_monthly group by uscc, as_of""",
        "utility_late": """
            select uscc, as_of, count(distinct k) as utility_late_months from (
              select uscc, as_of, k from _ms_water_monthly where observed and k < 12 and paid_on_time_obs = false
              union all
              select uscc, as_of, k from _ms_gas_monthly where observed and k < 12 and paid_on_time_obs = false)
            group by uscc, as_of""",
        "si": f"""
            select uscc, as_of, any_value(hist_months) as si_hist, {cur('insured_count')} as si_current,
              any_value(insured_count) filter (where k = 0) as insured_now,
              any_value(insured_count) filter (where k = 12) as insured_prior,
              sum(new_enrollments - terminations) filter (where k < {six_si}) as net_hires6,
              avg(insured_count) filter (where k < {six_si}) as insured_mean6,
              any_value(arrears_months) filter (where k = 0) as si_arrears_months,
              sum(amount_paid) filter (where k < 12) as si_paid12,
              sum(amount_due) filter (where k < 12) as si_due12
            from _ms_social_insurance_monthly group by uscc, as_of""",
        "hpf": f"""
            select uscc, as_of, {cur('account_status')} as hpf_current,
              any_value(account_status) filter (where k = 0) as hpf_status,
              any_value(arrears_months) filter (where k = 0) as hpf_arrears_months
            from _ms_hpf_monthly group by uscc, as_of""",
        "customs": f"""
            select uscc, as_of, any_value(hist_months) as cust_hist,
              {cur('coalesce(import_value, export_value)')} as cust_current,
              bool_or(observed) filter (where k < {trader}) as customs_trader,
              sum(coalesce(import_value, 0) + coalesce(export_value, 0)) filter (where k < 12) as trade12,
              sum(coalesce(import_value, 0) + coalesce(export_value, 0)) filter (where k between 12 and 23)
                as trade12_prior
            from _ms_customs_monthly group by uscc, as_of""",
        "recruit": f"""
            select uscc, as_of,
              coalesce(sum(new_job_posts_obs) filter (where k < {six_rec}), 0) as posts6,
              bool_or(observed and (coalesce(new_job_posts_obs, 0) > 0 or coalesce(active_job_posts_obs, 0) > 0))
                filter (where k < {rec_look}) as posted_recently
            from _ms_recruitment group by uscc, as_of""",
    }


def _event_sql(cfg: IndicatorConfig) -> dict[str, str]:
    """Per-(uscc, as_of) aggregates of snapshots, lists and event lists known at each month end."""
    ind = cfg.indicator
    a13, a22, a31, a32, a33 = ind("A1.3"), ind("A2.2"), ind("A3.1"), ind("A3.2"), ind("A3.3")
    c31 = ind("C3.1")
    d13, d42 = ind("D1.3"), ind("D4.2")
    e11, e12, e13, e14, e21 = ind("E1.1"), ind("E1.2"), ind("E1.3"), ind("E1.4"), ind("E2.1")
    e32, e33 = ind("E3.2"), ind("E3.3")
    ipw = a31.table("ip_assets.weights")
    ip_sum = " + ".join(f"{_lit(w)} * coalesce({f}, 0)" for f, w in ipw.items())
    e11x, e21x, e32x, e33x = e11.exp, e21.exp, e32.exp, e33.exp
    assert e11x and e21x and e32x and e33x  # guaranteed by the config validator for EXP
    pen = e21.table("admin_penalties.penalty_type")

    def decay(age: str, half_life: float | None) -> str:
        return "1.0" if half_life is None else f"pow(0.5, {age} / {_lit(half_life)})"

    def window(col: str, months: int | None = None, days: int | None = None) -> str:
        start = _months_ago(months) if months is not None else f"(as_of - to_days({int(days or 0)}))"
        return f"{col} <= as_of and {col} > {start}"

    cap_window = cfg.caps.cap_window_months
    e12_window = int(e12.param("window_months"))
    honour = a33.category_set("public_credit_eval.contract_honoring_grade")
    return {
        "shareholders": f"""
            select uscc, as_of, count(*) as sh_rows, sum(paid_capital) as paid_capital,
              sum(subscribed_capital) as subscribed_capital,
              coalesce(bool_or(subscribed_due_date < as_of and paid_capital < subscribed_capital), false)
                as capital_overdue,
              coalesce(sum(share_ratio) filter (where shareholder_type in
                {_in(a22.category_set('shareholders.shareholder_type'))}), 0) as institutional_share,
              coalesce(sum(share_ratio) filter (where shareholder_type = 'government_or_soe_agency'), 0)
                as government_share
            from ({known_at('shareholders')})
            where coalesce(valid_from, date '1900-01-01') <= as_of and (valid_to is null or valid_to > as_of)
            group by uscc, as_of""",
        "changes": f"""
            select uscc, as_of,
              count(*) filter (where change_item = 'legal_rep') as n_legal_rep,
              count(*) filter (where change_item = 'shareholder') as n_shareholder,
              count(*) filter (where change_item = 'address' and cross_district_move) as n_move,
              count(*) filter (where change_item = 'registered_capital' and capital_after < capital_before)
                as n_capital_decrease
            from ({known_at('registration_changes')})
            where {window('change_date', int(a13.param('window_months')))}
            group by uscc, as_of""",
        "personnel": f"""
            select uscc, as_of, count(*) as n_key_exit from ({known_at('key_personnel')})
            where position in {_in(a13.category_set('key_personnel.position'))}
              and {window('valid_to', int(a13.param('window_months')))}
            group by uscc, as_of""",
        "pledges": f"""
            select uscc, as_of, sum(pledged_equity_amount) as pledged_equity,
              bool_or(pledgee_type = 'natural_person') as pledge_to_person
            from ({known_at('equity_pledges')})
            where status = 'valid' and coalesce(registration_date, as_of) <= as_of
            group by uscc, as_of""",
        "ip": f"""
            select uscc, as_of, ln(1 + greatest(0, {ip_sum})) as ip_z
            from ({known_at('ip_assets')})
            qualify row_number() over (partition by uscc, as_of
                                       order by _known_from desc, _ingest_ts desc) = 1""",
        "oil": f"""
            select uscc, as_of, count(*) as oil_licences,
              bool_or(status = 'valid' and (expiry_date is null or expiry_date >= as_of)) as oil_valid,
              bool_or(status in {_in(a32.category_set('oil_trade_license.status'))}) as oil_suspended
            from ({known_at('oil_trade_license')})
            where coalesce(issue_date, as_of) <= as_of
            group by uscc, as_of""",
        "safety": """
            select uscc, as_of, hazchem_license_type, license_expiry_date, safety_standardization_grade,
              accidents_12m, overdue_hazard_rectifications, true as has_safety
            from ({known}) qualify row_number() over (partition by uscc, as_of
                                                    order by _known_from desc, _ingest_ts desc) = 1""".format(
            known=known_at("safety_production")),
        "public_credit": f"""
            select uscc, as_of, arg_max(public_credit_score, eval_date) as public_credit_score,
              arg_max(red_list_count, eval_date) as red_list_count,
              arg_max(contract_honoring_grade in {_in(honour)}, eval_date) as honour_grade
            from ({known_at('public_credit_eval')}) where eval_date <= as_of
            group by uscc, as_of""",
        "annual": """
            with ar as (select *, case when month(as_of) > 6 then year(as_of) - 1 else year(as_of) - 2 end
                                  as due_year
                        from ({known}) where submit_date is not null and submit_date <= as_of)
            select uscc, as_of, any_value(due_year) as due_year_filed,
              max(report_year) as ar_year,
              arg_max(total_assets, report_year) as ar_assets,
              arg_max(total_liabilities, report_year) as ar_liabilities,
              arg_max(owners_equity, report_year) as ar_equity,
              max(report_year) filter (where report_year >= due_year) as cur_year,
              arg_max(total_assets, report_year) filter (where report_year >= due_year) as cur_assets,
              arg_max(total_liabilities, report_year) filter (where report_year >= due_year) as cur_liabilities,
              arg_max(operating_revenue, report_year) filter (where report_year >= due_year) as cur_revenue,
              arg_max(net_profit, report_year) filter (where report_year >= due_year) as cur_net_profit,
              min(submit_date) filter (where report_year = due_year) as due_submit_date
            from ar group by uscc, as_of""".format(known=known_at("annual_report")),
        "guarantees": f"""
            with g as (select * from ({known_at('external_guarantees')}) where debt_end_date >= as_of),
            latest as (select uscc, as_of, max(report_year) as ry from ({known_at('annual_report')})
                       where submit_date is not null and submit_date <= as_of group by uscc, as_of),
            mutual as (select distinct a.uscc, a.as_of, a.debtor_id from g a join g b
                       on b.uscc = a.debtor_id and b.debtor_id = a.uscc and b.as_of = a.as_of)
            select g.uscc, g.as_of, sum(g.principal_amount) as guaranteed,
              bool_or(m.debtor_id is not null) as mutual_guarantee
            from g join latest l on l.uscc = g.uscc and l.as_of = g.as_of and l.ry = g.report_year
            left join mutual m on m.uscc = g.uscc and m.as_of = g.as_of and m.debtor_id = g.debtor_id
            group by g.uscc, g.as_of""",
        "property": f"""
            select uscc, as_of, count(*) as property_rights,
              coalesce(sum(mortgage_amount) filter (where mortgage_registered), 0) as property_mortgages,
              coalesce(sum(greatest(0, coalesce(assessed_value, 0) - coalesce(mortgage_amount, 0)))
                       filter (where not coalesce(seizure_flag, false)), 0) as free_collateral
            from ({known_at('real_property_rights')})
            where (expiry_date is null or expiry_date >= as_of) and coalesce(acquisition_date, as_of) <= as_of
            group by uscc, as_of""",
        "movable": f"""
            select uscc, as_of, sum(secured_amount) as movable_secured
            from ({known_at('movable_collateral_registry')})
            where status in {_in(c31.category_set('movable_collateral_registry.status'))}
              and coalesce(registration_date, as_of) <= as_of
            group by uscc, as_of""",
        "vessels": f"""
            select uscc, as_of, count(*) as vessels,
              coalesce(sum(vessel_mortgage_amount), 0) as vessel_mortgages,
              coalesce(sum(psc_detentions_24m), 0) as psc_detentions,
              coalesce(sum(maritime_penalties_24m), 0) as maritime_penalties
            from ({known_at('vessels')}) group by uscc, as_of""",
        "tax_profile": f"""
            select uscc, as_of,
              arg_max(tax_credit_grade, grade_year) filter (where tax_credit_grade is not null) as tax_grade,
              coalesce(arg_max(abnormal_taxpayer_flag, struct_pack(g := grade_year, k := _known_from)), false)
                as abnormal_taxpayer
            from ({known_at('tax_profile')}) group by uscc, as_of""",
        "tax_announcements": f"""
            select uscc, as_of,
              bool_or(announcement_type = 'major_violation' and {_active('removal_date')}) as tax_major_active,
              bool_or(announcement_type = 'arrears' and {_active('removal_date')}) as tax_arrears_active,
              coalesce(max(arrears_balance) filter (where announcement_type = 'arrears'
                                                 and {_active('removal_date')}), 0) as tax_arrears_balance,
              bool_or(announcement_type = 'arrears'
                      and {window('removal_date', int(d13.param('removal_window_months')))})
                as tax_arrears_removed
            from ({known_at('tax_announcements')}) where coalesce(publish_date, as_of) <= as_of
            group by uscc, as_of""",
        "msa": f"""
            select uscc, as_of,
              count(*) filter (where {_active('removal_date')}) as msa_active,
              bool_or(list_type = 'serious_illegal_dishonest' and {_active('removal_date')}) as msa_serious,
              bool_or(list_type = 'abnormal_operation' and {_active('removal_date')}
                      and list_reason in {_in(d42.category_set('msa_credit_lists.list_reason'))}) as msa_severe,
              bool_or(list_type = 'abnormal_operation' and {_active('removal_date')}) as msa_abnormal,
              bool_or(list_type = 'abnormal_operation' and {_active('removal_date')}
                      and list_reason = 'unreachable_address') as msa_unreachable,
              bool_or({window('removal_date', int(d42.param('removal_window_months')))}) as msa_removed
            from ({known_at('msa_credit_lists')}) where coalesce(list_date, as_of) <= as_of
            group by uscc, as_of""",
        "litigation": f"""
            select uscc, as_of, sum(
              (case when case_type = 'bankruptcy' then {_lit(e11.param('bankruptcy_weight'))}
                    else {_case('cause_category', e11.table('litigation_cases.cause_category'))} end)
              * (1 + log10(1 + greatest(coalesce(claim_amount, 0), 0) / {_lit(e11.param('claim_scale'))}))
              * (case when outcome in {_in(e11.category_set('litigation_cases.outcome'))}
                      then {_lit(e11.param('lost_factor'))} else 1.0 end)
              * {decay("datediff('day', filing_date, as_of)", e11x.half_life_days)}) as litigation_s
            from ({known_at('litigation_cases')})
            where party_role = 'defendant' and {window('filing_date', e11x.window_months, e11x.window_days)}
            group by uscc, as_of""",
        "enforcement": f"""
            select uscc, as_of,
              coalesce(sum(unfulfilled_amount) filter (where status in
                {_in(e12.category_set('enforcement_cases.status'))}), 0) as enforcement_unfulfilled,
              coalesce(bool_or(status = 'terminated_no_assets'
                      and {window('close_date', e12_window)}), false) as enforcement_no_assets,
              coalesce(bool_or(status = 'terminated_no_assets' and {window('close_date', cap_window)}), false)
                as cap_no_assets,
              count(*) filter (where status = 'concluded'
                               and {window('close_date', e12_window)}) as enforcement_concluded
            from ({known_at('enforcement_cases')}) where coalesce(filing_date, as_of) <= as_of
            group by uscc, as_of""",
        "dishonest": f"""
            select uscc, as_of, count(*) filter (where {_active('removal_date')}) as dishonest_active,
              bool_or({window('removal_date', int(e13.param('removal_window_months')))}) as dishonest_removed
            from ({known_at('dishonest_debtors')}) where coalesce(publish_date, as_of) <= as_of
            group by uscc, as_of""",
        "restrictions": f"""
            select uscc, as_of, count(*) filter (where {_active('removal_date')}) as restriction_active,
              bool_or({window('removal_date', int(e13.param('removal_window_months')))}) as restriction_removed
            from ({known_at('consumption_restrictions')}) where coalesce(issue_date, as_of) <= as_of
            group by uscc, as_of""",
        "freezes": f"""
            select uscc, as_of, sum(frozen_equity_amount) as frozen_equity from ({known_at('judicial_freezes')})
            where status in {_in(e14.category_set('judicial_freezes.status'))}
              and coalesce(freeze_start_date, as_of) <= as_of
              and (freeze_end_date is null or freeze_end_date >= as_of)
            group by uscc, as_of""",
        "own_freezes": f"""
            select holder_id as uscc, as_of, true as own_stake_frozen from ({known_at('judicial_freezes')})
            where status in {_in(e14.category_set('judicial_freezes.status'))}
              and coalesce(freeze_start_date, as_of) <= as_of
              and (freeze_end_date is null or freeze_end_date >= as_of)
            group by holder_id, as_of""",
        "penalties": f"""
            select uscc, as_of, sum(
              ({_case('penalty_type', pen)}
               + case when penalty_type = 'fine' and fine_amount >= {_lit(e21.param('fine_high'))}
                      then {_lit(e21.param('fine_high_bonus'))}
                      when penalty_type = 'fine' and fine_amount >= {_lit(e21.param('fine_mid'))}
                      then {_lit(e21.param('fine_mid_bonus'))} else 0 end)
              * {_case('severity', e21.table('admin_penalties.severity'))}
              * {decay("datediff('day', decision_date, as_of)", e21x.half_life_days)}) as penalty_s
            from ({known_at('admin_penalties')})
            where {window('decision_date', e21x.window_months, e21x.window_days)}
              and (credit_repair_date is null or credit_repair_date > as_of)
              and (publicity_end_date >= as_of or decision_date > {_months_ago(e21.param('recent_months'))})
            group by uscc, as_of""",
        "env": f"""
            select uscc, as_of, arg_max(env_credit_color, eval_year) as env_color,
              arg_max(online_monitoring_exceedances, eval_year) as env_exceedances, true as has_env
            from ({known_at('env_credit')}) group by uscc, as_of""",
        "news": f"""
            with n as (select uscc, as_of, topic, publish_date, severity from ({known_at('news_sentiment')})
                       where sentiment = 'negative'
                         and {window('publish_date', e32x.window_months, e32x.window_days)}),
            c as (select *, case when datediff('day', lag(publish_date) over same_topic, publish_date)
                                      <= {int(e32.param('dedupe_days'))} then 0 else 1 end as first_of_run
                  from n window same_topic as (partition by uscc, as_of, topic order by publish_date))
            select uscc, as_of, sum(coalesce(severity, 0) * {_case('topic', e32.table('news_sentiment.topic'))}
                                    * {decay("datediff('day', publish_date, as_of)", e32x.half_life_days)})
                   as news_s
            from c where first_of_run = 1 group by uscc, as_of""",
        "labour": f"""
            select uscc, as_of, sum(sqrt(greatest(coalesce(claimants_count, 1), 0))
                                    * {_case('dispute_type', e33.table('labor_disputes.dispute_type'))}
                                    * case when outcome = 'award_for_employer'
                                           then {_lit(e33.param('employer_award_factor'))} else 1.0 end
                                    * {decay("datediff('day', case_date, as_of)", e33x.half_life_days)})
                   as labour_s,
              coalesce(bool_or(wage_arrears_blacklist), false) as wage_blacklist
            from ({known_at('labor_disputes')})
            where {window('case_date', e33x.window_months, e33x.window_days)}
            group by uscc, as_of""",
    }


def _active(removal: str) -> str:
    return f"({removal} is null or {removal} > as_of)"


def _register_seasonal(con: duckdb.DuckDBPyConnection, factors: dict[str, Sequence[float]]) -> None:
    rows = [(sector, m + 1, float(f)) for sector, fs in factors.items() for m, f in enumerate(fs)]
    con.execute("create or replace temp table _season (sector varchar, month_num integer, factor double)")
    if rows:
        con.executemany("insert into _season values (?, ?, ?)", rows)


def _register_registration(con: duckdb.DuckDBPyConnection, months: Sequence[date], cfg: IndicatorConfig) -> None:
    """`_reg`: the registered grid (as `grid.registered_grid`) with the registration snapshot and sector."""
    register_months(con, months)
    con.execute(f"""
        create or replace temp table _reg as
        select uscc, as_of, ent_status, establish_date, registered_capital, industry_code,
               {_sector_sql(cfg)} as sector, coalesce(address_is_cluster_registration, false) as cluster_address,
               operating_term_end
        from ({known_at('ent_registration')})
        where ent_status not in ('deregistered', 'moved_out')
        qualify row_number() over (partition by uscc, as_of order by _known_from desc, _ingest_ts desc) = 1""")


def raw_inputs(con: duckdb.DuckDBPyConnection, months: Sequence[date], seasonal: dict[str, Sequence[float]],
               config: IndicatorConfig | None = None) -> pd.DataFrame:
    """One row per registered (uscc, as_of) with every intermediate quantity the 49 indicators need."""
    cfg = config or load_indicator_config()
    _ensure_sources(con)
    _register_registration(con, months, cfg)
    _register_seasonal(con, seasonal)
    blocks = {**_series_sql(cfg, con), **_event_sql(cfg)}
    for name, sql in blocks.items():
        con.execute(f"create or replace temp table _blk_{name} as {sql}")
    joins = "\n".join(f"left join _blk_{name} using (uscc, as_of)" for name in blocks)
    frame = con.execute(f"""
        with base as (select * from _reg)
        select * from base {joins}
        order by as_of, uscc""").df()
    report_sales = con.execute(f"""
        select r.uscc, r.as_of, s.year_sales as report_year_sales, s.year_months as report_year_months
        from _reg r join _blk_annual a using (uscc, as_of)
        join ({_series_sql_report_year()}) s
          on s.uscc = r.uscc and s.as_of = r.as_of and s.sales_year = a.cur_year
    """).df()
    for table in [*(f"_blk_{name}" for name in blocks), *(f"_ms_{code}" for code in _MONTHLY)]:
        con.execute(f"drop table if exists {table}")
    frame = frame.merge(report_sales, on=["uscc", "as_of"], how="left")
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame


def _series_sql_report_year() -> str:
    return """select uscc, as_of, year(pm) as sales_year, sum(invoices_issued_amount_obs) as year_sales,
                     count(*) filter (where observed) as year_months
              from _ms_tax_monthly group by uscc, as_of, year(pm)"""


# ------------------------------------------------------------------------------------------------
# Stage 2: scores
# ------------------------------------------------------------------------------------------------

Scored = tuple[np.ndarray, np.ndarray]


class _Context:
    """What a scorer needs besides the frame: config, frozen references, related-party scores."""

    def __init__(self, cfg: IndicatorConfig, params: NormParams | None, related: pd.Series | None) -> None:
        self.cfg, self.params, self.related = cfg, params, related

    def pct(self, ind: Indicator, x: np.ndarray, sector: np.ndarray) -> np.ndarray:
        """Percentile score with the frozen reference (per sector for PCT_S); NaN while fitting."""
        assert ind.pct is not None
        if self.params is None:
            return np.full(len(x), np.nan)
        ref = self.params.references.get(ind.code)
        if ref is None:
            raise ZhouxinError(f"norm params {self.params.norm_version}: no reference for {ind.code}")
        out = score_pct(x, ref.pooled.quantiles, ind.pct)
        if ind.method == "PCT_S":
            for sector_name, sref in ref.sectors.items():
                m = sector == sector_name
                if m.any():
                    out[m] = score_pct(x[m], sref.quantiles, ind.pct)
        return out


def _col(f: pd.DataFrame, name: str, fill: float | None = None) -> np.ndarray:
    v = pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(v), fill, v) if fill is not None else v


def _flag(f: pd.DataFrame, name: str) -> np.ndarray:
    return f[name].fillna(False).astype(bool).to_numpy()


def _where(cond: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """value where cond, NaN elsewhere (N/A)."""
    return np.where(cond, value, np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(num), np.nan), where=(den != 0) & ~np.isnan(den))


def _history(f: pd.DataFrame, prefix: str, ind: Indicator) -> np.ndarray:
    """The source covers the firm now (gap <= carry-forward) and has the history the indicator needs."""
    ok = _flag(f, f"{prefix}_current")
    if ind.min_history_months is not None:
        ok &= _col(f, f"{prefix}_hist", 0) >= ind.min_history_months
    return ok


def _age_years(f: pd.DataFrame, cfg: IndicatorConfig) -> np.ndarray:
    est = pd.to_datetime(f["establish_date"])
    return ((f["as_of"] - est).dt.days / cfg.norm.days_per_year).to_numpy(dtype=float)


def _a1_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    x = np.maximum(_age_years(f, c.cfg), 0)
    return x, score_pw(x, ind.knots or ())


def _a1_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    subs = _col(f, "subscribed_capital")
    x = np.minimum(1.0, _ratio(_col(f, "paid_capital", 0), subs))
    x = _where((_col(f, "sh_rows", 0) > 0) & (subs > 0), x)
    s = score_pw(x, ind.knots or ()) - ind.param("overdue_deduction") * _flag(f, "capital_overdue")
    s = np.maximum(0, s)
    return x, s


def _a1_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    n = {k: _col(f, col, 0) for k, col in [("legal_rep", "n_legal_rep"), ("shareholder", "n_shareholder"),
                                             ("cross_district_move", "n_move"),
                                             ("capital_decrease", "n_capital_decrease"),
                                             ("key_personnel_exit", "n_key_exit")]}
    x = np.sum(list(n.values()), axis=0)
    return x, score_ded(*(ind.param(k) * v for k, v in n.items()))


def _a1_4(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    dead = f["ent_status"].isin(ind.category_set("ent_registration.ent_status")).to_numpy()
    term = pd.to_datetime(f["operating_term_end"])
    near_end = (term <= f["as_of"] + pd.to_timedelta(ind.param("term_window_days"), unit="D")).fillna(False)
    ded = ind.param("cluster_deduction") * _flag(f, "cluster_address") + \
        ind.param("term_deduction") * near_end.to_numpy(dtype=bool)
    x = np.where(dead, 100 - ind.param("status_score"), ded)
    return x, np.where(dead, ind.param("status_score"), score_ded(ded))


def _a2_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    cap = _col(f, "registered_capital")
    x = _where(cap > 0, _ratio(_col(f, "pledged_equity", 0), cap))
    s = score_pw(x, ind.knots or ()) - ind.param("natural_person_deduction") * _flag(f, "pledge_to_person")
    return x, np.maximum(0, s)


def _a2_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    # Deviation: the spec excludes enterprise holders whose own signal level is >= 5; signal levels are
    # not a mart input yet, so every institutional holder counts.
    has = _col(f, "sh_rows", 0) > 0
    x = _where(has, np.clip(_col(f, "institutional_share", 0), 0, 1))
    government = _col(f, "government_share", 0) >= ind.param("government_majority")
    s = np.where(government, ind.param("government_score"), score_lin(x, ind.param("intercept"), ind.param("slope")))
    return x, _where(has, s)


def _a3_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    z = _col(f, "ip_z")
    pos = z > 0
    s = np.where(pos, c.pct(ind, np.where(pos, z, np.nan), f["sector"].to_numpy()), ind.param("zero_score"))
    return z, _where(~np.isnan(z), s)


def _a3_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    oil_sector = f["sector"].isin(ind.category_set("zhoushan_sector.oil_chain")).to_numpy()
    n_lic = _col(f, "oil_licences", 0)
    hazchem = f["hazchem_license_type"].notna().to_numpy() & (f["hazchem_license_type"] != "none").to_numpy()
    applicable = oil_sector | (n_lic > 0) | hazchem
    base = np.where(n_lic == 0, ind.param("base"),
                    np.where(_flag(f, "oil_valid"), ind.param("base") + ind.param("valid_oil_bonus"),
                             np.where(_flag(f, "oil_suspended"), ind.param("invalid_suspended_score"),
                                      ind.param("invalid_other_score"))))
    expiry = pd.to_datetime(f["license_expiry_date"])
    expired = hazchem & (expiry < f["as_of"]).fillna(False).to_numpy(dtype=bool)
    grade = f["safety_standardization_grade"].map(ind.table("safety_production.safety_standardization_grade"))
    points = base - ind.param("hazchem_expired_deduction") * expired + grade.fillna(0).to_numpy(dtype=float)
    x = _where(applicable, points)
    return x, np.clip(x, 0, 100)


def _a3_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has = f["red_list_count"].notna().to_numpy() | f["honour_grade"].notna().to_numpy()
    x = _where(has, _col(f, "red_list_count", 0) + _flag(f, "honour_grade"))
    return x, score_lin(x, ind.param("intercept"), ind.param("slope"))


def _b1_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    x = _where(_history(f, "tax", ind), np.log1p(np.maximum(0, _col(f, "sales12", 0))))
    return x, c.pct(ind, x, f["sector"].to_numpy())


def _growth(cur: np.ndarray, prior: np.ndarray, ok: np.ndarray, min_prior: float) -> np.ndarray:
    return _where(ok & (prior >= min_prior), _ratio(cur, prior) - 1)


def _b1_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    g = _growth(_col(f, "sales12"), _col(f, "sales12_prior"), _history(f, "tax", ind), ind.param("min_prior"))
    return g, score_pw(g, ind.knots or ())


def _b1_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    x = _where(_history(f, "tax", ind), _col(f, "sales_cv"))
    return x, c.pct(ind, x, f["sector"].to_numpy())


def _b2_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    prior = _col(f, "kwh_t3_prior")
    ok = _history(f, "elec", ind) & (prior >= ind.param("min_baseline_kwh"))
    r = _where(ok, _ratio(_col(f, "kwh_t3"), prior))
    return r, score_pw(r, ind.knots or ())


def _b2_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    cap = _col(f, "kwh_capacity")
    u = _where(_flag(f, "elec_current") & (cap > 0), _ratio(_col(f, "kwh_mean3"), cap))
    return u, c.pct(ind, u, f["sector"].to_numpy())


def _b2_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    wp, gp = _col(f, "water_t4_prior"), _col(f, "gas_t3_prior")
    rw = _where(_history(f, "water", ind) & (wp > 0), _ratio(_col(f, "water_t4"), wp))
    rg = _where(_history(f, "gas", ind) & (gp > 0), _ratio(_col(f, "gas_t3"), gp))
    both = np.vstack([rw, rg])
    n = (~np.isnan(both)).sum(axis=0)
    r = _where(n > 0, np.nansum(both, axis=0) / np.maximum(n, 1))
    return r, score_pw(r, ind.knots or ())


def _b3_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    prior = _col(f, "insured_prior")
    ok = _history(f, "si", ind) & (prior >= ind.param("min_baseline"))
    r = _where(ok, _ratio(_col(f, "insured_now"), prior))
    return r, score_pw(r, ind.knots or ())


def _b3_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    mean = _col(f, "insured_mean6")
    x = _where(_flag(f, "si_current") & (mean > 0), _ratio(_col(f, "net_hires6", 0), mean))
    return x, score_pw(x, ind.knots or ())


def _b3_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    posts = _col(f, "posts6", 0)
    x = posts / np.maximum(1.0, _col(f, "insured_mean6", 1))
    active = posts > 0
    dormant = ~active & _flag(f, "posted_recently")
    s = np.where(active, c.pct(ind, _where(active, x), f["sector"].to_numpy()),
                 np.where(dormant, ind.param("dormant_score"), np.nan))
    return _where(active | dormant, x), s


def _b4_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    x = _where(_flag(f, "tax_current"), _col(f, "top5_share"))
    return x, c.pct(ind, x, f["sector"].to_numpy())


def _b4_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    ok = _flag(f, "customs_trader") & _history(f, "cust", ind)
    g = _growth(_col(f, "trade12"), _col(f, "trade12_prior"), ok, np.nextafter(0, 1))
    return g, score_pw(g, ind.knots or ())


def _b4_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    red = np.where(np.isnan(_col(f, "red_weighted")), _col(f, "red_mean"), _col(f, "red_weighted"))
    x = _where(_flag(f, "tax_current"), red + _col(f, "void_mean"))
    return x, score_pw(x, ind.knots or ())


def _report_state(f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(has a report for the latest due year or later, report required = firm existed in the due year)."""
    as_of = f["as_of"]
    due_year = np.where(as_of.dt.month > 6, as_of.dt.year - 1, as_of.dt.year - 2)
    est_year = pd.to_datetime(f["establish_date"]).dt.year.to_numpy(dtype=float)
    required = ~(est_year > due_year)
    return f["cur_year"].notna().to_numpy(), required


def _annual(f: pd.DataFrame, ind: Indicator, x: np.ndarray, score: Callable[[np.ndarray], np.ndarray]) -> Scored:
    """Report-based indicator: score when filed and computable; missing score when due and not filed."""
    filed, required = _report_state(f)
    s = score(x)
    missing = ~filed & required
    s = np.where(missing, ind.missing_score if ind.missing_score is not None else np.nan, s)
    return _where(filed, x), np.where(filed | missing, s, np.nan)


def _c1_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    assets = _col(f, "cur_assets")
    x = _where(assets > 0, _ratio(_col(f, "cur_liabilities"), assets))
    return _annual(f, ind, x, lambda v: score_pw(v, ind.knots or ()))


def _c1_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    rev = _col(f, "cur_revenue")
    x = _where(rev > 0, _ratio(_col(f, "cur_net_profit"), rev))
    return _annual(f, ind, x, lambda v: c.pct(ind, v, f["sector"].to_numpy()))


def _c1_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    assets = _col(f, "cur_assets")
    x = _where(assets > 0, _ratio(_col(f, "cur_net_profit"), assets))
    return _annual(f, ind, x, lambda v: c.pct(ind, v, f["sector"].to_numpy()))


def _c1_4(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    sales = _col(f, "report_year_sales")
    ok = (_col(f, "report_year_months", 0) > 0) & ~np.isnan(_col(f, "cur_revenue"))
    rev = np.maximum(_col(f, "cur_revenue"), 0)
    x = _where(ok, np.abs(np.log((rev + 1) / (np.maximum(sales, 0) + 1))))
    return _annual(f, ind, x, lambda v: score_pw(v, ind.knots or ()))


def _c2_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    sales = _col(f, "sales12")
    x = _where(_history(f, "tax", ind) & (sales > 0),
               _col(f, "tax12", 0) / np.maximum(sales, ind.param("sales_floor")))
    return x, c.pct(ind, x, f["sector"].to_numpy())


def _c2_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    g = _growth(_col(f, "tax12"), _col(f, "tax12_prior"), _history(f, "tax", ind), ind.param("min_prior"))
    return g, score_pw(g, ind.knots or ())


def _c3_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    secured = _col(f, "property_mortgages", 0) + _col(f, "movable_secured", 0) + _col(f, "vessel_mortgages", 0)
    assets = _col(f, "ar_assets")
    fallback = np.fmax(_col(f, "registered_capital"), _col(f, "sales12") / ind.param("sales_divisor"))
    den = np.where(assets > 0, assets, fallback)
    x = _where(den > 0, _ratio(secured, den))
    return x, score_pw(x, ind.knots or ())


def _c3_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    eq = np.fmax(_col(f, "ar_equity"), ind.param("equity_floor"))
    x = _col(f, "guaranteed", 0) / eq
    s = score_pw(x, ind.knots or ()) - ind.param("mutual_deduction") * _flag(f, "mutual_guarantee")
    return x, np.maximum(0, s)


def _c3_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has = _col(f, "property_rights", 0) > 0
    liab = np.fmax(_col(f, "ar_liabilities"), ind.param("liabilities_floor"))
    r = np.where(has, _col(f, "free_collateral", 0) / liab, 0.0)
    s = np.where(has, score_lin(np.minimum(ind.param("cap"), r), ind.param("intercept"), ind.param("slope")),
                 ind.param("no_property_score"))
    return r, s


def _d1_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    grade = f["tax_grade"].map(ind.table("tax_profile.tax_credit_grade")).to_numpy(dtype=float)
    x = np.where(_flag(f, "abnormal_taxpayer"), ind.param("abnormal_score"), grade)
    return x, x.copy()


def _d1_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has = _col(f, "tax_obs12", 0) > 0
    late, fee, zs = _col(f, "n_late_filing", 0), _col(f, "n_late_fee", 0), _flag(f, "zero_stop").astype(float)
    x = _where(has, late + fee + zs)
    s = score_ded(ind.param("late") * late, ind.param("fee") * fee, ind.param("zero_stop") * zs)
    return x, _where(has, s)


def _d1_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    bal = _col(f, "tax_arrears_balance", 0)
    arrears = _flag(f, "tax_arrears_active")
    s = np.select([_flag(f, "tax_major_active"), arrears & (bal >= ind.param("high_arrears_balance")), arrears,
                   _flag(f, "tax_arrears_removed")],
                  [ind.param("major_violation"), ind.param("high_arrears"), ind.param("other_arrears"),
                   ind.param("removed_recently")], ind.param("clean"))
    return bal, s.astype(float)


def _band_score(x: np.ndarray, bands: Sequence[tuple[float, float]]) -> np.ndarray:
    """CAT on a count: the first band (most severe first) whose min the value reaches."""
    out = np.full(len(x), np.nan)
    for lo, s in reversed(bands):
        out = np.where(x >= lo, s, out)
    return np.where(np.isnan(x), np.nan, out)


def _d2_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    ok = _flag(f, "si_current")
    x = _where(ok, _col(f, "si_arrears_months", 0))
    s = _band_score(x, ind.bands or ())
    due = _col(f, "si_due12")
    p = _where(due > 0, np.clip(_ratio(_col(f, "si_paid12", 0), due), 0, None))
    s = np.where(p < ind.param("payment_ratio_floor"), s * p, s)
    return x, s


def _d2_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    # 'closed' accounts and 'sealed' accounts without insured staff count as no HPF account (not in the spec).
    status = f["hpf_status"].where(_flag(f, "hpf_current")).to_numpy(dtype=object)
    arrears = _col(f, "hpf_arrears_months", 0)
    insured = _col(f, "insured_now", 0)
    sealed_staffed = (status == "sealed") & (insured > 0)
    account = np.isin(status, ["normal", "deferred"]) | sealed_staffed
    s = np.select(
        [account & (arrears >= ind.param("high_arrears_months")), sealed_staffed,
         account & (status == "deferred"), account & (arrears > 0), account,
         ~account & (insured >= ind.param("no_account_min_insured"))],
        [ind.param("high_arrears"), ind.param("sealed"), ind.param("deferred"), ind.param("low_arrears"),
         ind.param("normal"), ind.param("no_account")], np.nan)
    return _where(account, arrears), s.astype(float)


def _d3_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has = _col(f, "elec_obs12", 0) > 0
    m = _where(has, _col(f, "elec_arrears_days", 0))
    s = score_ded(ind.param("late") * _col(f, "elec_late", 0), score_pw(np.nan_to_num(m), ind.knots or ()))
    return m, _where(has, s)


def _d3_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has = (_col(f, "water_obs12", 0) > 0) | (_col(f, "gas_obs12", 0) > 0)
    late = _col(f, "utility_late_months", 0)
    arrears = (_col(f, "water_arrears", 0) > 0) | (_col(f, "gas_arrears", 0) > 0)
    s = score_ded(ind.param("late") * late, ind.param("suspended") * _flag(f, "gas_suspended"),
                  ind.param("arrears") * arrears)
    return _where(has, late), _where(has, s)


def _d4_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    as_of = f["as_of"]
    due_year = np.where(as_of.dt.month > 6, as_of.dt.year - 1, as_of.dt.year - 2)
    deadline = pd.to_datetime(pd.DataFrame({"year": due_year + 1, "month": int(ind.param("deadline_month")),
                                            "day": int(ind.param("deadline_day"))}))
    submitted = pd.to_datetime(f["due_submit_date"])
    days_late = np.maximum(0, (submitted - deadline).dt.days.to_numpy(dtype=float))
    est_year = pd.to_datetime(f["establish_date"]).dt.year.to_numpy(dtype=float)
    required = ~(est_year > due_year)
    s = np.where(np.isnan(days_late), ind.param("not_filed"),
                 np.where(days_late > 0, ind.param("late"), ind.param("on_time")))
    return _where(required, days_late), _where(required, s)


def _d4_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    conditions = [_flag(f, c) for c in ("msa_serious", "msa_severe", "msa_abnormal", "msa_removed")]
    s = np.select(conditions,
                  [ind.param("serious"), ind.param("abnormal_severe"), ind.param("abnormal_other"),
                   ind.param("removed_recently")], ind.param("clean"))
    return _col(f, "msa_active", 0), s.astype(float)


def _d4_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    x = _col(f, "public_credit_score")
    return x, score_lin(x, ind.param("intercept"), ind.param("slope"))


def _exp_indicator(f: pd.DataFrame, ind: Indicator, column: str) -> Scored:
    assert ind.exp is not None
    s_sum = _col(f, column, 0)
    return s_sum, score_exp(s_sum, ind.exp.k)


def _e1_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    return _exp_indicator(f, ind, "litigation_s")


def _e1_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    sales = np.fmax(_col(f, "sales12"), ind.param("sales_floor"))
    r = _col(f, "enforcement_unfulfilled", 0) / sales
    s = score_pw(r, ind.knots or ())
    s = np.where(_flag(f, "enforcement_no_assets"), np.minimum(s, ind.param("no_assets_cap")), s)
    s = np.maximum(0, s - ind.param("concluded_deduction") * _col(f, "enforcement_concluded", 0))
    return r, s


def _e1_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    dis, res = _col(f, "dishonest_active", 0), _col(f, "restriction_active", 0)
    removed = _flag(f, "dishonest_removed") | _flag(f, "restriction_removed")
    s = np.select([dis > 0, res > 0, removed], [ind.param("dishonest"), ind.param("restriction"),
                                                ind.param("removed_recently")], ind.param("clean"))
    return dis + res, s.astype(float)


def _e1_4(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    cap = _col(f, "registered_capital")
    x = _where(cap > 0, _ratio(_col(f, "frozen_equity", 0), cap))
    s = score_pw(x, ind.knots or ()) - ind.param("own_deduction") * _flag(f, "own_stake_frozen")
    return x, np.maximum(0, s)


def _e2_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    return _exp_indicator(f, ind, "penalty_s")


def _e2_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    has_env, has_safety, has_vessel = _flag(f, "has_env"), _flag(f, "has_safety"), _col(f, "vessels", 0) > 0
    colour = f["env_color"].map(ind.table("env_credit.env_credit_color")).to_numpy(dtype=float)
    base = np.where(has_env & ~np.isnan(colour), colour, ind.param("no_env_base"))
    ded = (ind.param("accidents") * _col(f, "accidents_12m", 0)
           + ind.param("overdue_hazards") * _col(f, "overdue_hazard_rectifications", 0)
           + np.minimum(ind.param("exceedance_cap"), ind.param("exceedance") * _col(f, "env_exceedances", 0))
           + ind.param("psc_detentions") * _col(f, "psc_detentions", 0)
           + ind.param("maritime_penalties") * _col(f, "maritime_penalties", 0))
    applicable = has_env | has_safety | has_vessel
    x = _where(applicable, (100 - base) + ded)
    return x, _where(applicable, np.maximum(0, base - ded))


def _e3_1(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    if c.related is None:
        nan = np.full(len(f), np.nan)
        return nan, nan.copy()
    s = np.clip(c.related.to_numpy(dtype=float), 0, 100)
    return 100 - s, s


def _e3_2(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    return _exp_indicator(f, ind, "news_s")


def _e3_3(f: pd.DataFrame, ind: Indicator, c: _Context) -> Scored:
    s_sum, s = _exp_indicator(f, ind, "labour_s")
    return s_sum, np.where(_flag(f, "wage_blacklist"), np.minimum(s, ind.param("blacklist_cap")), s)


SCORERS: dict[str, Callable[[pd.DataFrame, Indicator, _Context], Scored]] = {
    "A1.1": _a1_1, "A1.2": _a1_2, "A1.3": _a1_3, "A1.4": _a1_4, "A2.1": _a2_1, "A2.2": _a2_2,
    "A3.1": _a3_1, "A3.2": _a3_2, "A3.3": _a3_3,
    "B1.1": _b1_1, "B1.2": _b1_2, "B1.3": _b1_3, "B2.1": _b2_1, "B2.2": _b2_2, "B2.3": _b2_3,
    "B3.1": _b3_1, "B3.2": _b3_2, "B3.3": _b3_3, "B4.1": _b4_1, "B4.2": _b4_2, "B4.3": _b4_3,
    "C1.1": _c1_1, "C1.2": _c1_2, "C1.3": _c1_3, "C1.4": _c1_4, "C2.1": _c2_1, "C2.2": _c2_2,
    "C3.1": _c3_1, "C3.2": _c3_2, "C3.3": _c3_3,
    "D1.1": _d1_1, "D1.2": _d1_2, "D1.3": _d1_3, "D2.1": _d2_1, "D2.2": _d2_2, "D3.1": _d3_1,
    "D3.2": _d3_2, "D4.1": _d4_1, "D4.2": _d4_2, "D4.3": _d4_3,
    "E1.1": _e1_1, "E1.2": _e1_2, "E1.3": _e1_3, "E1.4": _e1_4, "E2.1": _e2_1, "E2.2": _e2_2,
    "E3.1": _e3_1, "E3.2": _e3_2, "E3.3": _e3_3,
}
"""Indicator code -> scorer returning (raw x, score); N/A is NaN in the score."""


def _score_indicators(frame: pd.DataFrame, ctx: _Context) -> dict[str, Scored]:
    missing = {i.code for i in ctx.cfg.indicators} - set(SCORERS)
    if missing:
        raise ConfigError(f"indicators.yaml lists indicators without a scorer: {sorted(missing)}")
    out = {}
    for ind in ctx.cfg.indicators:
        raw, score = SCORERS[ind.code](frame, ind, ctx)
        raw = np.asarray(raw, dtype=float)
        score = np.clip(np.asarray(score, dtype=float), 0.0, 100.0)
        if ctx.params is not None:  # while fitting, percentile scores are not defined yet
            raw = np.where(np.isnan(score), np.nan, raw)
        out[ind.code] = (raw, score)
    return out


# ------------------------------------------------------------------------------------------------
# Reference fitting (§3.8)
# ------------------------------------------------------------------------------------------------


def _month_end(month: str) -> date:
    return pd.Period(month, freq="M").end_time.date()


def choose_base_month(con: duckdb.DuckDBPyConnection, requested: str, fallback_months: int
                      ) -> tuple[str, str | None]:
    """The base month, or the fallback when the world does not cover it: the first month at least
    `fallback_months` after the world's first month of monthly data (tax_monthly)."""
    first, last = con.execute("select min(period_month), max(period_month) from tax_monthly_scd").fetchall()[0]
    if first is None:
        raise ZhouxinError("cannot fit reference parameters: the warehouse has no tax_monthly rows")
    start, end = pd.Period(first, freq="M"), pd.Period(last, freq="M")
    req = pd.Period(requested, freq="M")
    if start <= req <= end:
        return str(req), None
    fallback = min(start + fallback_months, end)
    return str(fallback), (f"world covers {start}..{end}, not the base month {req}: fell back to {fallback} "
                           f"(first month >= {fallback_months} months after the world start)")


def fit_seasonal_factors(con: duckdb.DuckDBPyConnection, base_month: str, config: IndicatorConfig | None = None
                         ) -> tuple[dict[str, tuple[float, ...]], str | None]:
    """B1.3 sector-month seasonal factors (§3.8): median over the reference firms (active at the base
    month) of monthly sales / its centred 12-month mean (t-6..t+5: with the one-month reporting lag a
    2x12 average would leave one calendar month without an estimate), on the window ending at the base
    month as known at its end; normalised to mean 1 per sector; sectors without all 12 months use the
    pooled factors."""
    cfg = config or load_indicator_config()
    as_of = _month_end(base_month)
    _ensure_sources(con)
    _register_registration(con, [as_of], cfg)
    start = (pd.Period(base_month, freq="M") - (cfg.norm.seasonal_window_months - 1)).start_time.date()
    rows = con.execute(f"""
        with t as (select s.uscc, s.period_month as pm, s.invoices_issued_amount as x, g.sector
                   from ({known_at('tax_monthly')}) s join _reg g on g.uscc = s.uscc and g.as_of = s.as_of
                   where g.ent_status = 'active' and s.period_month >= date '{start}'
                     and s.period_month <= date '{as_of}'
                   qualify row_number() over (partition by s.uscc, s.period_month
                                              order by s._known_from desc, s._ingest_ts desc) = 1),
        w as (select *, count(*) over c as n, avg(x) over c as centred_mean
              from t window c as (partition by uscc order by year(pm) * 12 + month(pm)
                                  range between 6 preceding and 5 following)),
        r as (select sector, month(pm) as month_num, x / centred_mean as ratio
              from w where n = 12 and centred_mean > 0)
        select sector, month_num, median(ratio) as factor, count(*) as n from r group by all
        union all
        select '_pooled', month_num, median(ratio), count(*) from r group by all""").df()
    sectors = cfg.sector_names()

    def normalised(part: pd.DataFrame) -> tuple[float, ...] | None:
        if len(part) < 12:
            return None
        v = part.sort_values("month_num")["factor"].to_numpy(dtype=float)
        return tuple(float(a) for a in v / v.mean()) if v.mean() > 0 else None

    pooled = normalised(rows[rows.sector == "_pooled"])
    note = None if pooled else "no 12-month sales windows in the seasonal window: factors set to 1"
    flat = tuple([1.0] * 12)
    out = {}
    for sector in sectors:
        out[sector] = normalised(rows[rows.sector == sector]) or pooled or flat
    return out, note


def fit_reference(con: duckdb.DuckDBPyConnection, base_month: str | None = None,
                  config: IndicatorConfig | None = None) -> NormParams:
    """Estimate the frozen normalisation parameters on the reference population (§3.8): all firms
    scored in the base month with ent_status = active; winsorisation limits and quantiles pooled and per
    sector (sectors with enough reference values) for every percentile-scored indicator, and the B1.3
    seasonal factors. Falls back to a later base month when the world does not cover the requested one."""
    cfg = config or load_indicator_config()
    requested = base_month or cfg.base_month
    chosen, note = choose_base_month(con, requested, cfg.norm.base_fallback_months)
    seasonal, seasonal_note = fit_seasonal_factors(con, chosen, cfg)
    frame = raw_inputs(con, [_month_end(chosen)], seasonal, cfg)
    frame = frame[frame["ent_status"] == "active"].reset_index(drop=True)
    scored = _score_indicators(frame, _Context(cfg, None, None))
    n = cfg.norm
    sector = frame["sector"].to_numpy()
    references: dict[str, IndicatorReference] = {}
    for ind in cfg.indicators:
        if ind.pct is None:
            continue
        x = scored[ind.code][0]
        if ind.pct.positive_only:
            x = np.where(x > 0, x, np.nan)
        pooled = fit_quantile_reference(x, n.winsor_lower, n.winsor_upper, n.n_quantiles)
        if pooled is None:
            raise ZhouxinError(f"no reference values for {ind.code} in base month {chosen}")
        sectors = {}
        if ind.method == "PCT_S":
            for name in cfg.sector_names():
                xs = x[sector == name]
                if (~np.isnan(xs)).sum() >= n.min_sector_reference:
                    ref = fit_quantile_reference(xs, n.winsor_lower, n.winsor_upper, n.n_quantiles)
                    if ref is not None:
                        sectors[name] = ref
        references[ind.code] = IndicatorReference(pooled=pooled, sectors=sectors)
    return NormParams(norm_version=cfg.norm_version, config_sha256=_config_hash(cfg),
                      base_month_requested=requested, base_month=chosen, base_month_note=note,
                      reference_enterprises=len(frame), references=references,
                      seasonal_factors=seasonal, seasonal_note=seasonal_note)


def _config_hash(cfg: IndicatorConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# The mart
# ------------------------------------------------------------------------------------------------


def _caps(frame: pd.DataFrame, cfg: IndicatorConfig) -> np.ndarray:
    """§4.5: lowest applicable cap per row (100 where none applies)."""
    caps = cfg.caps
    status = frame["ent_status"].isin(["revoked", "liquidating"]).to_numpy()
    dishonest = (_col(frame, "dishonest_active", 0) > 0) | _flag(frame, "msa_serious") | \
        _flag(frame, "tax_major_active")
    restriction = (_col(frame, "restriction_active", 0) > 0) | _flag(frame, "cap_no_assets") | \
        (frame["tax_grade"] == "D").to_numpy() | _flag(frame, "abnormal_taxpayer")
    unreachable = _flag(frame, "msa_unreachable")
    cap = np.full(len(frame), 100.0)
    for cond, value in [(unreachable, caps.unreachable_address), (restriction, caps.restriction_or_tax_d),
                        (dishonest, caps.dishonest_or_serious_illegal), (status, caps.revoked_or_liquidating)]:
        cap = np.where(cond, np.minimum(cap, value), cap)
    return cap


def _tiers(cci: np.ndarray, cfg: IndicatorConfig) -> np.ndarray:
    out = np.full(len(cci), None, dtype=object)
    for tier in reversed(cfg.tiers):
        out = np.where(cci >= tier.min_cci, tier.name, out)
    return np.where(np.isnan(cci), None, out)


def build_indicator_mart(con: duckdb.DuckDBPyConnection, months: Sequence[date], params: NormParams,
                         related_party: pd.DataFrame | None = None,
                         config: IndicatorConfig | None = None) -> pd.DataFrame:
    """The indicator mart: one row per registered (uscc, as_of) month end with the 49 raw values and
    scores, 17 second-level and 5 first-level sub-indices, CCI_raw, cap, CCI, tier and flags.

    `params` are the frozen references of `fit_reference`; `related_party` (uscc, as_of,
    eq_related_party_risk_score) feeds E3.1, which is N/A without it."""
    cfg = config or load_indicator_config()
    if params.config_sha256 != _config_hash(cfg):
        raise ZhouxinError(f"norm params {params.norm_version} were fitted with another indicators.yaml: "
                           "re-run fit_reference (a rebase, §7.4)")
    frame = raw_inputs(con, months, params.seasonal_factors, cfg)
    related = None
    if related_party is not None:
        rp = related_party[["uscc", "as_of", "eq_related_party_risk_score"]].copy()
        rp["as_of"] = pd.to_datetime(rp["as_of"])
        related = frame[["uscc", "as_of"]].merge(rp, on=["uscc", "as_of"], how="left")[
            "eq_related_party_risk_score"]
    scored = _score_indicators(frame, _Context(cfg, params, related))
    out: dict[str, object] = {"uscc": frame["uscc"].to_numpy(), "as_of": frame["as_of"].to_numpy()}
    for ind in cfg.indicators:
        out[f"ind_{ind.column}_raw"], out[f"ind_{ind.column}_score"] = scored[ind.code]
    for j in cfg.level2:
        s = np.column_stack([scored[i.code][1] for i in j.indicators])
        out[f"idx_{j.code}"] = aggregate_available(s, [i.weight for i in j.indicators])
    thin = np.zeros(len(frame), dtype=bool)
    for m in cfg.level1:
        s = np.column_stack([out[f"idx_{j.code}"] for j in m.level2])
        level = aggregate_available(s, [j.weight for j in m.level2])
        if m.code == "B":
            thin = np.isnan(level)
            level = np.where(thin, cfg.norm.thin_file_b_score, level)
        out[f"idx_{m.code}"] = level
    cci_raw = aggregate_available(np.column_stack([out[f"idx_{m.code}"] for m in cfg.level1]),
                                  [m.weight for m in cfg.level1])
    est = pd.to_datetime(frame["establish_date"])
    young = (est > frame["as_of"] - pd.DateOffset(months=cfg.norm.min_firm_age_months)).fillna(False).to_numpy()
    cci_raw = np.where(young, np.nan, cci_raw)
    cap = _caps(frame, cfg)
    cci = cap_cci(cci_raw, cap, cfg.norm.round_cci)
    out.update({"cci_raw": cci_raw, "cci": cci, "cci_cap": cap, "cci_tier": _tiers(cci, cfg),
                "thin_file": thin, "insufficient_history": young})
    mart = pd.DataFrame(out)
    mart["as_of"] = pd.to_datetime(mart["as_of"]).astype("datetime64[ns]")
    return mart


# ------------------------------------------------------------------------------------------------
# Column declarations and indicator health (§5)
# ------------------------------------------------------------------------------------------------


def indicator_features(config: IndicatorConfig | None = None) -> tuple[MartFeature, ...]:
    """MartFeature for every output column, generated from indicators.yaml."""
    return _default_features() if config is None else _features(config)


@cache
def _default_features() -> tuple[MartFeature, ...]:
    return _features(load_indicator_config())


def _features(cfg: IndicatorConfig) -> tuple[MartFeature, ...]:
    feats: list[MartFeature] = []
    for j in cfg.level2:
        for i in j.indicators:
            raw_dir = "none" if i.direction == "cat" else i.direction
            feats.append(MartFeature(f"ind_{i.column}_raw", "float", f"{i.code} {i.name_en}: {i.raw_en}",
                                     f"{i.code} {i.name_zh}: {i.raw_zh}", raw_dir, j.reason_group))
            feats.append(MartFeature(f"ind_{i.column}_score", "float",
                                     f"{i.code} {i.name_en}: score 0-100 ({i.method}), higher = better",
                                     f"{i.code} {i.name_zh}: 得分0-100({i.method}), 越高越好", "-", j.reason_group))
    for j in cfg.level2:
        feats.append(MartFeature(f"idx_{j.code}", "float",
                                 f"second-level sub-index {j.code} {j.name_en} (0-100)",
                                 f"二级指数 {j.code} {j.name_zh}(0-100)", "-", j.reason_group))
    for m in cfg.level1:
        feats.append(MartFeature(f"idx_{m.code}", "float", f"first-level sub-index {m.code} {m.name_en} (0-100)",
                                 f"一级分项指数 {m.code} {m.name_zh}(0-100)", "-", "composite_credit_index"))
    group = "composite_credit_index"
    feats += [
        MartFeature("cci_raw", "float", "composite credit index before veto caps (0-100)", "综合信用指数(封顶前)",
                    "-", group),
        MartFeature("cci", "float", "composite credit index after veto caps, one decimal (0-100)",
                    "综合信用指数(一票否决封顶后)", "-", group),
        MartFeature("cci_cap", "float", "lowest applicable veto cap on the CCI (100 = none)",
                    "综合信用指数封顶值(100为无)", "-", group),
        MartFeature("cci_tier", "string", "CCI tier: excellent / good / medium / poor",
                    "信用等级: 优秀/良好/中等/较差", "none", group),
        MartFeature("thin_file", "bool", "no operating data: sub-index B set to 50", "经营数据缺失(B取50)",
                    "+", group),
        MartFeature("insufficient_history", "bool", "firm younger than 3 months: no CCI",
                    "成立不足3个月, 不计算综合指数", "+", group),
    ]
    return tuple(feats)


def __getattr__(name: str) -> object:
    # INDICATOR_FEATURES is generated from the YAML on first access, so importing reads no file.
    if name == "INDICATOR_FEATURES":
        return indicator_features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def univariate_auc(score: np.ndarray, y: np.ndarray) -> float:
    """AUC of a higher-is-safer score against an event flag: P(score of a non-event > score of an
    event), ties counted half (Mann-Whitney with average ranks); NaN without both classes."""
    s, y = np.asarray(score, dtype=float), np.asarray(y, dtype=float)
    keep = ~np.isnan(s) & ~np.isnan(y)
    s, y = s[keep], y[keep] > 0
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[~y].sum() - n0 * (n0 + 1) / 2) / (n0 * n1))


def indicator_health(mart: pd.DataFrame, labels: pd.DataFrame, config: IndicatorConfig | None = None
                     ) -> pd.DataFrame:
    """§5 indicator health on the labelled firm-months: for each indicator the share N/A, the share at
    the explicit missing score, the univariate AUC of the score against the 12-month event flag and the
    direction check (AUC >= 0.5); sub-indices and the CCI follow as extra rows for the discrimination
    comparison. `labels` has uscc, as_of, y."""
    cfg = config or load_indicator_config()
    lab = labels[["uscc", "as_of", "y"]].copy()
    lab["as_of"] = pd.to_datetime(lab["as_of"])
    m = mart.drop(columns=["y"], errors="ignore").merge(lab, on=["uscc", "as_of"], how="inner")
    y = m["y"].to_numpy(dtype=float)
    rows = []
    for i in cfg.indicators:
        score = m[f"ind_{i.column}_score"].to_numpy(dtype=float)
        raw = m[f"ind_{i.column}_raw"].to_numpy(dtype=float)
        at_missing = (np.isnan(raw) & (score == i.missing_score)) if i.missing_score is not None else \
            np.zeros(len(m), dtype=bool)
        rows.append(_health_row("L3", i.code, f"ind_{i.column}_score", i.name_en, score, y, at_missing))
    for j in cfg.level2:
        rows.append(_health_row("L2", j.code, f"idx_{j.code}", j.name_en, m[f"idx_{j.code}"], y, None))
    for lvl1 in cfg.level1:
        col = f"idx_{lvl1.code}"
        rows.append(_health_row("L1", lvl1.code, col, lvl1.name_en, m[col], y, None))
    rows.append(_health_row("CCI", "CCI", "cci", "Composite credit index", m["cci"], y, None))
    return pd.DataFrame(rows)


def _health_row(level: str, code: str, column: str, name: str, score: object, y: np.ndarray,
                at_missing: np.ndarray | None) -> dict[str, object]:
    s = np.asarray(score, dtype=float)
    n = len(s)
    auc = univariate_auc(s, y)
    return {"level": level, "code": code, "column": column, "name_en": name, "n": n,
            "share_na": float(np.isnan(s).mean()) if n else float("nan"),
            "share_missing_score": float(at_missing.mean()) if at_missing is not None and n else 0.0,
            "n_events": int(np.nansum(y[~np.isnan(s)] > 0)), "auc": auc,
            "direction_ok": bool(auc >= 0.5) if not np.isnan(auc) else None}
