"""Platform process: registration, demands, matching, bank decisions, loans (simulation.md §9).

The platform module is the last in MODULE_ORDER: it reads the board that every source module has
written and produces the operational tables of products_and_demands.md §7 through
`Emitter.emit_table('platform', ...)`, plus `truth/rejected_applicants` (the latent outcome of
rejected applicants, for reject-inference research). It emits no catalog sub-items.

How the seed figures of products_and_demands.md §8 are pinned down (for the calibration report):
* r0 (registration, §9.1) is solved adaptively from the launch month to the seed checkpoint: each
  month a bisection on r0 makes registered-so-far + the expected registrations of the remaining
  window months (current pool and propensities, campaign months known) equal 2,794 x scale.
  Realised noise is corrected month by month; after the checkpoint r0 stays at the geometric mean
  of the window values.
* theta_b0 (bank decisions, §9.4) keeps the relative appetite per institution type from the config
  plus one common shift. Whether a demand ends approved depends on the shift only through zmax, the
  best decision score among its accepted pushes (credit enhancement included), so the shift is a
  quantile: a pre-pass at launch (~3,000 synthetic demands through the real pipeline) gives its
  starting value, then each window month takes the shift that puts the cumulative demand-level
  approval on `approval_target`; the window mean is kept afterwards.
* Request amounts: log-normal by category (firm size and platform standing tilt them), capped by
  what the firm's sales and collateral support; within the window a scale per group (credit /
  other) is solved each month so that the cumulative mean request is 74.5 / 443.9 万元 (§8).
  A firm asks at most U(capacity_anchor) x that capacity; with nothing to borrow on in the category (no
  turnover or collateral, or outside the category's reach, e.g. a medium firm and the small-firm guarantee
  loan) it asks the smallest ticket a product takes.
* The category mix is fitted at launch on the propensity-weighted pool (credit share exactly 37%); within
  the window the credit weight is tilted month by month so that the cumulative credit share stays 37%.
* Requests: within the window the repeat-request rate is scaled month by month so that cumulative
  requests are 2,644 / 2,794 per registered firm (first requests already scheduled are counted ahead);
  the window's mean multiplier is kept afterwards.
* The cold-start PD needs a CCI, which does not exist inside the simulator. A documented proxy is
  used: z = 0.75 x standardised mean h over t-3..t-1 + 0.66 x AR(1) measurement noise (normalisation
  frozen at launch), CCI = 81 + 10 z (tiers ~35/57/6/2 %, indicators.md §4), capped by the veto caps
  that the board's observable flags trigger (dishonest / serious list / major tax violation 45;
  restriction / terminated enforcement / tax D / abnormal taxpayer 55; unreachable 60; revoked or
  liquidating 20). Keys absent from the board (a module run alone) fall back to latent stand-ins.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.special import ndtri

from data.simulate.calendar import add_months, date_to_month, month_end, month_index, month_label, month_start
from data.simulate.context import MonthContext
from data.simulate.draws import choice_by_weights
from data.simulate.emit import Emitter
from data.simulate.latent import ACTIVE, LIQUIDATING, REVOKED, STATUS_CODES
from data.simulate.networks import hex_ids
from data.simulate.params import MARINE_ECONOMY, OIL_CHAIN, load_module_params
from data.simulate.products import (
    ALL_DISTRICTS,
    Product,
    ProductsConfig,
    evaluate_limit,
    evaluate_rule,
    instantiate_products,
    load_products_config,
    rule_to_dict,
)
from kernel.config import FrozenModel

GRADES = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C", "D")
PD_EDGES = np.array([0.0005, 0.0012, 0.0030, 0.0070, 0.020, 0.045, 0.10, 0.20])
SIGNAL_PD_EDGES = np.array([0.007, 0.02, 0.045, 0.10, 0.20, 0.35])
SCALE_ONE = 50_000
SECONDS_PER_DAY = 86_400
H_CLIP = 4.0
BOARD_COLLATERAL = ("free_property_value", "sea_area_value", "vessel_value_est")
CATEGORY_COLLATERAL = {
    "mortgage": ("real_estate", "sea_area_use_right", "vessel"),
    "pledge": ("oil_inventory_receipt", "receivables", "ip"),
    "supply_chain": ("receivables",),
    "trade_finance": ("deposit", "receivables"),
    "lease_insurance": ("equipment", "vessel"),
}


# ==================================================================================================
# Parameters (configs/simulation/platform.yaml)
class RegistrationParams(FrozenModel):
    target_registered: float = Field(gt=0)
    need_loading: float
    need_health_corr: float
    oil_or_marine: float
    campaign: float
    small_or_medium: float
    health_loading: float
    shell_multiplier: float
    campaign_months: tuple[str, ...]
    r0_bounds: tuple[float, float]
    consent_months: int
    consent_scope_probs: dict[str, float]
    consent_full_profile_prob: float
    consent_matched_recipients_prob: float
    consent_revoke_prob: float
    e_seal_prob: float


class DemandParams(FrozenModel):
    first_prob: float
    first_lag_months: tuple[int, int]
    repeat_rate: float
    repeat_min_gap_months: int
    retry_prob: float
    retry_months: tuple[int, int]
    stress_threshold: float
    stress_multiplier: float
    seasonality: tuple[float, ...]
    special_months: dict[str, float]
    category_mix: dict[str, float]
    infeasible_multiplier: dict[str, float]
    stress_category_tilt: dict[str, float]
    amount: dict[str, tuple[float, float]]
    amount_size_loading: float
    capacity_anchor: tuple[float, float]
    amount_quality_loading: float
    calibrate_amounts: bool
    calibrate_credit_share: bool
    calibrate_requests: bool
    target_requests: float = Field(gt=0)
    repeat_multiplier_bounds: tuple[float, float]
    capacity_sales_floor: float
    mix_max_boost: float
    target_mean_amount: tuple[float, float]
    amount_scale_bounds: tuple[float, float]
    term_choices: tuple[int, ...]
    term_probs: tuple[float, ...]
    term_by_category: dict[str, tuple[tuple[int, ...], tuple[float, ...]]]
    purpose: dict[str, float]
    stress_refinancing_multiplier: float
    preferred_empty: float
    credit_collateral_none: float
    channel: dict[str, float]
    campaign_referral_multiplier: float
    urgency: dict[str, float]
    stress_urgent_multiplier: float
    max_rate_fill: float
    max_rate_range: tuple[float, float]
    repayment_source: dict[str, float]
    existing_loans_intercept: float
    existing_loans_size: float


class ScoringParams(FrozenModel):
    cci_mean: float
    cci_sd: float
    health_weight: float = Field(ge=0, le=1)
    noise_ar: float
    health_lag_months: int = Field(ge=1)
    min_age_months: int
    cci_missing: float
    pd_a: float
    pd_b: float
    cap_exit_status: float
    cap_dishonest: float
    cap_restriction: float
    cap_unreachable: float
    signal_flag_levels: dict[str, int]
    tax_grade_levels: dict[str, int]
    si_arrears_levels: tuple[tuple[int, int], ...]
    suit_prob: float
    suit_lag_gamma: tuple[float, float]
    dishonest_prob: float
    dishonest_lag_months: int
    in_default_months: int
    tax_grade_quantiles: tuple[float, float, float, float]


class MatchingParams(FrozenModel):
    weights: dict[str, float]
    first_wave: int
    max_pushes: int
    accept_intercept: float
    accept_slope: float
    decline_share: float
    response_days: tuple[float, float]
    timeout_days: float
    enhancement_after_rejections: int
    open_pool_claim_prob: float
    open_pool_days: float
    open_pool_amount_elasticity: float
    withdraw_prob: float
    min_limit_share: float


class DecisionParams(FrozenModel):
    theta_b0: dict[str, float]
    calibrate: bool
    approval_target: float
    prepass_demands: int
    prepass_offset: float
    max_monthly_deviation: float
    shift_bounds: tuple[float, float]
    q_weight: float
    collateral_weight: float
    coverage_cap: float
    sales_weight: float
    noise_sd: float
    sector_preferences: dict[str, dict[str, float]]
    amount_haircut: tuple[float, float]
    larger_line_prob: float
    larger_line_range: tuple[float, float]
    larger_line_max_rank: int
    rate_noise_sd: float
    rate_grade_exponent: float
    calendar_days_per_working_day: float
    contract_days: tuple[int, int]
    incomplete_documents_prob: float


class LoanParams(FrozenModel):
    disbursement_days: tuple[int, int]
    renew_prob: float
    renew_max_signal: int
    renewal_rate_shift: float
    renewal_term_months: int
    deferral_window: tuple[str, str]
    deferral_prob: float
    deferral_months: int
    stressed_deferral_threshold: float
    stressed_deferral_prob: float
    writeoff_months_after_90: int
    report_lag_days: tuple[int, int]


class TruthParams(FrozenModel):
    rejected_outcome_months: int


class PlatformParams(FrozenModel):
    registration: RegistrationParams
    demands: DemandParams
    scoring: ScoringParams
    matching: MatchingParams
    decisions: DecisionParams
    loans: LoanParams
    truth: TruthParams


# ==================================================================================================
# Small helpers


def _choice_rows(rng: np.random.Generator, keys: list[str], weights: np.ndarray) -> np.ndarray:
    """One draw per row of a (rows, len(keys)) weight matrix."""
    w = weights / weights.sum(axis=1, keepdims=True)
    u = rng.random(w.shape[0])[:, None]
    idx = (np.cumsum(w, axis=1) < u).sum(axis=1)
    return np.array(keys, dtype=object)[np.minimum(idx, len(keys) - 1)]


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def cold_start_pd(cci: np.ndarray, a: float = 4.6, b: float = 0.12) -> np.ndarray:
    """ratings_and_signals §1.3: PD = 1 / (1 + exp(a + b (CCI - 75)))."""
    return 1.0 / (1.0 + np.exp(a + b * (np.asarray(cci, dtype=np.float64) - 75.0)))


def platform_score(pd12: np.ndarray) -> np.ndarray:
    """score = round(600 + 72.1348 ln(((1 - PD) / PD) / 50)), clipped to [0, 1000]."""
    p = np.clip(np.asarray(pd12, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.clip(np.round(600 + 72.1348 * np.log(((1 - p) / p) / 50)), 0, 1000).astype(np.int64)


def grade_of_pd(pd12: np.ndarray) -> np.ndarray:
    """Master-scale grade index 0 (AAA) .. 8 (C)."""
    return np.searchsorted(PD_EDGES, np.asarray(pd12), side="right")


def _ts(day: np.ndarray, frac_days: np.ndarray | float) -> np.ndarray:
    """datetime64[s] = a date + fractional days."""
    secs = np.round(np.asarray(frac_days, dtype=np.float64) * SECONDS_PER_DAY).astype(np.int64)
    return np.asarray(day, dtype="datetime64[D]").astype("datetime64[s]") + secs.astype("timedelta64[s]")


def _h(ctx: MonthContext) -> np.ndarray:
    """Latent health clipped to a sane range (guards against diverging slots in the latent state)."""
    return np.clip(np.nan_to_num(ctx.h, nan=0.0), -H_CLIP, H_CLIP)


def _bisect(f: Callable[[float], float], lo: float, hi: float, target: float, iterations: int = 40) -> float:
    """x in [lo, hi] with f(x) = target for an increasing f: the midpoint after `iterations` halvings (the
    monthly trackers solve a rate, a scale or a tilt this way)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _amounts(x: np.ndarray, floor: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """Requested amounts: within [floor, ceiling] (products and the firm's own means), rounded like a form."""
    a = np.maximum(np.minimum(x, ceiling), floor)
    return np.where(a >= 100, np.round(a, -1), np.maximum(1.0, np.round(a)))


def _list_array(items: list[list[str]]) -> np.ndarray:
    """An object array whose elements are lists (numpy would otherwise build a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for j, x in enumerate(items):
        out[j] = x
    return out


def _age_band(age: np.ndarray) -> np.ndarray:
    out = np.full(age.shape, None, dtype=object)
    for lo, hi, lab in ((0, 30, "lt30"), (30, 40, "30_39"), (40, 50, "40_49"), (50, 60, "50_59"), (60, 200, "ge60")):
        out[(age >= lo) & (age < hi)] = lab
    return out


# ==================================================================================================
class LoanBook:
    """All platform loans as column arrays (appended per month, updated vectorised)."""

    INT = ("slot", "term", "start_month", "maturity_month", "clock", "deferred_until", "day_offset")
    FLOAT = ("amount", "rate")
    BOOL = ("lease", "active", "reached90", "is_renewal", "stress_deferred", "credit")
    OBJ = ("loan_id", "demand_id", "inst", "product_id", "category", "ptype")

    def __init__(self) -> None:
        self.c: dict[str, np.ndarray] = {}
        for k in self.INT:
            self.c[k] = np.zeros(0, dtype=np.int64)
        for k in self.FLOAT:
            self.c[k] = np.zeros(0, dtype=np.float64)
        for k in self.BOOL:
            self.c[k] = np.zeros(0, dtype=bool)
        for k in self.OBJ:
            self.c[k] = np.zeros(0, dtype=object)
        self.c["disb_date"] = np.zeros(0, dtype="datetime64[D]")
        self.c["maturity_date"] = np.zeros(0, dtype="datetime64[D]")

    def __len__(self) -> int:
        return len(self.c["slot"])

    def add(self, rows: dict[str, np.ndarray]) -> None:
        n = len(rows["slot"])
        if n == 0:
            return
        for k, v in self.c.items():
            if k in rows:
                add = np.asarray(rows[k], dtype=v.dtype)
            elif k in ("clock", "deferred_until"):
                add = np.full(n, -1, dtype=np.int64)
            else:
                add = np.zeros(n, dtype=v.dtype)
            self.c[k] = np.concatenate([v, add])


# ==================================================================================================
class PlatformModule:
    """Registration, demands, matching, decisions, loans and loan performance (platform tables)."""

    name = "platform"
    sub_items: tuple[str, ...] = ()

    # ---------------------------------------------------------------------------------------------
    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        self.p: PlatformParams = load_module_params(PlatformParams, "platform")
        self.cfg: ProductsConfig = load_products_config()
        prm = ctx.params
        ent = ctx.ent
        n = ent.n_max
        self.n = n
        self.scale = prm.enterprises / SCALE_ONE
        self.t_launch = month_index(prm.platform_launch)
        self.t_checkpoint = month_index(prm.seed_checkpoint)
        self.campaign = {month_index(m) for m in self.p.registration.campaign_months}
        self.special = {month_index(k): v for k, v in self.p.demands.special_months.items()}
        self.deferral_window = tuple(month_index(m) for m in self.p.loans.deferral_window)
        self.sector_names = np.array(prm.sector_names, dtype=object)
        self.sector_name = self.sector_names[ent.sector]
        self.mu_s = prm.sector_column("mu_s")[ent.sector]

        self._setup_products()
        self._draw_static(ctx, rng)

        # platform state per slot
        self.registered = np.zeros(n, dtype=bool)
        self.reg_month = np.full(n, -1, dtype=np.int64)
        self.consent_id = np.full(n, None, dtype=object)
        self.consent_end = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        self.first_demand_month = np.full(n, -1, dtype=np.int64)
        self.reg_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        self.last_demand_month = np.full(n, -10_000, dtype=np.int64)
        self.retry_month = np.full(n, -1, dtype=np.int64)
        self.loan_ever = np.zeros(n, dtype=bool)
        self.e1_month = np.full(n, -10_000, dtype=np.int64)
        self.suit_month = np.full(n, -10_000, dtype=np.int64)
        self.dishonest_proxy_month = np.full(n, -1, dtype=np.int64)
        self.flag_onset: dict[str, np.ndarray] = {k: np.full(n, -10_000, dtype=np.int64)
                                                  for k in ("active_dishonest", "enforcement_terminated_24m")}
        self.prev_flag: dict[str, np.ndarray] = {k: np.zeros(n, dtype=bool) for k in self.flag_onset}
        # observable-information buffers
        sp = self.p.scoring
        h = _h(ctx)
        self.h_buf = np.repeat(h[None, :].copy(), sp.health_lag_months, axis=0)
        self.eta = rng.standard_normal(n)
        alive = ctx.alive
        self.h_center = float(h[alive].mean()) if alive.any() else 0.0
        self.h_scale = float(h[alive].std()) if alive.sum() > 1 else 1.0
        hm = (h - ctx.mu)[alive]
        self.hm_scale = float(hm.std()) if hm.size > 1 else 1.0
        self.sales_buf = np.zeros((12, n))
        self.tax_buf = np.zeros((12, n))
        self.prev_total_tax = np.zeros(n)
        self.buf_months = 0
        # calibration state
        self.r0_window: list[float] = []
        self.r0_post: float | None = None
        self.shift: float | None = None if self.p.decisions.calibrate else 0.0
        self.calibration: dict[str, float] = {}
        self.shift_prepass = 0.0
        self.shift_post: float | None = None
        self.shift_window: list[tuple[float, int]] = []
        self.cum_demands = 0
        self.cum_approved = 0
        self.amount_scale = [1.0, 1.0]               # credit, other
        self.amount_cum = [(0, 0.0), (0, 0.0)]
        self.amount_window: list[list[tuple[float, int]]] = [[], []]
        self.amount_frozen = False
        self.credit_cum = (0, 0)                     # window requests, of which credit loans
        self.requests_cum = 0                         # window requests (all kinds)
        self.repeat_window: list[tuple[float, float]] = []   # (multiplier, expected repeats at 1x) per month
        self.repeat_multiplier = 1.0
        self.repeat_post: float | None = None
        # operations
        self.capacity_used: dict[tuple[int, int], int] = defaultdict(int)
        self.loans = LoanBook()
        self.truth_queue: list[tuple[int, dict[str, np.ndarray]]] = []
        self.tables_started = False
        self.board_written = False

    # ---------------------------------------------------------------------------------------------
    def _setup_products(self) -> None:
        cfg = self.cfg
        self.products: list[Product] = instantiate_products(cfg, self.rng)
        self.inst_ids = [i.id for i in cfg.institutions]
        inst_index = {k: j for j, k in enumerate(self.inst_ids)}
        self.inst_type = np.array([i.type for i in cfg.institutions], dtype=object)
        self.inst_kappa = np.array([i.soft_info_strength for i in cfg.institutions])
        dp = self.p.decisions
        self.inst_theta = np.array([dp.theta_b0.get(i.type, 0.0) for i in cfg.institutions])
        self.inst_capacity = np.array([i.weekly_push_capacity for i in cfg.institutions], dtype=np.float64) * self.scale
        self.inst_bank = np.array([i.is_bank for i in cfg.institutions])
        pref = np.zeros((len(self.inst_ids), len(self.sector_names)))
        for j, i in enumerate(cfg.institutions):
            for s, v in dp.sector_preferences.get(i.type, {}).items():
                pref[j, list(self.sector_names).index(s)] = v
        self.inst_pref = pref
        # lending products: those a demand can be matched to (renewal-only and pure enhancements excluded)
        self.lend = [p for p in self.products if p.category is not None]
        self.p_inst = np.array([inst_index[p.institution_id] for p in self.lend])
        self.p_category = np.array([p.category for p in self.lend], dtype=object)
        self.p_type = np.array([p.product_type for p in self.lend], dtype=object)
        self.p_amount_min = np.array([p.amount_min for p in self.lend])
        self.p_amount_max = np.array([p.amount_max for p in self.lend])
        self.p_term = np.array([(p.term_min_months, p.term_max_months) for p in self.lend])
        self.p_revolving = np.array([p.revolving for p in self.lend])
        self.p_rate = np.array([(p.rate_min, p.rate_max) for p in self.lend])
        self.p_spread = np.array([p.pricing == "lpr_spread" for p in self.lend])
        self.p_sla = np.array([p.decision_sla_days for p in self.lend])
        self.p_class = np.array([p.prior_class for p in self.lend], dtype=object)
        self.p_coverage = np.array([p.guarantee_coverage for p in self.lend])
        self.p_enhancement = np.isin(self.p_type, ["guarantee_loan", "loan_guarantee_insurance"])
        self.p_active_from = np.array([month_index(p.effective_from) for p in self.lend])
        self.p_credit = np.array([p.category == "credit" for p in self.lend])
        self.p_district = {d: np.array([d in p.target_districts for p in self.lend]) for d in ALL_DISTRICTS}
        self.renewal_product = {p.institution_id: p.product_id for p in self.products if p.renewal_only}
        self.categories = list(self.p.demands.category_mix)
        self.category_terms = {c: (int(self.p_term[self.p_category == c, 0].min()),
                                   int(self.p_term[self.p_category == c, 1].max()))
                               if (self.p_category == c).any() else (1, 120) for c in self.categories}
        oil_pledge = [p.amount_min for p in self.lend if "oil_inventory_receipt" in p.collateral_accepted]
        self.oil_pledge_min = float(min(oil_pledge)) if oil_pledge else 1.0
        self.category_max_amount = {c: float(self.p_amount_max[self.p_category == c].max())
                                    if (self.p_category == c).any() else 1e9 for c in self.categories}
        self.category_min_amount = {c: float(self.p_amount_min[self.p_category == c].min())
                                    if (self.p_category == c).any() else 1.0 for c in self.categories}

    # ---------------------------------------------------------------------------------------------
    def _draw_static(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Simulation-only stand-ins for the collateral and licence attributes of products §2.2."""
        ent, n, s = ctx.ent, self.n, self.sector_name
        S, E, z = ent.sales, ent.employees, ent.z_size
        scale = np.full(n, "large", dtype=object)
        scale[(E < 300) & (S < 40_000)] = "medium"
        scale[(E < 100) & (S < 5_000)] = "small"
        scale[(E < 10) & (S < 500)] = "micro"
        self.ent_scale = scale
        ln = rng.lognormal
        st: dict[str, np.ndarray] = {}
        st["free_property_value"] = np.where(ent.has_property, S * ln(np.log(1.5), 0.8, n), 0.0)
        marine4 = np.isin(s, ["marine_fishery", "shipping_port_logistics", "aquatic_processing", "oil_gas_storage"])
        st["sea_area_value"] = np.where(marine4 & (rng.random(n) < 0.15), S * ln(np.log(1.0), 0.8, n), 0.0)
        owner_p = np.select([s == "marine_fishery", s == "shipping_port_logistics", s == "shipbuilding_repair",
                             s == "oil_trading_bunkering", s == "tourism_hospitality"], [0.7, 0.45, 0.1, 0.08, 0.05], 0.0)
        owner = rng.random(n) < owner_p
        med = np.select([s == "marine_fishery", s == "shipping_port_logistics"], [300.0, 1500.0], 400.0)
        st["vessel_value_est"] = np.where(owner, med * np.exp(0.3 * z) * ln(0.0, 0.9, n), 0.0)
        # vessel particulars for every slot: they matter only where a vessel value exists (here or on the board)
        st["vessel_age_years"] = rng.integers(1, 31, n).astype(np.float64)
        st["max_psc_detentions"] = rng.poisson(np.where(s == "shipping_port_logistics", 0.3, 0.05)).astype(np.float64)
        st["hull_insurance_in_force"] = rng.random(n) < 0.8
        rec_p = np.select([np.isin(s, ["manufacturing_other", "construction_engineering"]),
                           np.isin(s, ["shipbuilding_repair", "petrochemical"]), s == "wholesale_retail_other"],
                          [0.15, 0.2, 0.12], 0.05)
        st["receivables_registered"] = rng.random(n) < rec_p
        st["receivables_value"] = np.where(st["receivables_registered"], S * ln(np.log(0.25), 0.6, n), np.nan)
        ip_lam = np.select([s == "manufacturing_other", s == "petrochemical", s == "shipbuilding_repair",
                            s == "services_other"], [1.5, 2.0, 1.2, 0.4], 0.15) * np.exp(0.4 * z)
        ip = rng.poisson(ip_lam)
        st["ip_count"] = ip.astype(np.float64)
        st["invention_patents"] = rng.binomial(ip, 0.2).astype(np.float64)
        st["ip_value"] = np.where(ip > 0, ip * ln(np.log(30.0), 0.8, n), np.nan)
        st["bonded_tank_storage"] = (((s == "oil_gas_storage") & (rng.random(n) < 0.8))
                                     | ((s == "oil_trading_bunkering") & ~ent.shell & (rng.random(n) < 0.15)))
        self.oil_licence_proxy = (((s == "oil_trading_bunkering") & ~ent.shell & (rng.random(n) < 0.5))
                                  | ((s == "oil_gas_storage") & (rng.random(n) < 0.7))
                                  | ((s == "petrochemical") & (rng.random(n) < 0.5)))
        st["customs_trader"] = ent.is_customs.copy()
        st["is_exporter"] = ent.is_customs & (rng.random(n) < 0.6)
        self.static = st
        self.oil_marine = np.isin(s, OIL_CHAIN + MARINE_ECONOMY)
        self.equipment_sector = np.isin(s, ["manufacturing_other", "shipbuilding_repair", "aquatic_processing",
                                            "petrochemical"])
        self.existing_loans_p = sigmoid(self.p.demands.existing_loans_intercept
                                        + self.p.demands.existing_loans_size * z)
        self.need_noise = ent.need
        self.customers_of: dict[int, np.ndarray] = {}
        sup, cus = ctx.net.trade_supplier, ctx.net.trade_customer
        order = np.argsort(sup, kind="stable")
        sup_sorted, cus_sorted = sup[order], cus[order]
        bounds = np.searchsorted(sup_sorted, np.arange(n + 1))
        self._cust_sorted, self._cust_bounds = cus_sorted, bounds

    # =============================================================================================
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        t = ctx.t
        self._update_buffers(ctx)
        self._track_defaults(ctx)
        e1_now = np.zeros(self.n, dtype=bool)
        if t >= self.t_launch:
            if not self.tables_started:
                self._freeze_normalisation(ctx)
            prof = self._profile(ctx)
            if not self.tables_started:
                self._emit_reference_tables(ctx, out)
                self.tables_started = True
                pool = np.flatnonzero(prof["operating"])
                self._fit_mix(pool, self._propensity(ctx)[pool], prof)
                if self.shift is None:
                    self.shift = self._calibrate_shift(ctx, prof)
                self.shift_prepass = float(self.shift)
            self._register(ctx, prof, out)
            self._demands(ctx, prof, out)
            e1_now = self._loan_month(ctx, prof, out)
            self._flush_truth(ctx, out)
        ctx.board["platform_registered"] = self.registered.copy()
        ctx.board["loan_90dpd_now"] = e1_now
        self.h_buf[t % self.h_buf.shape[0]] = _h(ctx)

    def _freeze_normalisation(self, ctx: MonthContext) -> None:
        """CCI-proxy normalisation (centre, scale of lagged h) frozen at launch, like a norm_version."""
        alive = ctx.alive & ~ctx.latent.dormant
        hbar = self.h_buf.mean(axis=0)[alive]
        if hbar.size > 1:
            self.h_center, self.h_scale = float(hbar.mean()), float(hbar.std())
        hm = (_h(ctx) - ctx.mu)[alive]
        if hm.size > 1:
            self.hm_scale = float(hm.std())

    # ---------------------------------------------------------------------------------------------
    def _update_buffers(self, ctx: MonthContext) -> None:
        """Rolling 12-month sales and tax from the board (or a volume-based proxy without it)."""
        t, b, ent = ctx.t, ctx.board, ctx.ent
        k = t % 12
        if "sales" in b:
            sales = np.nan_to_num(np.asarray(b["sales"], dtype=np.float64))
        else:
            sales = ent.sales / 12 * ctx.volume * ctx.season() * (ctx.alive & ~ctx.latent.dormant)
        if "total_tax_paid_year" in b:
            tot = np.nan_to_num(np.asarray(b["total_tax_paid_year"], dtype=np.float64))
            tax = tot if ctx.moy == 1 else np.maximum(0.0, tot - self.prev_total_tax)
            self.prev_total_tax = tot.copy()
        else:
            tax = 0.03 * sales
        self.sales_buf[k] = sales
        self.tax_buf[k] = tax
        self.buf_months += 1
        sp = self.p.scoring
        self.eta = sp.noise_ar * self.eta + np.sqrt(1 - sp.noise_ar ** 2) * self.rng.standard_normal(self.n)

    def _track_defaults(self, ctx: MonthContext) -> None:
        """Latent stand-ins for observable default events no board key carries (E3 suits)."""
        t, sp = ctx.t, self.p.scoring
        idx = np.flatnonzero(ctx.latent.defaulted_now)
        if idx.size:
            rng = self.rng
            suit = rng.random(idx.size) < sp.suit_prob
            lag = np.round(rng.gamma(sp.suit_lag_gamma[0], sp.suit_lag_gamma[1], idx.size)).astype(np.int64)
            self.suit_month[idx[suit]] = t + lag[suit]
            dis = rng.random(idx.size) < sp.dishonest_prob
            self.dishonest_proxy_month[idx[dis]] = t + sp.dishonest_lag_months + lag[dis]
        self.dishonest_proxy_month[ctx.latent.cured_now] = -1
        for key in self.flag_onset:
            if key in ctx.board:
                cur = np.asarray(ctx.board[key], dtype=bool)
                self.flag_onset[key][cur & ~self.prev_flag[key]] = t
                self.prev_flag[key] = cur.copy()

    # ---------------------------------------------------------------------------------------------
    def _flag(self, ctx: MonthContext, key: str) -> np.ndarray | None:
        v = ctx.board.get(key)
        return None if v is None else np.asarray(v, dtype=bool)

    def _profile(self, ctx: MonthContext) -> dict[str, np.ndarray]:
        """Point-in-time profile attributes (products §2.2) of every slot at month t."""
        t, lat, ent, sp, b = ctx.t, ctx.latent, ctx.ent, self.p.scoring, ctx.board
        n = self.n
        age_m = np.where(lat.born, t - ent.birth_month, -1)
        hbar = self.h_buf.mean(axis=0)
        w = sp.health_weight
        z = w * (hbar - self.h_center) / self.h_scale + np.sqrt(1 - w * w) * self.eta
        cci = np.clip(sp.cci_mean + sp.cci_sd * z, 0.0, 100.0)
        cci = np.where(age_m >= sp.min_age_months, cci, np.nan)

        dishonest = self._flag(ctx, "active_dishonest")
        if dishonest is None:
            dishonest = (self.dishonest_proxy_month >= 0) & (t >= self.dishonest_proxy_month)
        restriction = self._flag(ctx, "active_restriction")
        tax_grade = b.get("tax_grade")
        if tax_grade is None:
            q = ndtri(np.array(sp.tax_grade_quantiles))
            tg = np.full(n, "A", dtype=object)
            tg[z < q[3]] = "B"
            tg[z < q[2]] = "M"
            tg[z < q[1]] = "C"
            tg[z < q[0]] = "D"
            tg[(age_m >= 0) & (age_m < 12)] = "M"
            tax_grade = tg
        tax_grade = np.asarray(tax_grade, dtype=object)
        cap = np.full(n, 100.0)
        exit_status = (lat.status == REVOKED) | (lat.status == LIQUIDATING)
        cap[exit_status] = sp.cap_exit_status
        c45 = dishonest.copy()
        for key in ("active_serious_list", "major_tax_violation_active"):
            f = self._flag(ctx, key)
            if f is not None:
                c45 |= f
        c55 = (tax_grade == "D")
        for key in ("active_restriction", "enforcement_terminated_24m", "abnormal_taxpayer"):
            f = self._flag(ctx, key)
            if f is not None:
                c55 |= f
        unreachable = self._flag(ctx, "unreachable")
        cap = np.where(c45, np.minimum(cap, sp.cap_dishonest), cap)
        cap = np.where(c55, np.minimum(cap, sp.cap_restriction), cap)
        if unreachable is not None:
            cap = np.where(unreachable, np.minimum(cap, sp.cap_unreachable), cap)
        cci = np.where(np.isnan(cci), np.nan, np.minimum(cci, cap))
        cci_eff = np.where(np.isnan(cci), np.minimum(sp.cci_missing, cap), cci)
        pd12 = cold_start_pd(cci_eff, sp.pd_a, sp.pd_b)

        # observable default (in D): own 90+ DPD, latent suit stand-in, new dishonest listing or
        # terminated enforcement, revoked licence, each within the last 12 months
        win = sp.in_default_months
        in_d = ((t - self.e1_month) < win) | (((t - self.suit_month) >= 0) & ((t - self.suit_month) < win))
        for key, onset in self.flag_onset.items():
            if key in b:
                in_d |= (t - onset) < win
        if "active_dishonest" not in b:
            in_d |= (self.dishonest_proxy_month >= 0) & (t >= self.dishonest_proxy_month) & (
                t - self.dishonest_proxy_month < win)
        in_d |= (lat.status == REVOKED) & ((t - lat.status_change_month) < win)

        g = grade_of_pd(pd12)
        g = np.where(in_d, 9, g)
        level = 1 + np.searchsorted(SIGNAL_PD_EDGES, pd12, side="right")
        for key, lv in sp.signal_flag_levels.items():
            f = self._flag(ctx, key)
            if f is None and key == "active_dishonest":
                f = dishonest
            if f is not None:
                level = np.where(f, np.maximum(level, lv), level)
        for grade, lv in sp.tax_grade_levels.items():
            level = np.where(tax_grade == grade, np.maximum(level, lv), level)
        if "si_arrears_months" in b:
            arr = np.nan_to_num(np.asarray(b["si_arrears_months"], dtype=np.float64))
            for thr, lv in sp.si_arrears_levels:
                level = np.where(arr >= thr, np.maximum(level, lv), level)
        level = np.where(lat.status == LIQUIDATING, np.maximum(level, 7), level)
        level = np.where(in_d, 8, level)

        legal_rep = np.asarray(b["legal_rep"], dtype=np.int64) if "legal_rep" in b else ctx.net.legal_rep
        birth = ctx.net.persons.birth_year[np.clip(legal_rep, 0, len(ctx.net.persons) - 1)]
        insured = (np.nan_to_num(np.asarray(b["insured_count"], dtype=np.float64)) if "insured_count" in b
                   else np.where(ctx.alive & ~lat.dormant, ent.employees, 0.0))
        oil_lic = self._flag(ctx, "oil_license_active")
        if oil_lic is None:
            oil_lic = self.oil_licence_proxy
        customs_grade = np.where(ent.is_customs, "general", None).astype(object)
        if "customs_advanced" in b:
            customs_grade[np.asarray(b["customs_advanced"], dtype=bool) & ent.is_customs] = "advanced_certified"
        if "customs_dishonest" in b:
            customs_grade[np.asarray(b["customs_dishonest"], dtype=bool) & ent.is_customs] = "dishonest"
        abnormal = self._flag(ctx, "active_abnormal_list")
        if abnormal is None:
            abnormal = lat.dormant & ~lat.performing
        enforcement = (lat.last_default >= 0) & ~lat.performing & ((t - lat.last_default) >= 4)
        current_loan = np.zeros(n, dtype=bool)
        if len(self.loans):
            c = self.loans.c
            live = c["active"] & (c["clock"] < 0)
            current_loan[c["slot"][live]] = True
        months_hist = min(self.buf_months, 12)
        scale12 = 12.0 / months_hist if months_hist else 0.0
        prof: dict[str, np.ndarray] = {
            "firm_age_years": np.where(age_m >= 0, age_m / 12.0, np.nan),
            "age_months": age_m,
            "ent_status": np.array(STATUS_CODES, dtype=object)[lat.status],
            "enterprise_scale": self.ent_scale,
            "industry_code": ent.industry_code,
            "district_code": ent.district,
            "ftz_area": ent.ftz_area,
            "zhoushan_sector": self.sector_name,
            "legal_rep_age_band": _age_band(ctx.year - birth),
            "tax_credit_grade": tax_grade,
            "tax_history_months": np.where(age_m >= 0, np.minimum(36, age_m), np.nan).astype(np.float64),
            "t12m_sales": self.sales_buf.sum(axis=0) * scale12,
            "t12m_tax_paid": self.tax_buf.sum(axis=0) * scale12,
            "insured_count": insured,
            "cci": cci,
            "cci_z": (cci_eff - sp.cci_mean) / sp.cci_sd,
            "pd_12m": pd12,
            "credit_score": platform_score(pd12),
            "grade_rank": g,
            "credit_grade": np.array(GRADES, dtype=object)[g],
            "signal_level": level.astype(np.float64),
            "in_default": in_d,
            "has_active_dishonest": dishonest,
            "has_active_restriction": restriction if restriction is not None else np.zeros(n, dtype=bool),
            "has_active_abnormal_list": abnormal,
            "has_active_enforcement": enforcement,
            "oil_license_valid": oil_lic,
            "customs_credit_grade": customs_grade,
            "has_current_platform_loan": current_loan,
            "has_platform_loan_ever": self.loan_ever.copy(),
            "stress": np.maximum(0.0, -_h(ctx)),
            "h": _h(ctx),
            "alive_active": ctx.alive & (lat.status == ACTIVE) & lat.born,
            "operating": ctx.alive & (lat.status == ACTIVE) & lat.born & ~lat.dormant,
        }
        prof.update(self.static)
        for key in BOARD_COLLATERAL:        # observable collateral values of the assets module, when present
            if key in b:
                prof[key] = np.nan_to_num(np.asarray(b[key], dtype=np.float64))
        prof["owns_fishing_vessel"] = (self.sector_name == "marine_fishery") & (prof["vessel_value_est"] > 0)
        return prof

    # =============================================================================================
    # Registration (§9.1)
    def _propensity(self, ctx: MonthContext) -> np.ndarray:
        rp = self.p.registration
        c = rp.need_health_corr
        h = _h(ctx)
        need = np.sqrt(1 - c * c) * self.need_noise + c * (-(h - ctx.mu)) / self.hm_scale
        small_med = np.isin(self.ent_scale, ["small", "medium"])
        lin = (rp.need_loading * need + rp.oil_or_marine * self.oil_marine + rp.small_or_medium * small_med
               + rp.health_loading * h)
        return np.exp(lin) * np.where(ctx.ent.shell, rp.shell_multiplier, 1.0)

    def _solve_r0(self, b: np.ndarray, remaining: float, n_camp: int, n_non: int) -> float:
        rp = self.p.registration
        lo, hi = np.log(rp.r0_bounds[0]), np.log(rp.r0_bounds[1])
        boost = np.exp(rp.campaign)

        def expected(log_r0: float) -> float:
            r0 = np.exp(log_r0)
            p0 = np.minimum(1.0, r0 * b)
            p1 = np.minimum(1.0, r0 * b * boost)
            with np.errstate(divide="ignore"):
                stay = n_non * np.log1p(-np.minimum(p0, 1 - 1e-12)) + n_camp * np.log1p(-np.minimum(p1, 1 - 1e-12))
            return float((1.0 - np.exp(stay)).sum())

        if remaining <= 0:
            return float(np.exp(lo))
        if expected(hi) <= remaining:
            return float(np.exp(hi))
        return float(np.exp(_bisect(expected, lo, hi, remaining)))

    def _register(self, ctx: MonthContext, prof: dict[str, np.ndarray], out: Emitter) -> None:
        t, rng, rp = ctx.t, self.rng, self.p.registration
        pool = prof["operating"] & ~self.registered
        b = self._propensity(ctx)
        if t <= self.t_checkpoint:
            months = range(t, self.t_checkpoint + 1)
            n_camp = sum(m in self.campaign for m in months)
            remaining = rp.target_registered * self.scale - float(self.registered.sum())
            r0 = self._solve_r0(b[pool], remaining, n_camp, len(months) - n_camp)
            self.r0_window.append(r0)
            self.calibration["r0_last"] = r0
        else:
            if self.r0_post is None:
                self.r0_post = float(np.exp(np.mean(np.log(self.r0_window)))) if self.r0_window else \
                    rp.r0_bounds[0]
                self.calibration["r0_post"] = self.r0_post
            r0 = self.r0_post
        boost = np.exp(rp.campaign) if t in self.campaign else 1.0
        p = np.minimum(1.0, r0 * b * boost)
        new = np.flatnonzero(pool & (rng.random(self.n) < p))
        if new.size == 0:
            return
        self.registered[new] = True
        self.reg_month[new] = t
        day = month_start(t) + np.floor(rng.random(new.size) * (month_end(t) - month_start(t) + 1).astype(int)
                                        ).astype("timedelta64[D]")
        self.reg_date[new] = day
        self._new_consents(ctx, new, day, out)
        dp = self.p.demands
        first = rng.random(new.size) < dp.first_prob
        lag = rng.integers(dp.first_lag_months[0], dp.first_lag_months[1] + 1, new.size)
        self.first_demand_month[new[first]] = t + lag[first]

    def _new_consents(self, ctx: MonthContext, slots: np.ndarray, day: np.ndarray, out: Emitter,
                      purpose: str = "loan_application", expires: np.ndarray | None = None,
                      recipients: list[list[str]] | None = None) -> np.ndarray:
        rng, rp, k = self.rng, self.p.registration, slots.size
        ids = hex_ids(rng, "CS_", k)
        granted = _ts(day, rng.random(k) * 0.9 + 0.05)
        if expires is None:
            expires = add_months(np.asarray(day, dtype="datetime64[D]"), rp.consent_months)
        scopes = []
        full = rng.random(k) < rp.consent_full_profile_prob
        draws = {s: rng.random(k) < p for s, p in rp.consent_scope_probs.items()}
        for j in range(k):
            if full[j]:
                scopes.append(["basic_profile", "full_profile"])
            else:
                scopes.append(["basic_profile"] + [s for s, d in draws.items() if d[j]])
        if recipients is None:
            matched = rng.random(k) < rp.consent_matched_recipients_prob
            some = rng.integers(0, len(self.inst_ids), (k, 2))
            recipients = [["matched_institutions"] if matched[j] else sorted({self.inst_ids[x] for x in some[j]})
                          for j in range(k)]
        revoked = np.full(k, np.datetime64("NaT"), dtype="datetime64[s]")
        rev = (rng.random(k) < rp.consent_revoke_prob) & (purpose == "loan_application")
        revoked[rev] = granted[rev] + (rng.integers(30, 300, rev.sum()) * SECONDS_PER_DAY).astype("timedelta64[s]")
        expires = np.asarray(expires, dtype="datetime64[D]")
        if purpose == "loan_application":
            self.consent_id[slots] = ids
            end = expires.copy()
            end[rev] = np.minimum(end[rev], revoked[rev].astype("datetime64[D]"))
            self.consent_end[slots] = end
        frame = pd.DataFrame({
            "consent_id": ids, "uscc": ctx.ent.uscc[slots], "scope": scopes, "recipients": recipients,
            "purpose": np.full(k, purpose, dtype=object), "granted_at": granted.astype("datetime64[s]"),
            "expires_at": expires.astype("datetime64[s]"), "revoked_at": revoked,
            "signature_method": np.where(rng.random(k) < rp.e_seal_prob, "e_seal", "e_signature").astype(object),
        })
        out.emit_table("platform", "consents", frame)
        return ids

    # =============================================================================================
    # Demands (§9.2)
    def _best_customer_rank(self, prof: Mapping[str, np.ndarray]) -> np.ndarray:
        """Best platform grade rank among each firm's (hidden) customers, 99 when it has none."""
        out = np.full(self.n, 99, dtype=np.int64)
        if self._cust_sorted.size == 0:
            return out
        ranks = np.where(prof["operating"][self._cust_sorted], prof["grade_rank"][self._cust_sorted], 99)
        starts = self._cust_bounds[:-1]
        has = self._cust_bounds[1:] > starts
        red = np.minimum.reduceat(ranks, np.minimum(starts, ranks.size - 1))
        out[has] = red[has]
        return out

    def _capacity(self, slots: np.ndarray, prof: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What each firm could plausibly borrow per category (万元); inf where the amount sets the limit."""
        st = prof
        sales = np.maximum(prof["t12m_sales"][slots], 0.0)
        tax = np.maximum(prof["t12m_tax_paid"][slots], 0.0)
        oil = np.isin(self.sector_name[slots], ["oil_trading_bunkering", "oil_gas_storage"])
        # a firm without the category's collateral may still ask, on its turnover; a firm with collateral asks
        # against it (flooring a mortgage request at turnover asked banks for several times the property's
        # loan value, and such requests found no product whose limit covered half of them)
        floor = self.p.demands.capacity_sales_floor * sales
        cap = {
            "credit": np.maximum(0.15 * sales, 8 * tax),
            "mortgage": np.maximum.reduce([0.6 * st["free_property_value"][slots], 0.5 * st["sea_area_value"][slots],
                                           0.5 * st["vessel_value_est"][slots]]),
            "guarantee": 0.3 * sales,
            "pledge": np.where(oil, 0.5 * sales, np.maximum(0.8 * np.nan_to_num(st["receivables_value"][slots]),
                                                            0.4 * np.nan_to_num(st["ip_value"][slots]))),
            "supply_chain": 0.3 * sales,                     # confirmed payables of a core buyer
            "trade_finance": 0.5 * sales,                    # one shipment's value
            "lease_insurance": np.maximum(0.5 * sales, 0.7 * st["vessel_value_est"][slots]),
        }
        return {c: np.where(v > 0, v, floor) for c, v in cap.items()}

    def _category_weights(self, slots: np.ndarray, prof: Mapping[str, np.ndarray],
                          feas: Mapping[str, np.ndarray]) -> np.ndarray:
        """Unnormalised category weights per firm: base mix x feasibility (`_feasible`) x stress tilt."""
        dp = self.p.demands
        stressed = prof["stress"][slots] > dp.stress_threshold
        w = np.empty((slots.size, len(self.categories)))
        for j, c in enumerate(self.categories):
            f = np.where(feas[c], 1.0, dp.infeasible_multiplier.get(c, 1.0))
            tilt = np.where(stressed, dp.stress_category_tilt.get(c, 1.0), 1.0)
            w[:, j] = self.base_mix[j] * f * tilt
        return w

    def _feasible(self, slots: np.ndarray, prof: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per category, whether the firm has what its products lend on (collateral, scale, core customer)."""
        st = prof
        best_cust = self._best_customer_rank(prof)
        oil = np.isin(self.sector_name[slots], ["oil_trading_bunkering", "oil_gas_storage"])
        return {
            "credit": np.ones(slots.size, dtype=bool),
            "mortgage": (st["free_property_value"][slots] > 0) | (st["sea_area_value"][slots] > 0)
            | (st["vessel_value_est"][slots] > 0),
            "guarantee": np.isin(self.ent_scale[slots], ["micro", "small"]),
            "pledge": (oil & (st["oil_license_valid"][slots] | st["bonded_tank_storage"][slots]))
            | st["receivables_registered"][slots] | (st["ip_count"][slots] >= 3) | (st["invention_patents"][slots] >= 1),
            "supply_chain": best_cust[slots] <= 2,
            "trade_finance": st["customs_trader"][slots] & (prof["grade_rank"][slots] <= 3),
            "lease_insurance": self.equipment_sector[slots] | (st["vessel_value_est"][slots] > 0),
        }

    def _fit_mix(self, slots: np.ndarray, weights: np.ndarray, prof: Mapping[str, np.ndarray]) -> None:
        """Scale the base category weights towards the products §8 mix (propensity-weighted pool).

        A category's weight may grow at most `mix_max_boost` times its target share (so that a mix the
        pool cannot support, e.g. more mortgage requests than property owners, is not forced onto firms
        without collateral); the credit share, which has a tolerance, is then matched exactly.
        """
        dp = self.p.demands
        target = np.array([dp.category_mix[c] for c in self.categories])
        credit = self.categories.index("credit")
        self.base_mix = target.copy()
        feas = self._feasible(slots, prof)

        def shares() -> np.ndarray:
            w = self._category_weights(slots, prof, feas)
            return (w / w.sum(axis=1, keepdims=True) * weights[:, None]).sum(axis=0) / weights.sum()

        for _ in range(25):
            self.base_mix = self.base_mix * target / np.maximum(shares(), 1e-9)
            self.base_mix = self.base_mix / self.base_mix[credit] * target[credit]
            self.base_mix = np.minimum(self.base_mix, dp.mix_max_boost * target)
        lo, hi = np.log(1e-3), np.log(1e3)
        others = self.base_mix.copy()
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            self.base_mix = others.copy()
            self.base_mix[credit] = target[credit] * np.exp(mid)
            if shares()[credit] > target[credit]:
                hi = mid
            else:
                lo = mid
        self.calibration["credit_mix_weight"] = float(self.base_mix[credit])

    def _draw_demands(self, ctx: MonthContext, slots: np.ndarray, day: np.ndarray, kind: np.ndarray,
                      prof: Mapping[str, np.ndarray], rng: np.random.Generator,
                      in_window: bool = False) -> dict[str, np.ndarray]:
        """Demand fields of products §3 for the firms in `slots` (vectorised); `in_window`: real requests of
        the seed calibration window, which the amount scale and credit share track."""
        dp, t, k = self.p.demands, ctx.t, slots.size
        st = prof
        stressed = prof["stress"][slots] > dp.stress_threshold
        feas = self._feasible(slots, prof)
        weights = self._category_weights(slots, prof, feas)
        if in_window and dp.calibrate_credit_share:
            weights = self._track_credit_share(weights)
        cat = _choice_rows(rng, self.categories, weights)
        if in_window:
            n_credit = int((cat == "credit").sum())
            self.credit_cum = (self.credit_cum[0] + k, self.credit_cum[1] + n_credit)
        med = np.array([dp.amount[c][0] for c in cat])
        sd = np.array([dp.amount[c][1] for c in cat])
        L = dp.amount_size_loading
        zs = ctx.ent.z_size[slots]
        Q = dp.amount_quality_loading
        quality = np.clip(prof["cci_z"][slots], -3, 3)
        raw = med * np.exp(sd * (L * zs + Q * quality + np.sqrt(max(0.0, 1 - L * L - Q * Q)) * rng.standard_normal(k)))
        cap = self._capacity(slots, prof)
        cap_c = np.array([cap[c][j] for j, c in enumerate(cat)]) if k else np.zeros(0)
        ceiling = np.array([self.category_max_amount[c] for c in cat])
        floor = np.array([self.category_min_amount[c] for c in cat])
        oil_pledge = (cat == "pledge") & np.isin(self.sector_name[slots], ["oil_trading_bunkering", "oil_gas_storage"])
        floor = np.where(oil_pledge, np.maximum(floor, self.oil_pledge_min), floor)
        # a firm asks at most U(capacity_anchor) x what it can borrow on; with nothing to borrow on in the
        # category (no turnover yet, no collateral) or outside its reach (a medium firm and the small-firm
        # guarantee loan, a mortgage with no property, sea area or vessel) it asks the smallest ticket
        anchored = np.minimum(ceiling, cap_c * rng.uniform(*dp.capacity_anchor, k))
        feas_c = np.array([feas[c][j] for j, c in enumerate(cat)], dtype=bool) if k else np.zeros(0, dtype=bool)
        ceiling = np.select([~feas_c, ~np.isfinite(cap_c), cap_c > 0], [floor, ceiling, anchored], floor)
        is_credit = cat == "credit"
        scale = np.where(is_credit, self.amount_scale[0], self.amount_scale[1])
        if in_window and dp.calibrate_amounts:
            scale = self._track_amounts(raw, floor, ceiling, is_credit)
        amount = _amounts(raw * scale, floor, ceiling)
        term = np.array(dp.term_choices)[rng.choice(len(dp.term_choices), k, p=np.array(dp.term_probs))]
        for c, (choices, probs) in dp.term_by_category.items():
            sel = cat == c
            term[sel] = np.array(choices)[rng.choice(len(choices), int(sel.sum()), p=np.array(probs))]
        lo = np.array([self.category_terms[c][0] for c in cat])
        hi = np.array([self.category_terms[c][1] for c in cat])
        term = np.clip(term, lo, hi)
        pkeys = list(dp.purpose)
        pw = np.tile(np.array([dp.purpose[x] for x in pkeys]), (k, 1))
        pw[:, pkeys.index("refinancing")] *= np.where(stressed, dp.stress_refinancing_multiplier, 1.0)
        sec = self.sector_name[slots]
        pw[:, pkeys.index("seasonal_fishing")] *= np.where(sec == "marine_fishery", 8.0, 0.2)
        pw[:, pkeys.index("oil_inventory")] *= np.where(np.isin(sec, OIL_CHAIN), 6.0, 0.2)
        pw[:, pkeys.index("vessel_purchase_or_repair")] *= np.where(st["vessel_value_est"][slots] > 0, 5.0, 0.3)
        purpose = _choice_rows(rng, pkeys, pw)
        ukeys = list(dp.urgency)
        uw = np.tile(np.array([dp.urgency[x] for x in ukeys]), (k, 1))
        uw[:, 0] *= np.where(stressed, dp.stress_urgent_multiplier, 1.0)
        urgency = _choice_rows(rng, ukeys, uw)
        ckeys = list(dp.channel)
        cw = np.tile(np.array([dp.channel[x] for x in ckeys]), (k, 1))
        if t in self.campaign:
            cw[:, ckeys.index("government_referral")] *= dp.campaign_referral_multiplier
        channel = _choice_rows(rng, ckeys, cw)

        preferred, collateral, guarantee = [], [], np.empty(k, dtype=object)
        empty_pref = rng.random(k) < dp.preferred_empty
        u = rng.random(k)
        u2 = rng.random(k)
        cats = self.cfg.categories
        for j in range(k):
            c = cat[j]
            types = list(cats[c])
            preferred.append([] if empty_pref[j] else (types if len(types) == 1 or u2[j] < 0.5
                                                       else [types[int(u2[j] * 10) % len(types)]]))
            s = slots[j]
            avail = self._available_collateral(prof, s, c)
            if c == "credit":
                coll = ["none"] if u[j] < dp.credit_collateral_none else ["personal_joint_guarantee"]
                guarantee[j] = "none" if u[j] < 0.6 else "personal_joint_guarantee"
            elif c == "guarantee":
                coll = ["guarantee_company"]
                guarantee[j] = "guarantee_company"
            else:
                coll = avail if avail else ["none"]
                guarantee[j] = "personal_joint_guarantee" if u[j] < 0.8 else (
                    "third_party_enterprise" if u[j] < 0.9 else "none")
            collateral.append(coll)
        is_oil = np.isin(sec, ["oil_trading_bunkering", "oil_gas_storage"])
        pledged = np.where((cat == "pledge") & is_oil, amount * rng.uniform(1.3, 2.0, k), np.nan)
        core_uscc = np.full(k, None, dtype=object)
        core_grade = np.full(k, None, dtype=object)
        months_core = np.full(k, np.nan)
        payables = np.full(k, np.nan)
        sc = np.flatnonzero(cat == "supply_chain")
        for j in sc:
            s = slots[j]
            custs = self._cust_sorted[self._cust_bounds[s]:self._cust_bounds[s + 1]]
            if custs.size:
                core = int(custs[np.argmin(prof["grade_rank"][custs])])
            else:
                big = np.flatnonzero(prof["operating"] & (ctx.ent.z_size > 1.5))
                core = int(big[rng.integers(big.size)]) if big.size else int(s)
            core_uscc[j] = ctx.ent.uscc[core]
            core_grade[j] = prof["credit_grade"][core]
            months_core[j] = float(min(max(prof["age_months"][s], 0), rng.integers(6, 61)))
            payables[j] = amount[j] * rng.uniform(0.8, 2.0)
        max_rate = np.where(rng.random(k) < dp.max_rate_fill,
                            np.round(rng.uniform(*dp.max_rate_range, k), 2), np.nan)
        existing = rng.random(k) < self.existing_loans_p[slots]
        return {
            "slot": slots, "submit_date": day, "kind": kind, "category": cat, "amount_requested": amount,
            "term_months": term, "purpose": purpose, "urgency": urgency, "channel": channel,
            "preferred_product_types": _list_array(preferred),
            "collateral_offered": _list_array(collateral),
            "guarantee_offered": guarantee, "pledged_inventory_value": pledged,
            "core_enterprise_uscc": core_uscc, "core_enterprise_credit_grade": core_grade,
            "months_invoicing_core": months_core, "core_payables_confirmed": payables,
            "max_acceptable_rate": max_rate,
            "repayment_source": choice_by_weights(rng, dp.repayment_source, k),
            "declares_existing_bank_loans": existing,
            "submit_ts": _ts(day, rng.uniform(0.33, 0.75, k)),
        }

    def _track_credit_share(self, weights: np.ndarray) -> np.ndarray:
        """Within the calibration window, tilt this month's credit-loan weight so that the expected cumulative
        count share of credit requests is products §8's 37%; the launch fit alone drifts by the
        month-to-month draw (one month's noise is what remains, not the whole window's)."""
        k = weights.shape[0]
        if k == 0:
            return weights
        c = self.categories.index("credit")
        share = self.p.demands.category_mix["credit"]
        goal = float(np.clip(share * (self.credit_cum[0] + k) - self.credit_cum[1], 0.0, k))
        wc = weights[:, c]
        rest = weights.sum(axis=1) - wc
        tilt = _bisect(lambda x: (np.exp(x) * wc / (np.exp(x) * wc + rest)).sum(), np.log(1e-3), np.log(1e3), goal)
        out = weights.copy()
        out[:, c] = wc * np.exp(tilt)
        return out

    def _track_amounts(self, raw: np.ndarray, floor: np.ndarray, ceiling: np.ndarray,
                       is_credit: np.ndarray) -> np.ndarray:
        """Within the calibration window, scale this month's credit / other requests so that the cumulative
        mean request matches products §8 (75 / 444 万元); afterwards keep the window's mean scale."""
        dp = self.p.demands
        out = np.empty(raw.size)
        for g, sel in enumerate((is_credit, ~is_credit)):
            if not sel.any():
                continue
            target = dp.target_mean_amount[g] * (self.amount_cum[g][0] + sel.sum()) - self.amount_cum[g][1]
            lo, hi = np.log(dp.amount_scale_bounds[0]), np.log(dp.amount_scale_bounds[1])
            r, fl, ce = raw[sel], floor[sel], ceiling[sel]
            k = float(np.exp(_bisect(lambda x, r=r, fl=fl, ce=ce: _amounts(r * np.exp(x), fl, ce).sum(), lo, hi, target)))
            out[sel] = k
            n_g = int(sel.sum())
            self.amount_cum[g] = (self.amount_cum[g][0] + n_g,
                                  self.amount_cum[g][1] + float(_amounts(r * k, fl, ce).sum()))
            self.amount_window[g].append((np.log(k), n_g))
        self.calibration["amount_scale_credit"], self.calibration["amount_scale_other"] = (
            float(out[is_credit][0]) if is_credit.any() else self.calibration.get("amount_scale_credit", 1.0),
            float(out[~is_credit][0]) if (~is_credit).any() else self.calibration.get("amount_scale_other", 1.0))
        return out

    def _freeze_amount_scale(self) -> None:
        for g in (0, 1):
            w = self.amount_window[g]
            if w:
                logs, ns = zip(*w, strict=True)
                self.amount_scale[g] = float(np.exp(np.average(logs, weights=ns)))

    def _available_collateral(self, prof: Mapping[str, np.ndarray], s: int, category: str) -> list[str]:
        st = prof
        have = {
            "real_estate": st["free_property_value"][s] > 0, "sea_area_use_right": st["sea_area_value"][s] > 0,
            "vessel": st["vessel_value_est"][s] > 0,
            "oil_inventory_receipt": self.sector_name[s] in ("oil_trading_bunkering", "oil_gas_storage"),
            "receivables": bool(st["receivables_registered"][s]), "ip": st["ip_count"][s] >= 1,
            "equipment": bool(self.equipment_sector[s]), "deposit": False,
        }
        return [c for c in CATEGORY_COLLATERAL.get(category, ()) if have.get(c, False)]

    def _demand_slots(self, ctx: MonthContext, prof: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        t, dp, rng = ctx.t, self.p.demands, self.rng
        ok = prof["operating"] & self.registered
        first = ok & (self.first_demand_month == t)
        retry = ok & (self.retry_month == t) & ~first
        season = dp.seasonality[ctx.moy - 1] * self.special.get(t, 1.0)
        stress = np.where(prof["stress"] > dp.stress_threshold, dp.stress_multiplier, 1.0)
        eligible = ok & ~first & ~retry & ((t - self.last_demand_month) >= dp.repeat_min_gap_months) & (
            (self.first_demand_month < 0) | (self.first_demand_month < t))
        p_repeat = np.where(eligible, dp.repeat_rate * season * stress, 0.0)
        if dp.calibrate_requests:
            self.repeat_multiplier = self._track_requests(t, p_repeat, int(first.sum() + retry.sum()))
        repeat = eligible & (rng.random(self.n) < p_repeat * self.repeat_multiplier)
        kind = np.full(self.n, None, dtype=object)
        kind[repeat] = "repeat"
        kind[retry] = "retry"
        kind[first] = "first"
        slots = np.flatnonzero(first | retry | repeat)
        if t <= self.t_checkpoint:
            self.requests_cum += slots.size
        return slots, kind[slots]

    def _track_requests(self, t: int, p_repeat: np.ndarray, fixed: int) -> float:
        """Within the calibration window, the repeat-request multiplier that puts the expected cumulative
        requests on products §8's requests per registered firm (2,644 / 2,794) x the firms registered so far,
        less the first requests already scheduled for later window months (so repeats are not pulled forward
        to stand in for them); this month's first requests and retries count as drawn. Afterwards the
        window's mean."""
        dp = self.p.demands
        if t > self.t_checkpoint:
            if self.repeat_post is None:
                m = np.array(self.repeat_window) if self.repeat_window else np.ones((1, 2))
                self.repeat_post = float(np.average(m[:, 0], weights=m[:, 1] + 1e-9))
                self.calibration["repeat_multiplier_post"] = self.repeat_post
            return self.repeat_post
        registered = float(self.registered.sum())
        pending = int(((self.first_demand_month > t) & (self.first_demand_month <= self.t_checkpoint)).sum())
        goal = dp.target_requests / self.p.registration.target_registered * registered - pending
        expected = float(p_repeat.sum())
        need = goal - self.requests_cum - fixed
        lo, hi = dp.repeat_multiplier_bounds
        mult = float(np.clip(need / expected, lo, hi)) if expected > 0 else 1.0
        if p_repeat.max(initial=0.0) * mult > 1.0:         # a probability cannot exceed 1: solve on the clipped sum
            mult = _bisect(lambda x: np.minimum(p_repeat * x, 1.0).sum(), lo, mult, need)
        self.repeat_window.append((mult, expected))
        self.calibration["repeat_multiplier_last"] = mult
        return mult

    def _demand_days(self, t: int, slots: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        start = month_start(t)
        ndays = int((month_end(t) - start).astype(int)) + 1
        lo = np.zeros(slots.size, dtype=np.int64)
        same = self.reg_month[slots] == t
        lo[same] = (self.reg_date[slots][same] - start).astype(np.int64)
        off = lo + np.floor(rng.random(slots.size) * (ndays - lo)).astype(np.int64)
        return start + off.astype("timedelta64[D]")

    # =============================================================================================
    # Matching (§4 steps 1-5) and bank responses (step 6), independent of the decision shift
    def _attrs(self, dem: Mapping[str, np.ndarray], prof: Mapping[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
        slots = dem["slot"]
        attrs = {k: (v[slots] if isinstance(v, np.ndarray) and v.shape[:1] == (self.n,) else v)
                 for k, v in prof.items()}
        for k in ("amount_requested", "term_months", "pledged_inventory_value", "core_enterprise_credit_grade",
                  "months_invoicing_core", "core_payables_confirmed", "guarantee_offered"):
            attrs[k] = dem[k]
        attrs["submit_month"] = (date_to_month(dem["submit_date"]) % 12 + 1).astype(np.float64)
        attrs["is_first_loan"] = ~attrs["has_platform_loan_ever"] & ~dem["declares_existing_bank_loans"]
        attrs["existing_limit"] = dem["amount_requested"]
        return attrs

    def _match(self, ctx: MonthContext, dem: Mapping[str, np.ndarray], prof: Mapping[str, np.ndarray],
               rng: np.random.Generator) -> dict[str, np.ndarray | list]:
        """Eligibility, compatibility, ranking and decision scores for every demand x lending product."""
        t = ctx.t
        nd, npr = len(dem["slot"]), len(self.lend)
        a = self._attrs(dem, prof, t)
        go = self.cfg.grade_orders
        elig = np.zeros((nd, npr), dtype=bool)
        limit = np.zeros((nd, npr))
        failed: list[list[tuple[str, np.ndarray]]] = []
        for j, p in enumerate(self.lend):
            leaves: list[tuple[str, np.ndarray]] = []
            elig[:, j] = evaluate_rule(p.eligibility, a, nd, go, leaves)
            failed.append(leaves)
            a["amount_max"] = np.full(nd, p.amount_max)
            limit[:, j] = np.minimum(evaluate_limit(p.limit_rule, a, p.max_ltv, nd), p.amount_max)
        limit = np.nan_to_num(limit, nan=0.0)
        req = dem["amount_requested"][:, None]
        lpr = float(self.cfg.lpr(t))
        shift = np.where(self.p_spread, lpr - self.cfg.reference_lpr, 0.0)
        rate_min = self.p_rate[:, 0] + shift
        rate_max = self.p_rate[:, 1] + shift
        term = dem["term_months"][:, None]
        amount_ok = self.p_amount_min[None, :] <= req
        limit_ok = limit >= self.p.matching.min_limit_share * req
        term_ok = ((self.p_term[None, :, 0] <= term) & (term <= self.p_term[None, :, 1])) | self.p_revolving[None, :]
        max_rate = dem["max_acceptable_rate"][:, None]
        rate_ok = np.isnan(max_rate) | (rate_min[None, :] <= max_rate)
        district = a["district_code"]
        none = np.zeros(npr, dtype=bool)
        dist_ok = np.array([self.p_district.get(x, none) for x in district], dtype=bool).reshape(nd, npr)
        active_ok = (self.p_active_from <= t)[None, :]
        coll_ok = np.zeros((nd, npr), dtype=bool)
        to_confirm = np.zeros((nd, npr), dtype=bool)
        for i in range(nd):
            offered = set(dem["collateral_offered"][i])
            s = int(dem["slot"][i])
            avail = set(self._available_collateral(prof, s, "mortgage") + self._available_collateral(prof, s, "pledge")
                        + self._available_collateral(prof, s, "lease_insurance"))
            avail |= {"guarantee_company", "loan_insurance", "personal_joint_guarantee"}
            for j, p in enumerate(self.lend):
                acc = set(p.collateral_accepted)
                if "none" in acc or acc & offered:
                    coll_ok[i, j] = True
                elif acc & avail:
                    coll_ok[i, j] = True
                    to_confirm[i, j] = True
        compat = amount_ok & limit_ok & term_ok & rate_ok & dist_ok & active_ok & coll_ok
        level = a["signal_level"][:, None]
        level_ok = (level <= 4) | ((level <= 6) & np.isin(self.p_class, ["secured", "guaranteed"])[None, :])
        precheck = a["alive_active"] & ~a["in_default"] & (a["signal_level"] <= 6)
        considered = dem["category"][:, None] == self.p_category[None, :]
        candidate = considered & elig & compat & level_ok & precheck[:, None]
        enhancement = self.p_enhancement[None, :] & elig & compat & level_ok & precheck[:, None]

        # ranking components
        g = a["grade_rank"]
        prior = self.cfg.approval_prior
        p_approve = np.array([[prior[c].get(GRADES[gi], 0.0) for c in self.p_class] for gi in g]).reshape(nd, npr)
        amount_fit = np.minimum(1.0, limit / req)
        frac = (np.minimum(g, 8) / 8.0) ** self.p.decisions.rate_grade_exponent
        exp_rate = rate_min[None, :] + (rate_max - rate_min)[None, :] * frac[:, None]
        rate_fit = np.where(np.isnan(max_rate), 0.5, np.clip(0.5 + (max_rate - exp_rate), 0, 1))
        urg = dem["urgency"][:, None]
        sla = self.p_sla[None, :]
        speed_fit = np.where((urg == "flexible") | ((urg == "within_30d") & (sla <= 20)) | (sla <= 7), 1.0, 0.5)
        policy_fit = self._policy_fit(a, dem, t)
        w = self.p.matching.weights
        score = (w["p_approve"] * p_approve + w["amount_fit"] * amount_fit + w["rate_fit"] * rate_fit
                 + w["speed_fit"] * speed_fit + w["policy_fit"] * policy_fit)
        jitter = rng.random((nd, npr)) * 1e-6          # equal scores rotate at random (no herding)

        # decision score without the calibrated shift (§9.4)
        dcp = self.p.decisions
        q = (a["credit_score"] - 700) / 100.0
        secured = self.p_class == "secured"
        cov = np.where(secured[None, :], np.minimum(dcp.coverage_cap, limit / req),
                       np.where(self.p_class == "guaranteed", self.p_coverage, 0.0)[None, :])
        sales_term = dcp.sales_weight * np.log10(1 + np.maximum(a["t12m_sales"], 0.0))
        sector = ctx.ent.sector[dem["slot"]]
        soft = (a["h"] - self.mu_s[dem["slot"]])
        z0 = (self.inst_theta[self.p_inst][None, :] + dcp.q_weight * q[:, None] + dcp.collateral_weight * cov
              + sales_term[:, None] + self.inst_pref[self.p_inst][:, sector].T
              + self.inst_kappa[self.p_inst][None, :] * soft[:, None]
              + dcp.noise_sd * rng.standard_normal((nd, npr)))
        mp = self.p.matching
        accept_p = sigmoid(mp.accept_intercept + mp.accept_slope * (p_approve - 0.5))
        return {
            "compat_parts": {"amount_min": amount_ok, "limit": limit_ok, "term": term_ok, "max_rate": rate_ok,
                             "district": dist_ok, "inactive": np.broadcast_to(active_ok, (nd, npr)),
                             "collateral": coll_ok},
            "attrs": a, "elig": elig, "failed": failed, "limit": limit, "compat": compat, "considered": considered,
            "candidate": candidate, "enhancement": enhancement, "to_confirm": to_confirm, "p_approve": p_approve,
            "amount_fit": amount_fit, "rate_fit": rate_fit, "speed_fit": speed_fit, "policy_fit": policy_fit,
            "score": score + jitter, "z0": z0, "cov": cov, "q": q, "sales_term": sales_term,
            "u_accept": rng.random((nd, npr)), "accept_p": accept_p, "u_decline": rng.random((nd, npr)),
            "u_resp": rng.random((nd, npr)), "u_withdraw": rng.random((nd, npr)), "u_pool": rng.random(nd),
            "u_pool_pick": rng.random(nd), "precheck": precheck, "rate_min": rate_min, "rate_max": rate_max,
            "match_ts": dem["submit_ts"] + (rng.uniform(0.02, 0.4, nd) * SECONDS_PER_DAY).astype("timedelta64[s]"),
        }

    def _policy_fit(self, a: Mapping[str, np.ndarray], dem: Mapping[str, np.ndarray], t: int) -> np.ndarray:
        nd = len(dem["slot"])
        sec = a["zhoushan_sector"]
        flags = {
            "first_loan": a["is_first_loan"],
            "marine_economy": np.isin(sec, MARINE_ECONOMY),
            "oil_chain": np.isin(sec, OIL_CHAIN),
            "fishery": sec == "marine_fishery",
            "sci_tech": a["ip_count"] > 0,
            "inclusive_small_micro": np.isin(a["enterprise_scale"], ["micro", "small"]),
            "covid_relief": np.full(nd, month_index("2020-02") <= t <= month_index("2020-12")),
            "renewal_without_repayment": a["has_current_platform_loan"],
        }
        out = np.full((nd, len(self.lend)), 0.5)
        for j, p in enumerate(self.lend):
            hit = np.zeros(nd, dtype=bool)
            for tag in p.policy_tags:
                if tag in flags:
                    hit |= flags[tag]
            out[hit, j] = 1.0
        return out

    def _stage_a(self, dem: Mapping[str, np.ndarray], m: Mapping, use_capacity: bool) -> list[dict]:
        """Push sequence and bank responses per demand (no decisions yet).

        Each result holds the pushes, the accepted products, the tentative credit-enhancement pushes
        (used only after two rejections) and zmax, the best decision score that could approve the
        demand: with a common shift s the demand is approved iff zmax + s > 0.
        """
        mp = self.p.matching
        nd = len(dem["slot"])
        out: list[dict] = [{} for _ in range(nd)]
        district = m["attrs"]["district_code"]
        for d in np.argsort(dem["submit_ts"], kind="stable").tolist():
            r: dict = {"pushes": [], "accepted": [], "enh": [], "zmax": -np.inf}
            out[d] = r
            if not m["precheck"][d]:
                continue
            cand = np.flatnonzero(m["candidate"][d])
            kind = "ranked"
            if cand.size == 0:
                # nothing eligible in the requested category: propose credit enhancement (T11 + N01, N03)
                cand = np.flatnonzero(m["enhancement"][d])
                kind = "enhancement"
            if cand.size:
                self._push_rounds(d, self._distinct_institutions(cand, m["score"][d]), m, r, use_capacity, kind)
            claim_p = min(0.9, mp.open_pool_claim_prob
                          * (dem["amount_requested"][d] / 100.0) ** mp.open_pool_amount_elasticity)
            if not r["accepted"] and kind == "enhancement" and m["u_pool"][d] < claim_p:
                # open pool (抢单): an institution serving the district may claim it for 3 working days;
                # large tickets are claimed more often; a bank claims only what its product can fund
                # (limit >= min_limit_share x the request), or the grant would be a token amount
                pool = np.flatnonzero(m["considered"][d] & self.p_district[district[d]]
                                      & m["compat_parts"]["limit"][d] & (m["attrs"]["signal_level"][d] <= 6))
                if pool.size:
                    j = int(pool[int(m["u_pool_pick"][d] * pool.size)])
                    ts = m["match_ts"][d] + np.timedelta64(int(m["u_resp"][d, j] * mp.open_pool_days
                                                               * SECONDS_PER_DAY), "s")
                    r["pushes"].append((j, "open_pool", ts, "accepted", ts))
                    r["accepted"].append(j)
            kept = [j for j in r["accepted"] if m["u_withdraw"][d, j] >= mp.withdraw_prob]
            zs = [float(m["z0"][d, j]) for j in kept]
            if len(kept) >= mp.enhancement_after_rejections and len(r["pushes"]) < mp.max_pushes:
                seen = {int(self.p_inst[p[0]]) for p in r["pushes"]}
                enh = np.flatnonzero(m["enhancement"][d])
                enh = enh[np.argsort(-m["score"][d, enh], kind="stable")]
                for j in enh.tolist():
                    inst = int(self.p_inst[j])
                    if inst not in seen and len(r["enh"]) < mp.max_pushes - len(r["pushes"]):
                        seen.add(inst)
                        r["enh"].append(j)
                zs += [float(m["z0"][d, j]) for j in r["enh"] if m["u_accept"][d, j] < m["accept_p"][d, j]
                       and m["u_withdraw"][d, j] >= mp.withdraw_prob]
            r["zmax"] = max(zs) if zs else -np.inf
        return out

    def _distinct_institutions(self, cand: np.ndarray, score: np.ndarray) -> list[int]:
        """Candidates by descending score, the best product of each institution only."""
        cand = cand[np.argsort(-score[cand], kind="stable")]
        seen: set[int] = set()
        queue = []
        for j in cand.tolist():
            inst = int(self.p_inst[j])
            if inst not in seen:
                seen.add(inst)
                queue.append(j)
        return queue

    def _push_rounds(self, d: int, queue: list[int], m: Mapping, r: dict, use_capacity: bool, kind: str) -> None:
        """First wave of `first_wave` pushes; each decline or timeout frees a slot for the next candidate."""
        mp = self.p.matching
        free_at = [m["match_ts"][d]] * mp.first_wave
        k = 0
        while free_at and k < len(queue) and len(r["pushes"]) < mp.max_pushes:
            ts = free_at.pop(0)
            j = queue[k]
            k += 1
            inst = int(self.p_inst[j])
            if use_capacity:
                week = int(ts.astype("datetime64[D]").astype(np.int64) // 7)
                if self.capacity_used[(inst, week)] >= self.inst_capacity[inst]:
                    free_at.insert(0, ts)
                    continue
                self.capacity_used[(inst, week)] += 1
            push_kind = kind if len(r["pushes"]) < mp.first_wave else "replacement"
            if m["u_accept"][d, j] < m["accept_p"][d, j]:
                resp = "accepted"
                rts = ts + np.timedelta64(int((mp.response_days[0] + m["u_resp"][d, j]
                                               * (mp.response_days[1] - mp.response_days[0])) * SECONDS_PER_DAY), "s")
                r["accepted"].append(j)
            else:
                declined = m["u_decline"][d, j] < mp.decline_share
                resp = "declined" if declined else "timeout"
                days = (mp.response_days[0] + m["u_resp"][d, j] * (mp.response_days[1] - mp.response_days[0])
                        if declined else mp.timeout_days)
                rts = ts + np.timedelta64(int(days * SECONDS_PER_DAY), "s")
                free_at.append(rts)
                free_at.sort()
            r["pushes"].append((j, push_kind, ts, resp, rts))

    # ---------------------------------------------------------------------------------------------
    def _calibrate_shift(self, ctx: MonthContext, prof: Mapping[str, np.ndarray]) -> float:
        """Common decision shift so that the demand-level approval of a synthetic cohort is the target."""
        dcp = self.p.decisions
        rng = np.random.default_rng(self.rng.integers(0, 2**63))
        pool = np.flatnonzero(prof["operating"])
        b = self._propensity(ctx)[pool]
        if pool.size == 0:
            return 0.0
        k = min(dcp.prepass_demands, pool.size)
        slots = np.sort(rng.choice(pool, size=k, replace=False, p=b / b.sum()))
        day = month_start(ctx.t) + np.floor(rng.random(k) * 28).astype("timedelta64[D]")
        dem = self._draw_demands(ctx, slots, day, np.full(k, "first", dtype=object), prof, rng)
        m = self._match(ctx, dem, prof, rng)
        res = self._stage_a(dem, m, use_capacity=False)
        zmax = np.array([r["zmax"] for r in res])
        target = min(0.99, dcp.approval_target + dcp.prepass_offset)
        finite = np.isfinite(zmax)
        self.calibration["prepass_reachable"] = float(finite.mean())
        if finite.mean() <= target:
            shift = dcp.shift_bounds[1]
        else:
            shift = float(-np.quantile(np.where(finite, zmax, -1e9), 1 - target))
        shift = float(np.clip(shift, *dcp.shift_bounds))
        self.calibration["decision_shift"] = shift
        return shift

    # =============================================================================================
    def _demands(self, ctx: MonthContext, prof: dict[str, np.ndarray], out: Emitter) -> None:
        t, rng = ctx.t, self.rng
        slots, kind = self._demand_slots(ctx, prof)
        if slots.size == 0:
            return
        day = self._demand_days(t, slots, rng)
        in_window = t <= self.t_checkpoint
        if not in_window and self.p.demands.calibrate_amounts and not self.amount_frozen:
            self._freeze_amount_scale()
            self.amount_frozen = True
        dem = self._draw_demands(ctx, slots, day, kind, prof, rng, in_window=in_window)
        self.last_demand_month[slots] = t
        self.retry_month[slots] = -1
        nd = slots.size
        dem["demand_id"] = hex_ids(rng, "D_", nd)
        # consent: valid loan_application consent at submission, else a fresh one
        need = np.isnat(self.consent_end[slots]) | (self.consent_end[slots] < day)
        if need.any():
            self._new_consents(ctx, slots[need], day[need], out)
        dem["consent_id"] = self.consent_id[slots].copy()
        m = self._match(ctx, dem, prof, rng)
        res = self._stage_a(dem, m, use_capacity=True)
        if self.p.decisions.calibrate:
            self._track_shift(t, np.array([r["zmax"] for r in res]))
        self._decide_and_emit(ctx, dem, m, res, prof, out)

    def _track_shift(self, t: int, zmax: np.ndarray) -> None:
        """Within the calibration window, pick this month's shift so that the cumulative demand-level
        approval equals the target (approval is zmax + shift > 0); afterwards keep the window mean."""
        dcp = self.p.decisions
        if t > self.t_checkpoint:
            if self.shift_post is None:
                w = np.array(self.shift_window)
                self.shift_post = float(np.average(w[:, 0], weights=np.maximum(w[:, 1], 1))) if len(w) else \
                    float(self.shift or 0.0)
                self.calibration["decision_shift_post"] = self.shift_post
            self.shift = self.shift_post
            return
        nd = zmax.size
        need = dcp.approval_target * (self.cum_demands + nd) - self.cum_approved
        z = np.sort(zmax[np.isfinite(zmax)])[::-1]
        k = int(np.clip(np.round(need), 0, z.size))
        if z.size == 0:
            shift = self.shift_prepass
        elif k == 0:
            shift = -z[0] - 1e-6
        elif k >= z.size:
            shift = -z[-1] + 1e-6
        else:
            shift = -0.5 * (z[k - 1] + z[k])
        shift = float(np.clip(shift, self.shift_prepass - dcp.max_monthly_deviation,
                              self.shift_prepass + dcp.max_monthly_deviation))
        self.shift = shift
        self.cum_demands += nd
        self.cum_approved += int((zmax + shift > 0).sum())
        self.shift_window.append((shift, nd))
        self.calibration["decision_shift_last"] = shift

    # ---------------------------------------------------------------------------------------------
    def _decide_and_emit(self, ctx: MonthContext, dem: dict[str, np.ndarray], m: Mapping, res: list[dict],
                         prof: Mapping[str, np.ndarray], out: Emitter) -> None:
        rng = self.rng
        mp, dcp, lp = self.p.matching, self.p.decisions, self.p.loans
        shift = float(self.shift or 0.0)
        nd = len(dem["slot"])
        uscc = ctx.ent.uscc[dem["slot"]]
        a = m["attrs"]
        status = np.full(nd, None, dtype=object)
        ev_rows: list[tuple] = []
        push_rows: list[tuple] = []
        dec_rows: list[tuple] = []
        loan_rows: dict[str, list] = defaultdict(list)
        mp_days = dcp.calendar_days_per_working_day
        grade_rank = a["grade_rank"]
        lpr_of = self.cfg.lpr
        u_dec = rng.random((nd, mp.max_pushes + 2, 6))
        for d in range(nd):
            r = res[d]
            did = dem["demand_id"][d]
            sub_ts = dem["submit_ts"][d]
            ev_rows.append((did, uscc[d], sub_ts, "submitted", "enterprise", dem["kind"][d]))
            if not m["precheck"][d]:
                reason = "in_default" if a["in_default"][d] else (
                    "not_active" if not a["alive_active"][d] else "referred_to_restructuring_desk")
                ev_rows.append((did, uscc[d], m["match_ts"][d], "closed", "platform", reason))
                status[d] = "closed"
                continue
            ev_rows.append((did, uscc[d], m["match_ts"][d], "matched", "platform",
                            f"{int(m['candidate'][d].sum())} candidate products"))
            pushes = list(r["pushes"])
            decisions: list[tuple] = []      # (j, decision, ts, amount, rate, reason, kind)
            kept = []
            for j in r["accepted"]:
                rts = next(p[4] for p in pushes if p[0] == j)
                if m["u_withdraw"][d, j] < mp.withdraw_prob:
                    decisions.append((j, "withdrawn", rts + np.timedelta64(int(86400 * (1 + 3 * u_dec[d, 0, 0])), "s"),
                                      "enterprise_withdrew"))
                else:
                    kept.append((j, rts))
            approvals = []
            k_dec = 0
            for j, rts in kept:
                z = m["z0"][d, j] + shift
                dts = rts + np.timedelta64(int(SECONDS_PER_DAY * mp_days * (1 + u_dec[d, k_dec, 1]
                                                                           * (self.p_sla[j] - 1))), "s")
                k_dec += 1
                if z > 0:
                    approvals.append((j, dts))
                    decisions.append((j, "approved", dts, None))
                else:
                    decisions.append((j, "rejected", dts, self._reason(m, d, j, u_dec[d, k_dec, 2])))
            if not approvals and len(kept) >= mp.enhancement_after_rejections and r["enh"]:
                start = max(x[2] for x in decisions) + np.timedelta64(SECONDS_PER_DAY, "s")
                for j in r["enh"]:
                    ts = start
                    if m["u_accept"][d, j] < m["accept_p"][d, j]:
                        rts = ts + np.timedelta64(int(SECONDS_PER_DAY * (mp.response_days[0] + m["u_resp"][d, j]
                                                                         * mp.response_days[1])), "s")
                        pushes.append((j, "enhancement", ts, "accepted", rts))
                        if m["u_withdraw"][d, j] < mp.withdraw_prob:
                            decisions.append((j, "withdrawn", rts + np.timedelta64(SECONDS_PER_DAY, "s"),
                                              "enterprise_withdrew"))
                            continue
                        dts = rts + np.timedelta64(int(SECONDS_PER_DAY * mp_days * (1 + u_dec[d, k_dec % 8, 3]
                                                                                   * (self.p_sla[j] - 1))), "s")
                        k_dec += 1
                        if m["z0"][d, j] + shift > 0:
                            approvals.append((j, dts))
                            decisions.append((j, "approved", dts, None))
                        else:
                            decisions.append((j, "rejected", dts, self._reason(m, d, j, u_dec[d, k_dec % 8, 4])))
                    else:
                        declined = m["u_decline"][d, j] < mp.decline_share
                        rts = ts + np.timedelta64(int(SECONDS_PER_DAY * (mp.response_days[1] if declined
                                                                         else mp.timeout_days)), "s")
                        pushes.append((j, "enhancement", ts, "declined" if declined else "timeout", rts))
            for j, kind, ts, resp, rts in pushes:
                push_rows.append((did, uscc[d], self.inst_ids[self.p_inst[j]], self.lend[j].product_id, ts, resp,
                                  rts, kind))
            if pushes:
                ev_rows.append((did, uscc[d], min(p[2] for p in pushes), "pushed", "platform",
                                f"{len(pushes)} pushes"))
            acc_ts = [p[4] for p in pushes if p[3] == "accepted"]
            if acc_ts:
                first_acc = min(acc_ts)
                ev_rows.append((did, uscc[d], first_acc, "accepted", "institution", ""))
                ev_rows.append((did, uscc[d], first_acc + np.timedelta64(3600, "s"), "under_review", "institution",
                                ""))
            # amounts and rates of approvals; the enterprise takes the cheapest, the rest lapse
            offers = []
            for j, dts in approvals:
                g = int(grade_rank[d])
                req = dem["amount_requested"][d]
                p = self.lend[j]
                if g <= dcp.larger_line_max_rank and rng.random() < dcp.larger_line_prob:
                    amt = min(p.amount_max, req * rng.uniform(*dcp.larger_line_range))
                else:
                    amt = min(m["limit"][d, j], req) * rng.uniform(*dcp.amount_haircut)
                amt = float(max(1.0, np.round(amt, 0)))
                dmon = int(date_to_month(dts.astype("datetime64[D]")))
                shift_l = (float(lpr_of(dmon)) - self.cfg.reference_lpr) if self.p_spread[j] else 0.0
                lo, hi = self.p_rate[j, 0] + shift_l, self.p_rate[j, 1] + shift_l
                rate = lo + (hi - lo) * (min(g, 8) / 8.0) ** dcp.rate_grade_exponent + rng.normal(0, dcp.rate_noise_sd)
                rate = float(np.round(max(rate, lo - 0.3), 2))
                tmin, tmax = self.p_term[j]
                term = int(np.clip(dem["term_months"][d], tmin, tmax))
                offers.append((rate, -amt, j, dts, amt, term))
            # the enterprise takes the offer that covers most of its request, then the cheapest
            req_d = float(dem["amount_requested"][d])
            chosen = min(offers, key=lambda o: (-min(o[4], req_d), o[0])) if offers else None
            for j, decision, dts, reason in decisions:
                amt = rate = term = None
                accepted_by = False
                gm = self._guarantee_mode(j, dem, d)
                if decision == "approved":
                    o = next(o for o in offers if o[2] == j)
                    rate, amt, term = o[0], o[4], o[5]
                    accepted_by = chosen is not None and chosen[2] == j
                dec_rows.append((did, uscc[d], self.inst_ids[self.p_inst[j]], self.lend[j].product_id, decision,
                                 reason, amt, rate, term, gm if decision == "approved" else None, dts, accepted_by,
                                 dem["category"][d]))
            if chosen is not None:
                rate, _, j, dts, amt, term = chosen
                first_ok = min(x[1] for x in approvals)
                ev_rows.append((did, uscc[d], first_ok, "approved", self.inst_ids[self.p_inst[j]], ""))
                sign = dts + np.timedelta64(int(SECONDS_PER_DAY * rng.integers(*dcp.contract_days)), "s")
                disb = (dts.astype("datetime64[D]")
                        + np.timedelta64(int(rng.integers(lp.disbursement_days[0], lp.disbursement_days[1] + 1)), "D"))
                disb = max(disb, sign.astype("datetime64[D]"))
                ev_rows.append((did, uscc[d], sign, "contract_signed", "enterprise", ""))
                ev_rows.append((did, uscc[d], _ts(disb, 0.4), "disbursed", self.inst_ids[self.p_inst[j]], ""))
                status[d] = "disbursed"
                p = self.lend[j]
                lease = p.product_type == "financial_lease"
                loan_rows["slot"].append(int(dem["slot"][d]))
                loan_rows["demand_id"].append(did)
                loan_rows["inst"].append(self.inst_ids[self.p_inst[j]])
                loan_rows["product_id"].append(p.product_id)
                loan_rows["category"].append(dem["category"][d])
                loan_rows["amount"].append(amt)
                loan_rows["rate"].append(rate)
                loan_rows["term"].append(term)
                loan_rows["disb_date"].append(disb)
                loan_rows["lease"].append(lease)
                loan_rows["credit"].append(bool(self.p_credit[j]))
                loan_rows["method"].append("equal_installment" if lease else p.repayment_methods[0])
                loan_rows["ptype"].append(p.product_type)
            else:
                if any(x[1] == "rejected" for x in decisions):
                    status[d] = "rejected"
                    last = max(x[2] for x in decisions)
                    ev_rows.append((did, uscc[d], last, "rejected", "institution", ""))
                elif decisions and all(x[1] == "withdrawn" for x in decisions):
                    status[d] = "withdrawn"
                    ev_rows.append((did, uscc[d], max(x[2] for x in decisions), "withdrawn", "enterprise", ""))
                else:
                    status[d] = "expired"
                    last = max([p[4] for p in pushes], default=m["match_ts"][d]) + np.timedelta64(
                        int(SECONDS_PER_DAY * mp.open_pool_days), "s")
                    ev_rows.append((did, uscc[d], last, "expired", "platform",
                                    "no eligible product" if not pushes else "no institution accepted"))
        self._emit_demand_tables(ctx, dem, m, status, ev_rows, push_rows, dec_rows, out)
        self._book_loans(ctx, loan_rows, out)
        self._after_outcomes(ctx, dem, status, prof, m)

    def _guarantee_mode(self, j: int, dem: Mapping[str, np.ndarray], d: int) -> str:
        pt = self.p_type[j]
        if pt == "guarantee_loan":
            return "guarantee_company"
        if pt == "loan_guarantee_insurance":
            return "loan_insurance"
        if self.p_class[j] == "secured":
            return "collateral"
        g = dem["guarantee_offered"][d]
        return "personal_joint_guarantee" if g == "personal_joint_guarantee" else "credit"

    def _reason(self, m: Mapping, d: int, j: int, u: float) -> str:
        a = m["attrs"]
        if u < self.p.decisions.incomplete_documents_prob:
            return "incomplete_documents"
        if a["has_active_dishonest"][d] or a["has_active_abnormal_list"][d] or a["has_active_restriction"][d]:
            return "negative_records"
        if self.p_class[j] == "secured" and m["cov"][d, j] < 0.8:
            return "insufficient_collateral"
        if m["q"][d] < -0.3:
            return "credit_grade"
        if m["sales_term"][d] < 0.6:
            return "insufficient_cash_flow"
        if self.inst_pref[self.p_inst[j], 0] < 0 or a["signal_level"][d] >= 4:
            return "outside_policy"
        return "credit_grade" if u < 0.6 else "insufficient_cash_flow"

    # ---------------------------------------------------------------------------------------------
    def _emit_demand_tables(self, ctx: MonthContext, dem: Mapping[str, np.ndarray], m: Mapping, status: np.ndarray,
                            ev_rows: list[tuple], push_rows: list[tuple], dec_rows: list[tuple], out: Emitter) -> None:
        nd = len(dem["slot"])
        uscc = ctx.ent.uscc[dem["slot"]]
        out.emit_table("platform", "demands", pd.DataFrame({
            "demand_id": dem["demand_id"], "uscc": uscc, "submit_date": dem["submit_date"].astype("datetime64[s]"),
            "channel": dem["channel"], "amount_requested": np.round(dem["amount_requested"], 2),
            "term_months": dem["term_months"].astype(np.int64), "purpose": dem["purpose"],
            "preferred_product_types": list(dem["preferred_product_types"]),
            "collateral_offered": list(dem["collateral_offered"]), "guarantee_offered": dem["guarantee_offered"],
            "core_enterprise_uscc": dem["core_enterprise_uscc"],
            "pledged_inventory_value": np.round(dem["pledged_inventory_value"], 2),
            "max_acceptable_rate": dem["max_acceptable_rate"], "urgency": dem["urgency"],
            "repayment_source": dem["repayment_source"],
            "declares_existing_bank_loans": dem["declares_existing_bank_loans"].astype(bool),
            "consent_id": dem["consent_id"], "status": status, "product_category": dem["category"],
            "demand_kind": dem["kind"],
        }))
        if ev_rows:
            ev = pd.DataFrame(ev_rows, columns=["demand_id", "uscc", "event_ts", "status", "actor", "note"])
            ev["event_ts"] = ev["event_ts"].astype("datetime64[s]")
            out.emit_table("platform", "demand_events", ev)
        # matches: every demand x product of its requested category (and enhancement products screened)
        rows_d, rows_j = np.nonzero(m["considered"] | (m["enhancement"] & m["precheck"][:, None]))
        if rows_d.size:
            failed = []
            for d, j in zip(rows_d.tolist(), rows_j.tolist(), strict=True):
                failed.append("; ".join(lab for lab, v in m["failed"][j] if not v[d]) if not m["elig"][d, j]
                              else None)
            incompat = []
            parts = m["compat_parts"]
            for d, j in zip(rows_d.tolist(), rows_j.tolist(), strict=True):
                incompat.append(None if m["compat"][d, j] else "; ".join(k for k, v in parts.items() if not v[d, j]))
            cand = m["candidate"] | (m["enhancement"] & ~m["considered"])
            rank = np.full(rows_d.size, np.nan)
            for d in np.unique(rows_d).tolist():
                sel = np.flatnonzero((rows_d == d) & cand[d, rows_j])
                if sel.size:
                    order = np.argsort(-m["score"][d, rows_j[sel]], kind="stable")
                    rank[sel[order]] = np.arange(1, sel.size + 1)
            out.emit_table("platform", "matches", pd.DataFrame({
                "demand_id": dem["demand_id"][rows_d], "product_id": [self.lend[j].product_id for j in rows_j.tolist()],
                "institution_id": [self.inst_ids[self.p_inst[j]] for j in rows_j.tolist()],
                "eligible": m["elig"][rows_d, rows_j], "failed_leaves": np.array(failed, dtype=object),
                "compatible": m["compat"][rows_d, rows_j], "incompatible": np.array(incompat, dtype=object),
                "collateral_to_confirm": m["to_confirm"][rows_d, rows_j],
                "limit": np.round(m["limit"][rows_d, rows_j], 2), "p_approve": m["p_approve"][rows_d, rows_j],
                "amount_fit": np.round(m["amount_fit"][rows_d, rows_j], 4),
                "rate_fit": np.round(m["rate_fit"][rows_d, rows_j], 4),
                "speed_fit": m["speed_fit"][rows_d, rows_j], "policy_fit": m["policy_fit"][rows_d, rows_j],
                "score": np.round(m["score"][rows_d, rows_j], 4), "rank": pd.array(rank, dtype="Int64"),
                "enhancement": ~m["considered"][rows_d, rows_j],
            }))
        if push_rows:
            pu = pd.DataFrame(push_rows, columns=["demand_id", "uscc", "institution_id", "product_id", "push_ts",
                                                  "response", "response_ts", "push_kind"])
            pu.insert(0, "push_id", hex_ids(self.rng, "PU_", len(pu)))
            pu["push_ts"] = pu["push_ts"].astype("datetime64[s]")
            pu["response_ts"] = pu["response_ts"].astype("datetime64[s]")
            out.emit_table("platform", "pushes", pu)
        if dec_rows:
            de = pd.DataFrame(dec_rows, columns=["demand_id", "uscc", "institution_id", "product_id", "decision",
                                                 "reason_code", "approved_amount", "rate", "term_months",
                                                 "guarantee_mode", "decision_ts", "accepted_by_enterprise",
                                                 "product_category"])
            de.insert(0, "decision_id", hex_ids(self.rng, "DC_", len(de)))
            de["approved_amount"] = de["approved_amount"].astype(np.float64)
            de["rate"] = de["rate"].astype(np.float64)
            de["term_months"] = pd.array(de["term_months"], dtype="Int64")
            de["decision_ts"] = de["decision_ts"].astype("datetime64[s]")
            de["accepted_by_enterprise"] = de["accepted_by_enterprise"].astype(bool)
            out.emit_table("platform", "decisions", de)
        del nd

    # ---------------------------------------------------------------------------------------------
    def _book_loans(self, ctx: MonthContext, rows: Mapping[str, list], out: Emitter) -> None:
        k = len(rows.get("slot", []))
        if k == 0:
            return
        disb = np.array(rows["disb_date"], dtype="datetime64[D]")
        term = np.array(rows["term"], dtype=np.int64)
        mat = self._maturity(disb, term)
        ids = hex_ids(self.rng, "L_", k)
        slots = np.array(rows["slot"], dtype=np.int64)
        self.loan_ever[slots] = True
        self.loans.add({
            "loan_id": ids, "demand_id": np.array(rows["demand_id"], dtype=object), "slot": slots,
            "inst": np.array(rows["inst"], dtype=object), "product_id": np.array(rows["product_id"], dtype=object),
            "category": np.array(rows["category"], dtype=object), "amount": np.array(rows["amount"]),
            "rate": np.array(rows["rate"]), "term": term, "start_month": date_to_month(disb),
            "maturity_month": date_to_month(mat), "disb_date": disb, "maturity_date": mat,
            "lease": np.array(rows["lease"], dtype=bool), "active": np.ones(k, dtype=bool),
            "day_offset": self.rng.integers(1, 31, k), "credit": np.array(rows["credit"], dtype=bool),
            "ptype": np.array(rows["ptype"], dtype=object),
        })
        # post-loan monitoring consent, part of the loan contract (products §6)
        self._new_consents(ctx, slots, disb, out, purpose="post_loan_monitoring", expires=mat,
                           recipients=[[i] for i in rows["inst"]])
        out.emit_table("platform", "loans", pd.DataFrame({
            "loan_id": ids, "demand_id": np.array(rows["demand_id"], dtype=object),
            "institution_id": np.array(rows["inst"], dtype=object),
            "product_id": np.array(rows["product_id"], dtype=object), "uscc": ctx.ent.uscc[slots],
            "disbursement_date": disb.astype("datetime64[s]"), "amount": np.round(np.array(rows["amount"]), 2),
            "rate": np.array(rows["rate"]), "term_months": term, "maturity_date": mat.astype("datetime64[s]"),
            "repayment_method": np.array(rows["method"], dtype=object),
            "product_type": np.array(rows["ptype"], dtype=object), "is_renewal": np.zeros(k, dtype=bool),
            "renewal_of": np.full(k, None, dtype=object),
        }))

    @staticmethod
    def _maturity(disb: np.ndarray, term: np.ndarray) -> np.ndarray:
        m = disb.astype("datetime64[M]") + term.astype("timedelta64[M]")
        day = (disb - disb.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
        last = (m + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
        return np.minimum(m.astype("datetime64[D]") + day.astype("timedelta64[D]"), last)

    def _after_outcomes(self, ctx: MonthContext, dem: Mapping[str, np.ndarray], status: np.ndarray,
                        prof: Mapping[str, np.ndarray], m: Mapping) -> None:
        """Retries after a rejection or an expired demand; rejected applicants' outcomes for truth/."""
        t, rng, dp = ctx.t, self.rng, self.p.demands
        failed = np.isin(status, ["rejected", "expired"])
        slots = dem["slot"]
        retry = failed & (rng.random(len(slots)) < dp.retry_prob)
        self.retry_month[slots[retry]] = t + rng.integers(dp.retry_months[0], dp.retry_months[1] + 1, retry.sum())
        rej = np.flatnonzero(failed | (status == "closed"))
        if rej.size:
            s = slots[rej]
            self.truth_queue.append((t + self.p.truth.rejected_outcome_months, {
                "demand_id": dem["demand_id"][rej], "slot": s, "submit_date": dem["submit_date"][rej],
                "final_status": status[rej], "platform_pd": m["attrs"]["pd_12m"][rej],
                "credit_grade": m["attrs"]["credit_grade"][rej], "h_at_submit": ctx.h[s].copy(),
                "mu_at_submit": ctx.mu[s].copy(), "performing_at_submit": ctx.latent.performing[s].copy(),
                "submit_month": np.full(rej.size, t),
            }))

    def _flush_truth(self, ctx: MonthContext, out: Emitter) -> None:
        t = ctx.t
        last = t >= ctx.params.t_end
        keep = []
        for due, rows in self.truth_queue:
            if due <= t or last:
                s = rows["slot"]
                ld = ctx.latent.last_default[s]
                new_default = ld > rows["submit_month"]
                horizon = np.minimum(t, rows["submit_month"] + self.p.truth.rejected_outcome_months)
                within = new_default & (ld <= horizon)
                out.emit_table("truth", "rejected_applicants", pd.DataFrame({
                    "demand_id": rows["demand_id"], "uscc": ctx.ent.uscc[s],
                    "submit_date": rows["submit_date"].astype("datetime64[s]"), "final_status": rows["final_status"],
                    "platform_pd": rows["platform_pd"], "credit_grade": rows["credit_grade"],
                    "h_at_submit": rows["h_at_submit"], "mu_at_submit": rows["mu_at_submit"],
                    "performing_at_submit": rows["performing_at_submit"],
                    "default_month": np.where(within, [month_label(int(x)) for x in ld], None).astype(object),
                    "default_within_horizon": within, "horizon_months": horizon - rows["submit_month"],
                }))
            else:
                keep.append((due, rows))
        self.truth_queue = keep

    # =============================================================================================
    # Loans and monthly performance (§9.5)
    def _loan_month(self, ctx: MonthContext, prof: Mapping[str, np.ndarray], out: Emitter) -> np.ndarray:
        t, rng, lp = ctx.t, self.rng, self.p.loans
        e1 = np.zeros(self.n, dtype=bool)
        if not len(self.loans):
            return e1
        c = self.loans.c
        idx = np.flatnonzero(c["active"] & (c["start_month"] <= t))
        if idx.size == 0:
            return e1
        slot = c["slot"][idx]
        lat = ctx.latent
        perf = lat.performing[slot]
        alive = lat.alive[slot]
        in_window = self.deferral_window[0] <= t <= self.deferral_window[1]
        clock = c["clock"][idx]
        deferred_until = c["deferred_until"][idx]
        # new defaults among current loans: DPD clock starts now, or 6 months later if deferred
        new_def = (clock < 0) & ~perf
        if new_def.any():
            defer = new_def & in_window & (rng.random(idx.size) < lp.deferral_prob)
            clock = np.where(new_def, t, clock)
            clock = np.where(defer, t + lp.deferral_months, clock)
            # a policy deferral of a stressed borrower ends at default unless the default itself is deferred
            deferred_until = np.where(new_def & ~defer, np.minimum(deferred_until, t), deferred_until)
            deferred_until = np.where(defer, t + lp.deferral_months, deferred_until)
        # policy deferral for stressed but performing borrowers (no DPD)
        if in_window:
            sd = ((clock < 0) & perf & (deferred_until < t) & ~c["stress_deferred"][idx]
                  & (prof["stress"][slot] > lp.stressed_deferral_threshold)
                  & (rng.random(idx.size) < lp.stressed_deferral_prob))
            deferred_until = np.where(sd, t + lp.deferral_months, deferred_until)
            c["stress_deferred"][idx[sd]] = True
        c["clock"][idx] = clock
        c["deferred_until"][idx] = deferred_until
        deferral = deferred_until > t
        overdue = (clock >= 0) & (t >= clock)
        dpd = np.where(overdue, 30 * (t - clock) + c["day_offset"][idx], 0)
        bucket = np.select([dpd == 0, dpd <= 30, dpd <= 60, dpd <= 90], ["current", "1_30", "31_60", "61_90"],
                           "90_plus").astype(object)
        risk = np.select([(dpd == 0) & ~deferral, dpd == 0, dpd <= 90, dpd <= 180, dpd <= 360],
                         ["normal", "special_mention", "special_mention", "substandard", "doubtful"], "loss").astype(object)
        first90 = (dpd > 90) & ~c["reached90"][idx]
        c["reached90"][idx[first90]] = True
        e1[slot[first90]] = True
        self.e1_month[slot[first90]] = t
        # outstanding balance
        k = t - c["start_month"][idx]
        amount = c["amount"][idx]
        outstanding = np.where(c["lease"][idx], amount * np.clip(1 - k / np.maximum(c["term"][idx], 1), 0, 1), amount)
        # closures
        closed = np.full(idx.size, None, dtype=object)
        restructured = (clock >= 0) & perf & lat.cured_now[slot]
        written = overdue & ((t - clock) >= 3 + lp.writeoff_months_after_90)
        written |= (clock >= 0) & ~alive
        repaid_exit = (clock < 0) & ~alive
        mature = (t >= c["maturity_month"][idx]) & (clock < 0) & ~deferral & alive
        # deferred loans at maturity are extended until the deferral ends
        ext = (t == c["maturity_month"][idx]) & deferral
        c["maturity_month"][idx[ext]] = deferred_until[ext]
        renew = mature & (prof["signal_level"][slot] <= lp.renew_max_signal) & (rng.random(idx.size) < lp.renew_prob)
        closed[mature & ~renew] = "repaid"
        closed[renew] = "renewed"
        closed[repaid_exit] = "repaid"
        closed[written] = "written_off"
        closed[restructured] = "restructured"
        is_closed = np.array([x is not None for x in closed], dtype=bool)
        out_bal = np.where(np.isin(closed, ["repaid", "renewed"]), 0.0, outstanding)
        c["active"][idx[is_closed]] = False
        report = month_end(t) + rng.integers(lp.report_lag_days[0], lp.report_lag_days[1] + 1,
                                             idx.size).astype("timedelta64[D]")
        out.emit_table("platform", "loan_performance", pd.DataFrame({
            "loan_id": c["loan_id"][idx], "uscc": ctx.ent.uscc[slot], "institution_id": c["inst"][idx],
            "period_month": np.full(idx.size, month_start(t), dtype="datetime64[s]"),
            "outstanding": np.round(out_bal, 2), "dpd": dpd.astype(np.int64), "dpd_bucket": bucket,
            "risk_class": risk, "deferral_flag": deferral, "closed_reason": closed,
            "report_date": report.astype("datetime64[s]"),
        }))
        self._renew(ctx, idx[renew], out)
        self._close_events(ctx, idx[is_closed & ~renew], closed[is_closed & ~renew], out)
        return e1

    def _renew(self, ctx: MonthContext, old: np.ndarray, out: Emitter) -> None:
        """无还本续贷: a new loan replaces the matured one (same institution, renewal product)."""
        if old.size == 0:
            return
        c, lp, rng, t = self.loans.c, self.p.loans, self.rng, ctx.t
        k = old.size
        disb = np.maximum(c["maturity_date"][old], month_start(t))
        term = np.full(k, lp.renewal_term_months, dtype=np.int64)
        mat = self._maturity(disb, term)
        ids = hex_ids(rng, "L_", k)
        rate = np.round(c["rate"][old] + rng.uniform(-lp.renewal_rate_shift, lp.renewal_rate_shift, k), 2)
        has_t14 = np.array([i in self.renewal_product for i in c["inst"][old]], dtype=bool)
        product = np.where(has_t14, np.array([self.renewal_product.get(i, "") for i in c["inst"][old]], dtype=object),
                           c["product_id"][old]).astype(object)
        ptype = np.where(has_t14, "credit_loan", c["ptype"][old]).astype(object)
        self.loans.add({
            "loan_id": ids, "demand_id": c["demand_id"][old], "slot": c["slot"][old], "inst": c["inst"][old],
            "product_id": product, "category": c["category"][old], "amount": c["amount"][old], "rate": rate,
            "term": term, "start_month": np.full(k, t + 1), "maturity_month": date_to_month(mat), "disb_date": disb,
            "maturity_date": mat, "lease": c["lease"][old], "active": np.ones(k, dtype=bool),
            "day_offset": rng.integers(1, 31, k), "is_renewal": np.ones(k, dtype=bool), "credit": c["credit"][old],
            "ptype": ptype,
        })
        out.emit_table("platform", "loans", pd.DataFrame({
            "loan_id": ids, "demand_id": c["demand_id"][old], "institution_id": c["inst"][old],
            "product_id": product, "uscc": ctx.ent.uscc[c["slot"][old]],
            "disbursement_date": disb.astype("datetime64[s]"), "amount": np.round(c["amount"][old], 2), "rate": rate,
            "term_months": term, "maturity_date": mat.astype("datetime64[s]"),
            "repayment_method": np.full(k, "interest_monthly_bullet", dtype=object),
            "product_type": ptype, "is_renewal": np.ones(k, dtype=bool),
            "renewal_of": c["loan_id"][old],
        }))

    def _close_events(self, ctx: MonthContext, idx: np.ndarray, reason: np.ndarray, out: Emitter) -> None:
        if idx.size == 0:
            return
        c = self.loans.c
        ts = _ts(month_end(ctx.t), 0.5)
        out.emit_table("platform", "demand_events", pd.DataFrame({
            "demand_id": c["demand_id"][idx], "uscc": ctx.ent.uscc[c["slot"][idx]],
            "event_ts": np.full(idx.size, ts, dtype="datetime64[s]"), "status": np.full(idx.size, "closed", dtype=object),
            "actor": c["inst"][idx], "note": np.array([f"loan {r}" for r in reason], dtype=object),
        }))

    # =============================================================================================
    def _emit_reference_tables(self, ctx: MonthContext, out: Emitter) -> None:
        cfg = self.cfg
        out.emit_table("platform", "institutions", pd.DataFrame({
            "institution_id": [i.id for i in cfg.institutions], "name": [i.name for i in cfg.institutions],
            "institution_type": [i.type for i in cfg.institutions],
            "districts_served": [list(i.districts) if i.districts != "all" else list(
                ("330902", "330903", "330921", "330922")) for i in cfg.institutions],
            "weekly_push_capacity": np.array([i.weekly_push_capacity for i in cfg.institutions], dtype=np.int64),
            "soft_info_strength": [i.soft_info_strength for i in cfg.institutions],
            "active_from": np.array([i.active_from for i in cfg.institutions], dtype="datetime64[s]"),
            "active_to": np.array([i.active_to or "NaT" for i in cfg.institutions], dtype="datetime64[s]"),
        }))
        ps = self.products
        out.emit_table("platform", "products", pd.DataFrame({
            "product_id": [p.product_id for p in ps], "institution_id": [p.institution_id for p in ps],
            "template_id": [p.template_id for p in ps], "product_name": [p.product_name for p in ps],
            "product_type": [p.product_type for p in ps],
            "collateral_accepted": [list(p.collateral_accepted) for p in ps],
            "collateral_required": [p.collateral_required for p in ps],
            "amount_min": [p.amount_min for p in ps], "amount_max": [p.amount_max for p in ps],
            "limit_rule": [p.limit_rule for p in ps],
            "term_min_months": np.array([p.term_min_months for p in ps], dtype=np.int64),
            "term_max_months": np.array([p.term_max_months for p in ps], dtype=np.int64),
            "revolving": [p.revolving for p in ps], "pricing": [p.pricing for p in ps],
            "rate_min": [p.rate_min for p in ps], "rate_max": [p.rate_max for p in ps],
            "spread_min_bp": np.array([np.nan if p.spread_min_bp is None else p.spread_min_bp for p in ps]),
            "spread_max_bp": np.array([np.nan if p.spread_max_bp is None else p.spread_max_bp for p in ps]),
            "fee_rate": [p.fee_rate for p in ps], "repayment_methods": [list(p.repayment_methods) for p in ps],
            "max_ltv": [json.dumps(p.max_ltv) for p in ps],
            "eligibility": [json.dumps(rule_to_dict(p.eligibility), ensure_ascii=False) for p in ps],
            "target_sectors": [list(p.target_sectors) for p in ps],
            "target_districts": [list(p.target_districts) for p in ps],
            "policy_tags": [list(p.policy_tags) for p in ps],
            "decision_sla_days": np.array([p.decision_sla_days for p in ps], dtype=np.int64),
            "online_application": [p.online_application for p in ps], "status": ["active"] * len(ps),
            "effective_from": np.array([p.effective_from for p in ps], dtype="datetime64[s]"),
            "effective_to": np.full(len(ps), np.datetime64("NaT"), dtype="datetime64[s]"),
        }))


# ==================================================================================================
# Seed checkpoint statistics (products_and_demands.md §8)
SEED_TARGETS = (
    # name, target at scale 1, tolerance, kind ('rel' relative, 'abs' absolute), scaled by scale
    ("registered enterprises", 2794.0, 0.05, "rel", True),
    ("financing requests", 2644.0, 0.05, "rel", True),
    ("requested amount (亿元)", 81.24, 0.10, "rel", True),
    ("enterprises granted credit", 1801.0, 0.05, "rel", True),
    ("granted amount (亿元)", 70.3, 0.10, "rel", True),
    ("credit-loan share of requests (count)", 0.37, 0.03, "abs", False),
    ("credit-loan requested amount (亿元)", 7.29, 0.15, "rel", True),
    ("credit-loan granted amount (亿元)", 6.29, 0.15, "rel", True),
    ("credit-loan average rate (%)", 5.14, 0.15, "abs", False),
)


def _frame(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame:
    f = tables.get(name)
    return f if f is not None else pd.DataFrame()


def seed_statistics(tables: Mapping[str, pd.DataFrame], as_of: str = "2020-06", scale: float = 1.0) -> list[dict]:
    """Cumulative platform figures up to the end of month `as_of` against products §8 (scaled).

    Returns one dict per figure: name, target, value, tolerance, passed, and the display strings
    expected / got used by the calibration report. `tables` maps table names to frames
    (consents, demands, decisions); requests count every submitted demand; grants are the approvals
    the enterprise accepted (renewals excluded).
    """
    end = pd.Timestamp(month_end(month_index(as_of))[()]) + pd.Timedelta(days=1)
    consents = _frame(tables, "consents")
    demands = _frame(tables, "demands")
    decisions = _frame(tables, "decisions")
    got: dict[str, float] = {}
    if len(consents):
        c = consents[pd.to_datetime(consents["granted_at"]) < end]
        got["registered enterprises"] = float(c.loc[c["purpose"] == "loan_application", "uscc"].nunique())
    if len(demands):
        dm = demands[pd.to_datetime(demands["submit_date"]) < end]
        credit = dm["product_category"] == "credit"
        got["financing requests"] = float(len(dm))
        got["requested amount (亿元)"] = float(dm["amount_requested"].sum()) / 1e4
        got["credit-loan share of requests (count)"] = float(credit.mean()) if len(dm) else float("nan")
        got["credit-loan requested amount (亿元)"] = float(dm.loc[credit, "amount_requested"].sum()) / 1e4
        got["demand-level approval"] = float((dm["status"] == "disbursed").mean()) if len(dm) else float("nan")
    if len(decisions):
        dc = decisions[(pd.to_datetime(decisions["decision_ts"]) < end) & decisions["accepted_by_enterprise"].astype(bool)]
        got["enterprises granted credit"] = float(dc["uscc"].nunique())
        got["granted amount (亿元)"] = float(dc["approved_amount"].sum()) / 1e4
        cr = dc[dc["product_category"] == "credit"]
        got["credit-loan granted amount (亿元)"] = float(cr["approved_amount"].sum()) / 1e4
        got["credit-loan average rate (%)"] = float(cr["rate"].mean()) if len(cr) else float("nan")
    rows = []
    for name, target, tol, kind, scaled in SEED_TARGETS:
        tgt = target * scale if scaled else target
        val = got.get(name, float("nan"))
        if kind == "rel":
            ok = bool(np.isfinite(val) and abs(val - tgt) <= tol * tgt)
            expected = f"{tgt:,.2f} ±{100 * tol:.0f}%"
        else:
            ok = bool(np.isfinite(val) and abs(val - tgt) <= tol)
            expected = f"{tgt:.2f} ±{tol:.2f}"
        rows.append({"name": name, "target": tgt, "value": val, "tolerance": tol, "kind": kind, "passed": ok,
                     "expected": expected, "got": f"{val:,.3f}"})
    appr = got.get("demand-level approval", float("nan"))
    rows.append({"name": "demand-level approval", "target": 0.76, "value": appr, "tolerance": float("nan"),
                 "kind": "info", "passed": None, "expected": "~76%", "got": f"{100 * appr:.1f}%"})
    return rows
