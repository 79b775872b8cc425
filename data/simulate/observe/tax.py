"""Tax bureau data (simulation.md §7.4): S09 `tax_profile`, S10 `tax_monthly`, S11 `tax_announcements`.

Monthly sales follow the firm's size, season, trend and latent volume; declarations, VAT (per regime and
period), CIT prepayments and late fees derive from them. Dormant defaulters stop declaring a few months
after default (rows continue with declared_on_time = false and null amounts) and may become non-normal
taxpayers. Arrears arise by a stress hazard plus a post-default cascade and are announced at the next
quarter start; major violations come from a small hazard and from exposed false-invoicing rings of shells.
The annual credit grade for year y is published on 30 April y+1; the score intercept is solved at the
first grade year so that grade A holds the target share. Small firms may be idle for whole calendar years
(zero declarations, no revenue): with the newly registered they make up grade M.

Event-list removals (arrears paid, violation list expiry) are published as a second row with the same key
and `removal_date` set, available at the removal date (the removal is unknown at publication time).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from pydantic import Field

from data.simulate.calendar import add_days, add_months, month_index, month_start, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.draws import choice_by_weights, lognormal
from data.simulate.emit import Emitter
from data.simulate.latent import DEREGISTERED, sigmoid
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

STRESS_CAP = 4.0           # st beyond this is outside the calibrated range of the latent model (caps runaway h)
TAX_TYPES = ("vat", "cit", "iit_withholding", "stamp", "property_land_use", "other")
VIOLATION_TYPES = ("tax_evasion", "evading_recovery", "export_rebate_fraud", "false_invoicing", "tax_resistance",
                   "other")
RATE_CLASSES = ("goods", "transport_construction", "services")
NAT = np.datetime64("NaT", "D")


# --- parameters ----------------------------------------------------------------------------------
class ProfileParams(FrozenModel):
    general_sales_threshold: float
    general_sectors: tuple[str, ...]
    general_prob: float
    registration_lag_days: tuple[int, int]
    abnormal_undeclared_months: int
    abnormal_flag_prob: float
    export_class1_mu_quantile: float
    export_class4_h: float
    export_class2_prob: float


class GradeParams(FrozenModel):
    score_intercept: float
    calibrate_every_year: bool = False
    calibrate: bool
    target_a_share: float
    h_loading: float
    noise_sd: float
    late_penalty: float
    arrears_penalty: float
    tax_penalty: float
    a_min: float
    b_min: float
    c_min: float
    m_min: float
    publish_month: int = Field(ge=1, le=12)
    publish_day: int = Field(ge=1, le=31)
    penalty_proxy_hz: tuple[float, float]


class SalesParams(FrozenModel):
    base_month: str
    young_bonus_months: int
    noise_logsd: float
    oil_sector: str
    oil_active_prob: float
    shell_active_prob: float
    abandon_lag_months: tuple[int, int]
    idle_entry_annual: float
    idle_persist_annual: float
    received_share: dict[str, float]
    received_share_default: float
    received_logsd: float
    vat_sales_logsd: float


class InvoiceParams(FrozenModel):
    red_letter_beta: tuple[float, float]
    red_letter_spike: tuple[float, float]
    red_letter_spike_hz: tuple[float, float]
    void_beta: tuple[float, float]
    top5_mean: dict[str, float]
    top5_retail_mean: float
    top5_retail_prefix: str
    top5_concentration: float
    top5_stress: float
    top5_stress_cap: float
    top5_noise_sd: float


class GeneralRate(FrozenModel):
    from_: str = Field(alias="from")
    goods: float
    transport_construction: float
    services: float


class Threshold(FrozenModel):
    from_: str = Field(alias="from")
    value: float


class PeriodRate(FrozenModel):
    from_: str = Field(alias="from")
    to: str
    rate: float


class Period(FrozenModel):
    from_: str = Field(alias="from")
    to: str


class VatParams(FrozenModel):
    rate_class: dict[str, str]
    general_rates: tuple[GeneralRate, ...]
    small_thresholds: tuple[Threshold, ...]
    small_rates: tuple[PeriodRate, ...]
    small_rate_default: float
    small_exempt: tuple[Period, ...]


class PaymentParams(FrozenModel):
    surcharge: float
    other_tax_rate: float
    cit_rate: float
    cit_base_share: float
    margin: dict[str, float]
    margin_h_loading: float
    margin_mu_loading: float
    late_declaration_hz: tuple[float, float]
    late_payment_hz: tuple[float, float]
    late_fee_daily: float
    late_days: tuple[int, int]


class ArrearsParams(FrozenModel):
    hz: tuple[float, float]
    cascade_prob: float
    cascade_lag_gamma: tuple[float, float]
    balance: tuple[float, float]
    balance_size_ref: float
    balance_size_exp: float
    new_share: tuple[float, float]
    paid_logit: float
    paid_within_days: int
    tax_type: dict[str, float]


class ViolationParams(FrozenModel):
    hz: tuple[float, float]
    type: dict[str, float]
    amount: tuple[float, float]
    publish_lag_months: tuple[int, int]
    list_months: int


class RingParams(FrozenModel):
    exposures_per_year: float
    scale_enterprises: float


class TaxParams(FrozenModel):
    profile: ProfileParams
    grade: GradeParams
    sales: SalesParams
    invoices: InvoiceParams
    vat: VatParams
    payments: PaymentParams
    arrears: ArrearsParams
    violations: ViolationParams
    rings: RingParams


# --- helpers -------------------------------------------------------------------------------------
def hz(alpha: float, beta: float, st: np.ndarray) -> np.ndarray:
    """Hz(alpha, beta): monthly event probability sigma(alpha + beta st)."""
    return sigmoid(alpha + beta * np.minimum(st, STRESS_CAP))


def first_working_day(t: int) -> np.datetime64:
    """First working day of month t (weekends, New Year's Day and the National Day week skipped)."""
    d = month_start(t)[()]
    year = t // 12
    holidays = [np.datetime64(f"{year}-01-01")] + [np.datetime64(f"{year}-10-0{k}") for k in range(1, 8)]
    return np.busday_offset(d, 0, roll="forward", holidays=holidays).astype("datetime64[D]")


def general_vat_rates(vat: VatParams, t: int) -> np.ndarray:
    """General-taxpayer VAT rates (goods, transport/construction, services) in force in month t."""
    row = [r for r in vat.general_rates if month_index(r.from_) <= t][-1]
    return np.array([row.goods, row.transport_construction, row.services])


def small_scale_rule(vat: VatParams, t: int) -> tuple[float, float, bool]:
    """(rate, threshold at or below which the quarter is exempt, full exemption) for a quarter ending in t."""
    rate = vat.small_rate_default
    for r in vat.small_rates:
        if month_index(r.from_) <= t <= month_index(r.to):
            rate = r.rate
    threshold = [x for x in vat.small_thresholds if month_index(x.from_) <= t][-1].value
    exempt = any(month_index(e.from_) <= t <= month_index(e.to) for e in vat.small_exempt)
    return rate, threshold, exempt






def _money(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64), 2)


def _hazard_cause(u: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """'background' when the draw would have fired at st = 0, else 'stress' (truth attribution)."""
    return np.where(u < p0, "background", "stress").astype(object)


# --- the module ----------------------------------------------------------------------------------
class TaxModule:
    """S09 tax_profile, S10 tax_monthly, S11 tax_announcements; owns the tax keys of the board."""

    name = "tax"
    sub_items = ("tax_profile", "tax_monthly", "tax_announcements")

    def __init__(self, params: TaxParams | None = None) -> None:
        self._given_params = params

    # ---------------------------------------------------------------------------------------------
    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Load parameters and draw each slot's static tax attributes."""
        self.rng = rng
        p = self.p = self._given_params or load_module_params(TaxParams, "tax")
        ent = ctx.ent
        n = ent.n_max
        sector_name = np.array(ctx.params.sector_names, dtype=object)[ent.sector]
        self.t_first = ctx.t
        self.first_grade_year = ctx.year if ctx.moy == 1 else ctx.year + 1
        self.t_base = month_index(p.sales.base_month)

        # taxpayer type: general w.p. 0.8 when large or in a manufacturing/oil sector
        pr = p.profile
        cand = (ent.sales >= pr.general_sales_threshold) | np.isin(sector_name, pr.general_sectors)
        self.general = cand & (rng.random(n) < pr.general_prob)
        lo, hi = pr.registration_lag_days
        self.reg_lag = rng.integers(lo, hi + 1, n)
        self.exporter = ent.is_customs.copy()
        self.export_u = rng.random(n)
        self.scale_medium_plus = ~((ent.employees < 100) & (ent.sales < 5000))

        # activity: oil traders trade in 70 % of months, shells are dormant in 30 % of months
        sp = p.sales
        self.active_prob = np.where(sector_name == sp.oil_sector, sp.oil_active_prob, 1.0)
        self.active_prob = np.where(ent.shell, sp.shell_active_prob, self.active_prob)
        self.received_share = np.array([sp.received_share.get(s, sp.received_share_default) for s in sector_name])
        # idle firm-years (no operating revenue all year, zero declarations): micro/small non-shells only
        self.idle_eligible = ~self.scale_medium_plus & ~ent.shell
        self.idle = np.zeros(n, dtype=bool)

        # customer concentration c_i ~ Beta with the sector mean (retail codes lower)
        ip = p.invoices
        mean = np.array([ip.top5_mean[s] for s in sector_name])
        retail = np.array([str(c).startswith(ip.top5_retail_prefix) for c in ent.industry_code])
        mean = np.where(retail & (sector_name == "wholesale_retail_other"), ip.top5_retail_mean, mean)
        k = ip.top5_concentration
        self.top5_c = rng.beta(mean * k, (1 - mean) * k)

        vp = p.vat
        self.rate_class = np.array([RATE_CLASSES.index(vp.rate_class[s]) for s in sector_name], dtype=np.int64)
        self.margin = np.array([p.payments.margin[s] for s in sector_name])

        # dynamic state
        self.abandon_month = np.full(n, -1, dtype=np.int64)
        self.nonnormal = np.zeros(n, dtype=bool)
        self.nonnormal_cause = np.full(n, None, dtype=object)
        self.flag_drawn = np.zeros(n, dtype=bool)
        self.undeclared_run = np.zeros(n, dtype=np.int64)
        self.ring_exposed = np.zeros(n, dtype=bool)
        self.ring_exposed_now = np.zeros(n, dtype=bool)
        self.flag_changed = np.zeros(n, dtype=bool)
        self.flag_date = np.full(n, NAT)
        self.sales_now = np.zeros(n)
        self.declared_now = np.zeros(n, dtype=bool)
        self.tax_ytd = np.zeros(n)
        self.sales_last_year = np.zeros(n)
        # year accumulators (current year) and their copies for the year being graded
        self.acc = self._new_year_acc(n)
        self.last: dict[str, np.ndarray] | None = None
        # quarter accumulators: current quarter and the one before (CIT prepayments)
        self.q_sales = np.zeros(n)
        self.q_h = np.zeros(n)
        self.q_n = np.zeros(n)
        self.q_prev = (np.zeros(n), np.zeros(n), np.zeros(n))
        # arrears episode per slot: 0 none, 1 arisen (awaiting the quarterly announcement), 2 announced
        self.arr_state = np.zeros(n, dtype=np.int8)
        self.arr_pub_month = np.full(n, -1, dtype=np.int64)
        self.arr_cause = np.full(n, None, dtype=object)
        self.arr_paid_month = np.full(n, -1, dtype=np.int64)
        self.arr_removal = np.full(n, NAT)
        self.arr_row: dict[str, np.ndarray] = {
            "publish_date": np.full(n, NAT), "tax_type": np.full(n, None, dtype=object),
            "arrears_balance": np.full(n, np.nan), "new_arrears_amount": np.full(n, np.nan),
            "emitted": np.zeros(n, dtype=bool)}
        self.arrears_cascade: dict[int, list[np.ndarray]] = defaultdict(list)
        # violations: board window [from, to) and queues of publications / removal rows by month
        self.viol_from = np.full(n, -1, dtype=np.int64)
        self.viol_to = np.full(n, -1, dtype=np.int64)
        self.viol_queue: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        self.removals: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        # rings
        self.ring_id = ctx.net.ring_id
        rings = np.unique(self.ring_id[self.ring_id >= 0])
        self.rings = rings
        self.ring_done = np.zeros(rings.size, dtype=bool)
        self.ring_scale = ctx.params.enterprises / p.rings.scale_enterprises
        # profile (latest S09 row per slot)
        self.prof_year = np.full(n, -1, dtype=np.int64)
        self.prof_grade = np.full(n, None, dtype=object)
        self.prof_score = np.full(n, np.nan)
        self.prof_export = np.full(n, None, dtype=object)
        self.prof_valid_from = np.full(n, NAT)
        self.profile_dumped = False
        self.score_intercept = p.grade.score_intercept if not p.grade.calibrate else None
        self.grade_history: list[pd.DataFrame] = []   # (slot, grade_year, grade, score) for diagnostics
        self._lags: dict[str, tuple[int, int]] = {}
        self._uscc = ent.uscc

    @staticmethod
    def _new_year_acc(n: int) -> dict[str, np.ndarray]:
        return {"h_sum": np.zeros(n), "h_n": np.zeros(n), "n_late": np.zeros(n, dtype=np.int64),
                "sales": np.zeros(n), "nonnormal": np.zeros(n, dtype=bool), "arrears": np.zeros(n, dtype=bool),
                "violation": np.zeros(n, dtype=bool), "penalty_proxy": np.zeros(n, dtype=bool),
                "penalty": np.zeros(n, dtype=bool)}

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """One month: lifecycle bookkeeping, declarations, announcements, the annual grade, the board."""
        if not self._lags:
            self._lags = {s: out.catalog.sub_item(s).lag_days for s in self.sub_items}
        t = ctx.t
        self.st = ctx.stress
        self.flag_changed[:] = False
        self.ring_exposed_now = np.zeros(ctx.ent.n_max, dtype=bool)
        if ctx.moy == 1 and t > self.t_first:
            self._roll_year(ctx)
        if t == self.t_first or ctx.moy == 1:
            self._draw_idle(ctx)
        if ctx.moy in (1, 4, 7, 10):
            self.q_prev = (self.q_sales, self.q_h, self.q_n)
            n = ctx.ent.n_max
            self.q_sales, self.q_h, self.q_n = np.zeros(n), np.zeros(n), np.zeros(n)
        self._after_default(ctx)
        self._rings(ctx, out)
        self._declaration_status(ctx)
        self._monthly(ctx, out)
        self._arrears(ctx, out)
        self._violations(ctx, out)
        self._profile(ctx, out)
        self._board(ctx)

    # --- lifecycle -------------------------------------------------------------------------------
    def _roll_year(self, ctx: MonthContext) -> None:
        """January: close the previous calendar year (penalty flag from last month's board)."""
        acc = self.acc
        pen = ctx.board.get("penalties_12m")
        acc["penalty"] = (np.asarray(pen) > 0) if pen is not None else acc["penalty_proxy"]
        self.last = acc
        self.last_year = ctx.year - 1
        self.sales_last_year = acc["sales"].copy()
        self.acc = self._new_year_acc(ctx.ent.n_max)
        self.tax_ytd = np.zeros(ctx.ent.n_max)

    def _draw_idle(self, ctx: MonthContext) -> None:
        """Idle firm-years: a Markov chain over calendar years (stationary share at the first month)."""
        sp, n = self.p.sales, ctx.ent.n_max
        e, r = sp.idle_entry_annual, sp.idle_persist_annual
        prob = np.full(n, e / (1 - r + e)) if ctx.t == self.t_first else np.where(self.idle, r, e)
        born_before = ctx.ent.birth_month < ctx.t - (ctx.moy - 1)
        self.idle = (self.idle_eligible & ctx.alive & ctx.latent.performing & born_before
                     & (self.rng.random(n) < prob))

    def _after_default(self, ctx: MonthContext) -> None:
        """Schedule abandonment of dormant defaulters and the cascade tax-arrears records."""
        lat, rng, t = ctx.latent, self.rng, ctx.t
        idx = np.flatnonzero(lat.defaulted_now)
        if idx.size == 0:
            return
        lo, hi = self.p.sales.abandon_lag_months
        lag = rng.integers(lo, hi + 1, idx.size)
        dorm = lat.dormant[idx]
        self.abandon_month[idx[dorm]] = t + lag[dorm]
        ap = self.p.arrears
        hit = idx[rng.random(idx.size) < ap.cascade_prob]
        if hit.size:
            delay = np.round(rng.gamma(ap.cascade_lag_gamma[0], ap.cascade_lag_gamma[1], hit.size)).astype(np.int64)
            for m in np.unique(delay):
                self.arrears_cascade[t + int(m)].append(hit[delay == m])

    def _rings(self, ctx: MonthContext, out: Emitter) -> None:
        """Expose false-invoicing rings at random (~1.5 per year at scale 1)."""
        t, rng = ctx.t, self.rng
        k = rng.poisson(self.p.rings.exposures_per_year * self.ring_scale / 12)
        if k == 0 or self.rings.size == 0:
            return
        alive = ctx.alive
        live_rings = np.unique(self.ring_id[alive & (self.ring_id >= 0)])
        cand = self.rings[~self.ring_done & np.isin(self.rings, live_rings)]
        if cand.size == 0:
            return
        chosen = np.sort(rng.choice(cand, size=min(k, cand.size), replace=False))
        self.ring_done[np.isin(self.rings, chosen)] = True
        members = np.flatnonzero(alive & np.isin(self.ring_id, chosen))
        day = random_day_in_month(rng, t, members.size)
        self.ring_exposed[members] = True
        self.ring_exposed_now[members] = True
        new_flag = members[~self.nonnormal[members]]
        self.nonnormal[members] = True
        self.nonnormal_cause[members] = "ring"
        self.flag_changed[new_flag] = True
        self.flag_date[members] = day
        # one public announcement per ring, U{0..2} months after the exposure
        vp = self.p.violations
        ring_lag = {int(r): int(rng.integers(vp.publish_lag_months[0], vp.publish_lag_months[1] + 1))
                    for r in chosen}
        ring_day = {r: random_day_in_month(rng, t + lag, 1)[0] for r, lag in ring_lag.items()}
        lags = np.array([ring_lag[int(r)] for r in self.ring_id[members]], dtype=np.int64)
        pub = np.array([ring_day[int(r)] for r in self.ring_id[members]], dtype="datetime64[D]")
        amount = lognormal(rng, vp.amount[0], vp.amount[1], members.size)
        for m in np.unique(lags):
            sel = lags == m
            self._queue_violation(t + int(m), members[sel], pub[sel],
                                  np.full(sel.sum(), "false_invoicing", dtype=object), amount[sel],
                                  np.full(sel.sum(), "vat", dtype=object), np.full(sel.sum(), "ring", dtype=object))
        out.emit_table("truth", "ring_exposures", pd.DataFrame({
            "ring_id": self.ring_id[members].astype(np.int64), "month": np.full(members.size, t, dtype=np.int64),
            "slot": members.astype(np.int64), "uscc": ctx.ent.uscc[members],
            "exposure_date": day.astype("datetime64[D]")}))

    def _declaration_status(self, ctx: MonthContext) -> None:
        """Abandoned / non-normal firms stop declaring; >= 3 silent months and unreachable -> flag w.p. 0.6."""
        t, rng = ctx.t, self.rng
        alive = ctx.alive
        abandoned = ctx.latent.dormant & (self.abandon_month >= 0) & (t >= self.abandon_month)
        self.abandoned = abandoned & alive
        undeclared = alive & (abandoned | self.nonnormal)
        self.undeclared_run = np.where(undeclared, self.undeclared_run + 1, 0)
        unreachable = ctx.board.get("unreachable")
        reach_off = abandoned if unreachable is None else (abandoned | np.asarray(unreachable, dtype=bool))
        pr = self.p.profile
        cand = (alive & ~self.nonnormal & ~self.flag_drawn & reach_off
                & (self.undeclared_run >= pr.abnormal_undeclared_months))
        u = rng.random(ctx.ent.n_max)
        self.flag_drawn |= cand
        new = cand & (u < pr.abnormal_flag_prob)
        idx = np.flatnonzero(new)
        self.nonnormal[idx] = True
        self.nonnormal_cause[idx] = "cascade"
        self.flag_changed[idx] = True
        self.flag_date[idx] = random_day_in_month(rng, t, idx.size)
        self.undeclared = undeclared | (alive & self.nonnormal)
        self.acc["nonnormal"] |= alive & self.nonnormal

    # --- S10 monthly series ----------------------------------------------------------------------
    def _monthly(self, ctx: MonthContext, out: Emitter) -> None:
        """Sales, invoices, VAT by regime and period, other taxes, late fees, declaration flags."""
        p, rng, ent, t = self.p, self.rng, ctx.ent, ctx.t
        n = ent.n_max
        sp, ip, pp = p.sales, p.invoices, p.payments
        alive = ctx.alive
        declaring = alive & ~self.undeclared
        st = self.st
        h = ctx.h

        # Sales_i,t = S_i / 12 x season x exp(g_i years) x young x v x LN(1, 0.25) x activity
        years = (t - self.t_base) / 12
        age = np.clip(t - ent.birth_month, 0, sp.young_bonus_months)
        young = np.exp(ctx.params.firms.young_growth_bonus * (age - sp.young_bonus_months) / 12)
        base = ent.sales / 12 * ctx.season() * np.exp(ent.growth * years) * young * ctx.volume
        active = (rng.random(n) < self.active_prob) & ~self.idle
        noise = np.exp(sp.noise_logsd * rng.standard_normal(n))
        sales = _money(np.where(declaring & active, base * noise / self.active_prob, 0.0))
        received = _money(sales * self.received_share * np.exp(sp.received_logsd * rng.standard_normal(n)))
        vat_sales_noise = np.exp(sp.vat_sales_logsd * rng.standard_normal(n))

        # quarter accumulators (this month included) and year accumulators
        self.q_sales += sales
        self.q_h += np.where(alive, h, 0.0)
        self.q_n += alive
        quarter_end = ctx.moy % 3 == 0

        # VAT: general monthly on the value added; small-scale quarterly with thresholds and exemptions
        rates = general_vat_rates(p.vat, t)[self.rate_class]
        vat_general = np.maximum(0.0, (sales - received) * rates)
        small_rate, threshold, exempt = small_scale_rule(p.vat, t)
        q = _money(self.q_sales)          # the declared quarterly total decides the exemption
        vat_small = np.where((q <= threshold) | exempt, 0.0, q * small_rate) if quarter_end else np.zeros(n)
        vat_taxable = np.where(self.general, sales * vat_sales_noise, q if quarter_end else np.nan)
        vat_paid = _money(np.where(self.general, vat_general, vat_small))

        # CIT prepayment in Jan / Apr / Jul / Oct on the previous quarter's profit
        cit = np.zeros(n)
        if ctx.moy in (1, 4, 7, 10):
            qs, qh, qn = self.q_prev
            hq = np.where(qn > 0, qh / np.maximum(qn, 1), h)
            margin = self.margin + pp.margin_h_loading * (hq - ctx.mu) + pp.margin_mu_loading * ctx.mu
            profit = qs * margin
            cit = np.where(profit > 0, profit * pp.cit_rate * pp.cit_base_share, 0.0)
        total = _money(pp.surcharge * vat_paid + cit + pp.other_tax_rate * sales)

        # late payment fee and declaration timeliness
        late_pay = rng.random(n) < hz(*pp.late_payment_hz, st)
        days = rng.integers(pp.late_days[0], pp.late_days[1] + 1, n)
        late_fee = _money(np.where(late_pay, total * pp.late_fee_daily * days, 0.0))
        late_decl = rng.random(n) < hz(*pp.late_declaration_hz, st)
        declared_on_time = declaring & ~late_decl

        # invoice quality and customer concentration
        red = rng.beta(ip.red_letter_beta[0], ip.red_letter_beta[1], n)
        spike = rng.random(n) < hz(*ip.red_letter_spike_hz, st)
        red = np.where(spike, rng.uniform(ip.red_letter_spike[0], ip.red_letter_spike[1], n), red)
        void = rng.beta(ip.void_beta[0], ip.void_beta[1], n)
        top5 = np.clip(self.top5_c + ip.top5_stress * np.minimum(ip.top5_stress_cap, st)
                       + rng.normal(0.0, ip.top5_noise_sd, n), 0.0, 1.0)
        has_sales = sales > 0
        red = np.where(has_sales, red, 0.0)
        void = np.where(has_sales, void, 0.0)

        # state for the board and the grade
        self.sales_now = np.where(declaring, sales, 0.0)
        self.declared_now = declared_on_time
        self.tax_ytd += np.where(declaring, total, 0.0)
        acc = self.acc
        acc["h_sum"] += np.where(alive, h, 0.0)
        acc["h_n"] += alive
        acc["n_late"] += alive & ~declared_on_time
        acc["sales"] += self.sales_now
        acc["penalty_proxy"] |= alive & (rng.random(n) < hz(*p.grade.penalty_proxy_hz, st))

        if not ctx.emit_series:
            return
        idx = np.flatnonzero(alive)
        dec = declaring[idx]

        def amount(x: np.ndarray) -> np.ndarray:
            return np.where(dec, x[idx], np.nan)

        cols = {
            "uscc": ent.uscc[idx],
            "period_month": np.full(idx.size, ctx.first_day, dtype="datetime64[D]"),
            "vat_taxable_sales": amount(_money(vat_taxable)),
            "invoices_issued_amount": amount(sales),
            "invoices_received_amount": amount(received),
            "red_letter_invoice_ratio": amount(np.round(red, 4)),
            "void_invoice_ratio": amount(np.round(void, 4)),
            "top5_customer_share": amount(np.round(top5, 4)),
            "vat_paid": amount(vat_paid),
            "total_tax_paid": amount(total),
            "late_fee_amount": amount(late_fee),
            "declared_on_time": declared_on_time[idx],
            "zero_declaration": dec & (sales[idx] == 0),
        }
        lo, hi = self._lags["tax_monthly"]
        available = add_days(np.full(idx.size, ctx.last_day), rng.integers(lo, hi + 1, idx.size))
        cause = np.where(self.abandoned[idx], "cascade", "background").astype(object)
        cause[self.nonnormal[idx] & (self.nonnormal_cause[idx] == "ring")] = "ring"
        out.emit("tax_monthly", cols, ent=idx, available=available, cause=cause)

    # --- S11 announcements -----------------------------------------------------------------------
    def _arrears(self, ctx: MonthContext, out: Emitter) -> None:
        """Arrears arise (hazard + cascade), are announced at the next quarter start and later removed."""
        ap, rng, t, n = self.p.arrears, self.rng, ctx.t, ctx.ent.n_max
        alive = ctx.alive
        st = self.st
        u = rng.random(n)
        p = hz(ap.hz[0], ap.hz[1], st)
        p0 = hz(ap.hz[0], 0.0, st)
        free = alive & (self.arr_state == 0)
        hit = free & (u < p)
        cause = np.full(n, None, dtype=object)
        cause[hit] = _hazard_cause(u[hit], p0[hit])
        for slots in self.arrears_cascade.pop(t, []):
            s = slots[free[slots] & ~hit[slots]]
            hit[s] = True
            cause[s] = "cascade"
        idx = np.flatnonzero(hit)
        self.arr_state[idx] = 1
        self.arr_pub_month[idx] = (t // 3 + 1) * 3
        self.arr_cause[idx] = cause[idx]

        # announcement on the first working day of the quarter after the arrears arose
        due = np.flatnonzero((self.arr_state == 1) & (self.arr_pub_month == t))
        gone = due[ctx.latent.status[due] == DEREGISTERED]
        self.arr_state[gone] = 0
        due = due[ctx.latent.status[due] != DEREGISTERED]
        if due.size:
            k = due.size
            pub = np.full(k, first_working_day(t))
            balance = _money(lognormal(rng, ap.balance[0], ap.balance[1], k)
                             * (ctx.ent.sales[due] / ap.balance_size_ref) ** ap.balance_size_exp)
            new = _money(balance * rng.uniform(ap.new_share[0], ap.new_share[1], k))
            ttype = choice_by_weights(rng, ap.tax_type, k)
            paid = rng.random(k) < sigmoid(ap.paid_logit + ctx.h[due])
            removal = add_days(pub, rng.integers(1, ap.paid_within_days + 1, k))
            self.arr_state[due] = 2
            self.arr_paid_month[due] = np.where(paid, (removal.astype("datetime64[M]").astype(np.int64) + 1970 * 12),
                                                -1)
            self.arr_removal[due] = np.where(paid, removal, NAT)
            row = self.arr_row
            row["publish_date"][due] = pub
            row["tax_type"][due] = ttype
            row["arrears_balance"][due] = balance
            row["new_arrears_amount"][due] = new
            row["emitted"][due] = ctx.emit_events
            self.acc["arrears"][due] = True
            if ctx.emit_events:
                self._emit_arrears(out, due, np.full(k, NAT), self.arr_cause[due])

        # removals: paid within the window, or at deregistration
        paid_now = np.flatnonzero((self.arr_state == 2) & (self.arr_paid_month == t))
        dereg = np.flatnonzero((self.arr_state == 2) & (self.arr_paid_month < 0) & ctx.latent.status_changed_now
                               & (ctx.latent.status == DEREGISTERED))
        rm_dates = np.concatenate([self.arr_removal[paid_now], random_day_in_month(rng, t, dereg.size)])
        rm = np.concatenate([paid_now, dereg])
        self.arr_state[rm] = 0
        show = self.arr_row["emitted"][rm]
        if show.any() and ctx.emit_events:
            self._emit_arrears(out, rm[show], rm_dates[show], self.arr_cause[rm[show]])

    def _emit_arrears(self, out: Emitter, slots: np.ndarray, removal: np.ndarray, cause: np.ndarray) -> None:
        row, k = self.arr_row, slots.size
        cols = {
            "uscc": self._uscc[slots], "announcement_type": np.full(k, "arrears", dtype=object),
            "publish_date": row["publish_date"][slots], "tax_type": row["tax_type"][slots],
            "arrears_balance": row["arrears_balance"][slots],
            "new_arrears_amount": row["new_arrears_amount"][slots],
            "violation_type": np.full(k, None, dtype=object), "violation_amount": np.full(k, np.nan),
            "removal_date": removal.astype("datetime64[D]"),
        }
        anchor = np.where(np.isnat(removal), row["publish_date"][slots], removal)
        out.emit("tax_announcements", cols, ent=slots, available=self._lagged(anchor, "tax_announcements"),
                 cause=cause)

    def _queue_violation(self, month: int, slots: np.ndarray, publish: np.ndarray, vtype: np.ndarray,
                         amount: np.ndarray, tax_type: np.ndarray, cause: np.ndarray) -> None:
        self.viol_queue[month].append({"slots": slots, "publish_date": publish, "violation_type": vtype,
                                       "violation_amount": _money(amount), "tax_type": tax_type, "cause": cause})
        vp = self.p.violations
        active = self.viol_to[slots] > month
        self.viol_from[slots] = np.where(active, np.minimum(self.viol_from[slots], month), month)
        self.viol_to[slots] = np.maximum(self.viol_to[slots], month + vp.list_months)

    def _violations(self, ctx: MonthContext, out: Emitter) -> None:
        """Background major violations (Hz(-11, 1)), publication of queued ones, list expiry after 36 months."""
        vp, rng, t, n = self.p.violations, self.rng, ctx.t, ctx.ent.n_max
        st = self.st
        u = rng.random(n)
        p = hz(vp.hz[0], vp.hz[1], st)
        p0 = hz(vp.hz[0], 0.0, st)
        hit = np.flatnonzero(ctx.alive & (self.viol_to <= t) & (u < p))
        if hit.size:
            k = hit.size
            shell_ring = self.ring_id[hit] >= 0
            vtype = np.where(shell_ring, "false_invoicing", choice_by_weights(rng, vp.type, k)).astype(object)
            ttype = choice_by_weights(rng, self.p.arrears.tax_type, k)
            ttype[np.isin(vtype, ("false_invoicing", "export_rebate_fraud"))] = "vat"
            amount = lognormal(rng, vp.amount[0], vp.amount[1], k)
            lag = rng.integers(vp.publish_lag_months[0], vp.publish_lag_months[1] + 1, k)
            cause = _hazard_cause(u[hit], p0[hit])
            pub = random_day_in_month(rng, t + lag)
            for m in np.unique(lag):
                sel = lag == m
                self._queue_violation(t + int(m), hit[sel], pub[sel], vtype[sel], amount[sel], ttype[sel],
                                      cause[sel])

        for item in self.viol_queue.pop(t, []):
            slots = item["slots"]
            k = slots.size
            pub = item["publish_date"]
            self.acc["violation"][slots] = True
            if not ctx.emit_events:
                continue
            cols = {
                "uscc": self._uscc[slots], "announcement_type": np.full(k, "major_violation", dtype=object),
                "publish_date": pub, "tax_type": item["tax_type"], "arrears_balance": np.full(k, np.nan),
                "new_arrears_amount": np.full(k, np.nan), "violation_type": item["violation_type"],
                "violation_amount": item["violation_amount"], "removal_date": np.full(k, NAT),
            }
            out.emit("tax_announcements", cols, ent=slots, available=self._lagged(pub, "tax_announcements"),
                     cause=item["cause"])
            removal = add_months(pub, vp.list_months)
            self.removals[t + vp.list_months].append(cols | {"removal_date": removal, "__ent": slots,
                                                              "__cause": item["cause"]})

        for cols in self.removals.pop(t, []):
            ent_, cause = cols.pop("__ent"), cols.pop("__cause")
            out.emit("tax_announcements", cols, ent=ent_, available=self._lagged(cols["removal_date"],
                                                                                  "tax_announcements"), cause=cause)

    def _lagged(self, dates: np.ndarray, sub_item: str) -> np.ndarray:
        lo, hi = self._lags[sub_item]
        dates = np.asarray(dates, dtype="datetime64[D]")
        if hi == 0:
            return dates
        return add_days(dates, self.rng.integers(lo, hi + 1, dates.size))

    # --- S09 profile and the annual grade --------------------------------------------------------
    def _profile(self, ctx: MonthContext, out: Emitter) -> None:
        """Registration rows, non-normal flag versions and the grade published on 30 April."""
        ent, t = ctx.ent, ctx.t
        alive = ctx.alive
        new = ctx.latent.born_now & alive if t > self.t_first else alive.copy()
        first_dump = ctx.emit_events and not self.profile_dumped
        if first_dump:
            self.profile_dumped = True
            old = np.flatnonzero(alive & ~new & (self.prof_year >= 0))
            self._emit_profile(ctx, out, old, self.prof_valid_from[old], np.full(old.size, ctx.first_day))

        # registration: a pending row for the first grade year the firm will receive
        idx = np.flatnonzero(new)
        if idx.size:
            est = ent.establish_date[idx]
            reg = add_days(est, self.reg_lag[idx])
            birth_year = est.astype("datetime64[Y]").astype(np.int64) + 1970
            self.prof_year[idx] = np.maximum(birth_year, self.first_grade_year)
            self.prof_grade[idx] = None
            self.prof_score[idx] = np.nan
            self.prof_export[idx] = self._export_class(ctx, idx)
            self.prof_valid_from[idx] = reg
            if ctx.emit_events:
                self._emit_profile(ctx, out, idx, reg, reg)

        # non-normal flag changes: a new version of the latest row
        flag = np.flatnonzero(self.flag_changed & alive & ~new & (self.prof_year >= 0))
        if flag.size:
            self.prof_valid_from[flag] = self.flag_date[flag]
            if ctx.emit_events:
                self._emit_profile(ctx, out, flag, self.flag_date[flag], self.flag_date[flag])

        g = self.p.grade
        if ctx.moy == g.publish_month and self.last is not None and self.last_year >= self.first_grade_year:
            self._publish_grades(ctx, out)

    def _publish_grades(self, ctx: MonthContext, out: Emitter) -> None:
        """Grade for year y = last year: D (violation / non-normal), M (new or no revenue), else by score."""
        g, ent, rng, last, y = self.p.grade, ctx.ent, self.rng, self.last, self.last_year
        est_year = ent.establish_date.astype("datetime64[Y]").astype(np.int64) + 1970
        graded = np.flatnonzero(ctx.alive & (est_year <= y))
        n_g = graded.size
        hbar = np.where(last["h_n"][graded] > 0, last["h_sum"][graded] / np.maximum(last["h_n"][graded], 1),
                        ctx.h[graded])
        base = (g.h_loading * hbar + rng.normal(0.0, g.noise_sd, n_g) - g.late_penalty * last["n_late"][graded]
                - g.arrears_penalty * last["arrears"][graded] - g.tax_penalty * last["penalty"][graded])
        direct_d = last["violation"][graded] | last["nonnormal"][graded]
        m_elig = (est_year[graded] == y) | (last["sales"][graded] <= 0)
        if self.score_intercept is None or (g.calibrate and g.calibrate_every_year):
            self.score_intercept = self._calibrate(base, direct_d, m_elig)
        score = np.round(np.clip(self.score_intercept + base, 0.0, 100.0), 1)
        grade = np.select([direct_d, m_elig & (score >= g.m_min), score >= g.a_min, score >= g.b_min,
                           score >= g.c_min], ["D", "M", "A", "B", "C"], "D").astype(object)
        d = np.datetime64(f"{ctx.year:04d}-{g.publish_month:02d}-{g.publish_day:02d}")
        self.prof_year[graded] = y
        self.prof_grade[graded] = grade
        self.prof_score[graded] = score
        self.prof_export[graded] = self._export_class(ctx, graded)
        self.prof_valid_from[graded] = d
        self.grade_history.append(pd.DataFrame({"slot": graded, "grade_year": y, "grade": grade, "score": score}))
        if ctx.emit_events and n_g:
            dates = np.full(n_g, d)
            self._emit_profile(ctx, out, graded, dates, dates)

    def _calibrate(self, base: np.ndarray, direct_d: np.ndarray, m_elig: np.ndarray) -> float:
        """Intercept so that exactly target x graded firms (outside the D and M rules) score >= a_min."""
        g = self.p.grade
        k = round(g.target_a_share * base.size)
        pool = np.sort(base[~direct_d & ~m_elig])[::-1]
        if k <= 0 or pool.size == 0:
            return g.score_intercept
        return float(g.a_min - pool[min(k, pool.size) - 1])

    def _export_class(self, ctx: MonthContext, idx: np.ndarray) -> np.ndarray:
        """Exporters: class_1 top-quality larger firms, class_4 distressed or customs-dishonest, else 2 / 3."""
        pr = self.p.profile
        alive = ctx.alive
        mu_cut = np.quantile(ctx.mu[alive], pr.export_class1_mu_quantile) if alive.any() else np.inf
        dishonest = ctx.board.get("customs_dishonest")
        bad = ctx.h[idx] < pr.export_class4_h
        if dishonest is not None:
            bad |= np.asarray(dishonest, dtype=bool)[idx]
        top = (ctx.mu[idx] >= mu_cut) & self.scale_medium_plus[idx]
        cls = np.where(self.export_u[idx] < pr.export_class2_prob, "class_2", "class_3").astype(object)
        cls[top] = "class_1"
        cls[bad] = "class_4"
        cls[~self.exporter[idx]] = "none"
        return cls

    def _emit_profile(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, valid_from: np.ndarray,
                      available: np.ndarray) -> None:
        if idx.size == 0:
            return
        ent = ctx.ent
        cols = {
            "uscc": ent.uscc[idx], "taxpayer_type": np.where(self.general[idx], "general_vat", "small_scale"
                                                             ).astype(object),
            "tax_registration_date": add_days(ent.establish_date[idx], self.reg_lag[idx]),
            "tax_credit_grade": self.prof_grade[idx], "tax_credit_score": self.prof_score[idx],
            "grade_year": self.prof_year[idx], "abnormal_taxpayer_flag": self.nonnormal[idx],
            "export_rebate_class": self.prof_export[idx],
        }
        cause = np.where(self.nonnormal[idx], self.nonnormal_cause[idx], "background").astype(object)
        out.emit("tax_profile", cols, ent=idx, available=self._lagged(available, "tax_profile"), cause=cause,
                 valid_from=np.asarray(valid_from, dtype="datetime64[D]"))

    # --- board -----------------------------------------------------------------------------------
    def _board(self, ctx: MonthContext) -> None:
        t = ctx.t
        b = ctx.board
        b["sales"] = self.sales_now.copy()
        b["annual_sales_last_year"] = self.sales_last_year.copy()
        b["total_tax_paid_year"] = self.tax_ytd.copy()
        b["declared_on_time"] = self.declared_now.copy()
        b["tax_grade"] = self.prof_grade.copy()
        b["abnormal_taxpayer"] = self.nonnormal & ctx.alive
        b["major_tax_violation_active"] = (self.viol_from >= 0) & (self.viol_from <= t) & (t < self.viol_to)
        b["tax_arrears_active"] = self.arr_state == 2
        b["ring_exposed_now"] = self.ring_exposed_now.copy()

