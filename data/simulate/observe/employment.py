"""Employment: housing provident fund (S17), social insurance (S18) and labour disputes (S19).

simulation.md §7.6. An integer insured-headcount process N, pulled toward T = E_i v^0.5, is the
backbone: social insurance reports it, the provident fund reports a firm-specific share of it, and
cascade disputes draw their claimants from it. Payments follow the arrears Markov chain AR(alpha,
beta, kappa) of §7.0, so payment stress appears before a default and persists after it. Labour
disputes mix a background hazard, a stress-driven part and post-default cascade cases (§6.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from data.simulate.calendar import add_days, date_to_month, month_index, random_day_in_month
from data.simulate.latent import DEREGISTERED, sigmoid
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

if TYPE_CHECKING:
    from data.simulate.context import MonthContext
    from data.simulate.emit import Emitter

DAYS_PER_MONTH = 30.44
CAUSES = np.array(["background", "stress", "cascade"], dtype=object)


# --- parameters --------------------------------------------------------------------------------------
class ArrearsChainParams(FrozenModel):
    """AR(alpha, beta, kappa): miss w.p. sigma(alpha + beta st); stay unpaid w.p. sigma(kappa + st).

    `shift` is added to both alpha and kappa: the calibration that brings the arrears share to the
    §11 / catalog targets on the simulated health distribution (the spec's values stay visible).
    """

    alpha: float
    beta: float
    kappa: float
    shift: float = 0.0


class HazardParams(FrozenModel):
    alpha: float
    beta: float


class RateWindow(FrozenModel):
    from_: str = Field(alias="from")
    to: str
    rate: float


class PolicyDeferral(FrozenModel):
    from_: str = Field(alias="from")
    to: str
    alpha: float
    beta: float


class HeadcountParams(FrozenModel):
    target_volume_power: float
    enroll_gap_rate: float
    enroll_turnover: float
    term_base: float
    term_excess_rate: float
    post_default_term_rate: float
    entrant_start_share: float


class SocialInsuranceParams(FrozenModel):
    uncovered_prob_shell: float
    uncovered_prob_other: float
    floor_base_year: int
    floor_base_value: float
    floor_growth: float
    at_floor_share: float
    above_floor_median_mult: float
    above_floor_logsd: float
    cap_mult: float
    employee_rate: float
    employer_rate: float
    employer_rate_waivers: tuple[RateWindow, ...]
    arrears: ArrearsChainParams
    idle_months_before_close: int


class AccountLogit(FrozenModel):
    intercept: float
    log10_employees: float
    mu: float


class HpfParams(FrozenModel):
    account_logit: AccountLogit
    depositor_share: tuple[float, float]
    base_year: int
    base_median: float
    base_logsd: float
    base_growth: float
    base_floor: float
    rates: tuple[float, ...]
    rate_probs: tuple[float, ...]
    arrears: ArrearsChainParams
    policy_deferral: PolicyDeferral
    deferral_hazard: HazardParams
    deferral_months: tuple[int, int]
    sealed_after_dormant_months: int


class DisputeParams(FrozenModel):
    background_hazard: HazardParams
    hazard_shift: float
    size_ref_employees: float
    size_power: float
    size_cap: float
    background_mix: dict[str, float]
    background_single_prob: float
    background_group_base: int
    background_group_pois: float
    cascade_prob: float
    cascade_lag_months: tuple[int, int]
    cascade_mix: dict[str, float]
    cascade_claimant_share: float
    claim_per_claimant: tuple[float, float]
    resolution_gamma: tuple[float, float]
    outcome_mix: dict[str, float]
    blacklist_prob: float
    blacklist_min_claimants: int
    blacklist_after_months: int
    blacklist_duration_months: int
    backdate_availability: bool


class EmploymentParams(FrozenModel):
    post_default_stay_prob: float
    headcount: HeadcountParams
    social_insurance: SocialInsuranceParams
    hpf: HpfParams
    disputes: DisputeParams


# --- shared building block -----------------------------------------------------------------------------
def arrears_transition(u: np.ndarray, in_arrears: np.ndarray, billable: np.ndarray, st: np.ndarray,
                       absorbed: np.ndarray, chain: ArrearsChainParams,
                       post_default_stay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One month of the arrears chain of simulation.md §7.0; returns (missed, stays_unpaid, caught_up).

    A current account with something to pay misses w.p. sigma(alpha + beta st); an account in arrears
    stays unpaid w.p. sigma(kappa + st) (0.9 while absorbed by a default), else it is caught up in full.
    `u` is one uniform per slot so the caller controls the random stream.
    """
    p_miss = sigmoid(chain.alpha + chain.shift + chain.beta * st)
    p_stay = np.where(absorbed, post_default_stay, sigmoid(chain.kappa + chain.shift + 1.0 * st))
    missed = ~in_arrears & billable & (u < p_miss)
    stays = in_arrears & (u < p_stay)
    caught_up = in_arrears & ~stays
    return missed, stays, caught_up


def draw_mix(rng: np.random.Generator, mix: dict[str, float], size: int) -> np.ndarray:
    """Categories drawn from a {code: weight} mix (object array)."""
    keys = np.array(list(mix), dtype=object)
    p = np.array(list(mix.values()), dtype=np.float64)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def lag_days(rng: np.random.Generator, bounds: tuple[int, int], size: int) -> np.ndarray:
    """Publication lag in days, U{lo..hi} from the catalog's lag_days."""
    return rng.integers(bounds[0], bounds[1] + 1, size=size)


# --- labour-dispute cases ------------------------------------------------------------------------------
@dataclass
class _Case:
    slot: int
    case_date: np.datetime64
    month: int
    dispute_type: str
    claimants: int
    claim: float
    cause: str
    outcome: str = "pending"
    blacklist: bool = False
    available: np.datetime64 | None = None    # availability of the first (pending) row


class EmploymentModule:
    """S17 hpf_monthly, S18 social_insurance_monthly, S19 labor_disputes."""

    name = "employment"
    sub_items = ("hpf_monthly", "social_insurance_monthly", "labor_disputes")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Static per-slot draws: SI coverage, contribution bases, HPF account, share and rate."""
        self.rng = rng
        self.p: EmploymentParams = load_module_params(EmploymentParams, self.name)
        ent, n = ctx.ent, ctx.ent.n_max
        si, hpf = self.p.social_insurance, self.p.hpf

        p_uncovered = np.where(ent.shell, si.uncovered_prob_shell, si.uncovered_prob_other)
        self.si_covered = rng.random(n) >= p_uncovered
        at_floor = rng.random(n) < si.at_floor_share
        mult = si.above_floor_median_mult * np.exp(si.above_floor_logsd * rng.standard_normal(n))
        self.si_base_mult = np.where(at_floor, 1.0, np.clip(mult, 1.0, si.cap_mult))

        # HPF accounts only where staff are insured; the probability is divided by the coverage rate so
        # that the unconditional account rate stays sigma(-0.2 + 0.8 log10 E + 0.3 mu) (catalog ~63%).
        lg = hpf.account_logit
        p_acc = sigmoid(lg.intercept + lg.log10_employees * np.log10(np.maximum(ent.employees, 1.0))
                        + lg.mu * ent.mu)
        p_acc = np.clip(p_acc / (1.0 - p_uncovered), 0.0, 1.0)
        self.hpf_account = self.si_covered & (rng.random(n) < p_acc)
        self.hpf_share = rng.uniform(hpf.depositor_share[0], hpf.depositor_share[1], n)
        self.hpf_base = hpf.base_median * np.exp(hpf.base_logsd * rng.standard_normal(n))
        rates = np.asarray(hpf.rates, dtype=np.float64)
        probs = np.asarray(hpf.rate_probs, dtype=np.float64)
        self.hpf_rate = rates[rng.choice(len(rates), size=n, p=probs / probs.sum())]
        d = self.p.disputes
        self.dispute_size = np.minimum(d.size_cap, (ent.employees / d.size_ref_employees) ** d.size_power)

        # time-varying state
        self.n_ins = np.zeros(n, dtype=np.int64)
        self.started = np.zeros(n, dtype=bool)
        self.si_arrears_months = np.zeros(n, dtype=np.int64)
        self.si_arrears_amount = np.zeros(n)
        self.si_idle = np.zeros(n, dtype=np.int64)
        self.year_sum = np.zeros(n)
        self.year_cnt = np.zeros(n)
        self.hpf_arrears_months = np.zeros(n, dtype=np.int64)
        self.hpf_arrears_amount = np.zeros(n)
        self.hpf_deferred_until = np.full(n, -1, dtype=np.int64)
        self.hpf_deferred_balance = np.zeros(n)
        self.blacklist_month = np.full(n, -1, dtype=np.int64)
        self.cases: list[_Case] = []
        self.case_queue: dict[int, list[tuple[int, str]]] = {}     # month -> [(case index, 'resolve'/'blacklist')]
        self.cascade_queue: dict[int, list[tuple[int, int]]] = {}   # emission month -> [(slot, case month)]
        self._resolution: dict[int, tuple[np.datetime64, str]] = {}
        self.t_policy = (month_index(hpf.policy_deferral.from_), month_index(hpf.policy_deferral.to))
        self.waivers = [(month_index(w.from_), month_index(w.to), w.rate) for w in si.employer_rate_waivers]
        self._lags: dict[str, tuple[int, int]] = {}

    # -------------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """Headcount, contributions and arrears every month; rows from t_series (events from t_events)."""
        if not self._lags:
            self._lags = {c: tuple(out.catalog.sub_item(c).lag_days) for c in self.sub_items}
        t = ctx.t
        alive = ctx.alive
        st = ctx.stress
        absorbed = alive & ~ctx.latent.performing
        v = np.nan_to_num(ctx.volume, nan=0.0, posinf=0.0)

        self._headcount(ctx, alive, absorbed, v)
        si_rows, si_due, si_paid = self._social_insurance(ctx, alive, absorbed, st)
        hpf = self._hpf(ctx, alive, absorbed, st)
        self._disputes(ctx, out, alive, st)

        # board
        ins = np.where(si_rows, self.n_ins, 0)
        if ctx.moy == 1:
            self.year_sum[:] = 0.0
            self.year_cnt[:] = 0.0
        self.year_sum += np.where(alive, ins, 0)
        self.year_cnt += alive
        ctx.board["insured_count"] = ins.astype(np.int64)
        ctx.board["insured_count_year_mean"] = np.where(self.year_cnt > 0, self.year_sum / np.maximum(self.year_cnt, 1),
                                                        0.0)
        ctx.board["si_arrears_months"] = np.where(si_rows, self.si_arrears_months, 0)
        bl = self.blacklist_month
        ctx.board["wage_arrears_blacklist"] = (alive & (bl >= 0)
                                               & (t - bl < self.p.disputes.blacklist_duration_months))

        if ctx.emit_series:
            self._emit_si(ctx, out, si_rows, si_due, si_paid, absorbed)
            self._emit_hpf(ctx, out, hpf, absorbed)

    # --- headcount --------------------------------------------------------------------------------------
    def _headcount(self, ctx: MonthContext, alive: np.ndarray, absorbed: np.ndarray, v: np.ndarray) -> None:
        """N_t = N_t-1 + Pois(enrolments) - Binomial(terminations), pulled toward T = E v^0.5."""
        hc, rng = self.p.headcount, self.rng
        self.enrol = np.zeros(ctx.ent.n_max, dtype=np.int64)
        self.term = np.zeros(ctx.ent.n_max, dtype=np.int64)
        # first month of a firm: initial universe near its target, entrants part of the way there
        new = np.flatnonzero(alive & ~self.started)
        if new.size:
            target = ctx.ent.employees[new] * v[new] ** hc.target_volume_power
            entrant = ctx.latent.born_now[new]
            first = rng.poisson(target)
            start = rng.binomial(np.ceil(target).astype(np.int64), hc.entrant_start_share)
            self.n_ins[new] = np.maximum(1, np.where(entrant, start, first))
            self.enrol[new] = self.n_ins[new]
            self.started[new] = True

        upd = np.flatnonzero(alive & self.started)
        upd = upd[~np.isin(upd, new, assume_unique=True)] if new.size else upd
        target = ctx.ent.employees[upd] * v[upd] ** hc.target_volume_power
        n_prev = self.n_ins[upd]
        nf = n_prev.astype(np.float64)
        ab = absorbed[upd]
        lam = np.where(ab, 0.0, hc.enroll_gap_rate * np.maximum(0.0, target - nf) + hc.enroll_turnover * nf)
        enrol = rng.poisson(lam)
        excess = np.maximum(0.0, nf - target) / np.maximum(nf, 1.0)
        p_term = np.clip(hc.term_base + hc.term_excess_rate * excess, 0.0, 1.0)
        p_term = np.where(ab, np.maximum(p_term, hc.post_default_term_rate), p_term)
        term = rng.binomial(n_prev, p_term)
        self.enrol[upd] = enrol
        self.term[upd] = term
        self.n_ins[upd] = n_prev + enrol - term

    # --- social insurance -------------------------------------------------------------------------------
    def _si_floor(self, year: int) -> float:
        si = self.p.social_insurance
        return si.floor_base_value * (1.0 + si.floor_growth) ** (year - si.floor_base_year)

    def _employer_rate(self, t: int) -> float:
        for lo, hi, rate in self.waivers:
            if lo <= t <= hi:
                return rate
        return self.p.social_insurance.employer_rate

    def _social_insurance(self, ctx: MonthContext, alive: np.ndarray, absorbed: np.ndarray,
                          st: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        si = self.p.social_insurance
        # an account with nobody insured and nothing owed for a year is no longer reported (until rehiring)
        idle = alive & self.si_covered & (self.n_ins == 0) & (self.si_arrears_months == 0)
        self.si_idle = np.where(idle, self.si_idle + 1, 0)
        cov = alive & self.si_covered & (self.si_idle <= si.idle_months_before_close)
        base = self.si_base_mult * self._si_floor(ctx.year)
        due = np.where(cov, self.n_ins * base * (self._employer_rate(ctx.t) + si.employee_rate), 0.0)
        due = np.round(due, 2)
        in_arr = self.si_arrears_months > 0
        u = self.rng.random(ctx.ent.n_max)
        missed, stays, caught = arrears_transition(u, in_arr & cov, cov & (due > 0), st, absorbed, si.arrears,
                                                   self.p.post_default_stay_prob)
        paid = np.where(cov & ~missed & ~stays, due, 0.0)
        paid = np.where(caught, paid + self.si_arrears_amount, paid)
        unpaid = missed | stays
        self.si_arrears_amount = np.where(caught, 0.0, self.si_arrears_amount + np.where(unpaid, due, 0.0))
        self.si_arrears_months = np.where(caught, 0, self.si_arrears_months + (unpaid & (due > 0)))
        self.si_base_now = base
        return cov, due, np.round(paid, 2)

    @staticmethod
    def _cause(absorbed: np.ndarray, arrears: np.ndarray) -> np.ndarray:
        """Row cause: post-default rows are cascade, rows in arrears stress, the rest background."""
        return CAUSES[np.where(absorbed, 2, (arrears > 0).astype(np.int64))]

    def _emit_si(self, ctx: MonthContext, out: Emitter, rows: np.ndarray, due: np.ndarray, paid: np.ndarray,
                 absorbed: np.ndarray) -> None:
        idx = np.flatnonzero(rows)
        k = idx.size
        period = np.full(k, ctx.first_day, dtype="datetime64[D]")
        avail = add_days(np.full(k, ctx.last_day), lag_days(self.rng, self._lags["social_insurance_monthly"], k))
        out.emit("social_insurance_monthly", {
            "uscc": ctx.ent.uscc[idx],
            "period_month": period,
            "insured_count": self.n_ins[idx],
            "new_enrollments": self.enrol[idx],
            "terminations": self.term[idx],
            "avg_contribution_base": np.round(self.si_base_now[idx], 2),
            "amount_due": due[idx],
            "amount_paid": paid[idx],
            "arrears_amount": np.round(self.si_arrears_amount[idx], 2),
            "arrears_months": self.si_arrears_months[idx],
        }, ent=idx, available=avail, cause=self._cause(absorbed[idx], self.si_arrears_months[idx]))

    # --- housing provident fund ---------------------------------------------------------------------------
    def _hpf(self, ctx: MonthContext, alive: np.ndarray, absorbed: np.ndarray, st: np.ndarray) -> dict[str, np.ndarray]:
        hp, rng, t, n = self.p.hpf, self.rng, ctx.t, ctx.ent.n_max
        acc = alive & self.hpf_account
        dep = np.where(acc, np.round(self.hpf_share * self.n_ins), 0).astype(np.int64)
        lat = ctx.latent
        dormant_long = lat.dormant & (t - lat.last_default > hp.sealed_after_dormant_months)
        sealed = acc & ((dep == 0) | dormant_long)

        # deferrals: the 2020 policy window (one application, approved to its end) and hardship deferrals
        u_def = rng.random(n)
        dur = rng.integers(hp.deferral_months[0], hp.deferral_months[1] + 1, n)
        open_ = acc & ~sealed & (self.hpf_deferred_until < t)
        pol = hp.policy_deferral
        if t == self.t_policy[0]:
            grant = open_ & (u_def < sigmoid(pol.alpha + pol.beta * st))
            self.hpf_deferred_until[grant] = self.t_policy[1]
        elif not (self.t_policy[0] <= t <= self.t_policy[1]):
            hz = hp.deferral_hazard
            grant = open_ & (self.hpf_arrears_months == 0) & (u_def < sigmoid(hz.alpha + hz.beta * st))
            self.hpf_deferred_until[grant] = t + dur[grant] - 1
        deferred = acc & ~sealed & (self.hpf_deferred_until >= t)
        normal = acc & ~sealed & ~deferred

        base = np.maximum(hp.base_floor, self.hpf_base * (1.0 + hp.base_growth) ** (ctx.year - hp.base_year))
        due = np.round(np.where(acc, dep * base * 2.0 * self.hpf_rate, 0.0), 2)
        in_arr = self.hpf_arrears_months > 0
        u = rng.random(n)
        missed, stays, caught = arrears_transition(u, in_arr & normal, normal & (due > 0), st, absorbed, hp.arrears,
                                                   self.p.post_default_stay_prob)
        unpaid = missed | stays
        paid_now = normal & ~unpaid
        paid = np.where(paid_now, due, 0.0)
        paid = np.where(caught, paid + self.hpf_arrears_amount, paid)
        # deferred contributions are paid with the first regular payment after the deferral
        paid = np.where(paid_now, paid + self.hpf_deferred_balance, paid)
        self.hpf_deferred_balance = np.where(paid_now, 0.0, self.hpf_deferred_balance + np.where(deferred, due, 0.0))
        self.hpf_arrears_amount = np.where(caught, 0.0, self.hpf_arrears_amount + np.where(unpaid, due, 0.0))
        self.hpf_arrears_months = np.where(caught, 0, self.hpf_arrears_months + (unpaid & (due > 0)))

        status = np.full(n, "normal", dtype=object)
        status[deferred] = "deferred"
        status[sealed] = "sealed"
        due = np.where(sealed, 0.0, due)           # nobody contributes to a sealed account
        dep = np.where(sealed, 0, dep)
        # closing row in the month of deregistration (the firm is no longer alive)
        closed = (self.hpf_account & lat.born & lat.status_changed_now & (lat.status == DEREGISTERED))
        status[closed] = "closed"
        return {"rows": acc | closed, "dep": np.where(closed, 0, dep), "base": base,
                "due": np.where(closed, 0.0, due), "paid": np.round(np.where(closed, 0.0, paid), 2), "status": status}

    def _emit_hpf(self, ctx: MonthContext, out: Emitter, h: dict[str, np.ndarray], absorbed: np.ndarray) -> None:
        idx = np.flatnonzero(h["rows"])
        k = idx.size
        avail = add_days(np.full(k, ctx.last_day), lag_days(self.rng, self._lags["hpf_monthly"], k))
        cause = self._cause(absorbed[idx] | (h["status"][idx] == "closed") & (ctx.latent.tau[idx] >= 0),
                            self.hpf_arrears_months[idx])
        out.emit("hpf_monthly", {
            "uscc": ctx.ent.uscc[idx],
            "period_month": np.full(k, ctx.first_day, dtype="datetime64[D]"),
            "depositor_count": h["dep"][idx],
            "avg_deposit_base": np.round(h["base"][idx], 2),
            "amount_due": h["due"][idx],
            "amount_paid": h["paid"][idx],
            "arrears_months": self.hpf_arrears_months[idx],
            "account_status": h["status"][idx],
        }, ent=idx, available=avail, cause=cause)

    # --- labour disputes ----------------------------------------------------------------------------------
    def _disputes(self, ctx: MonthContext, out: Emitter, alive: np.ndarray, st: np.ndarray) -> None:
        d, rng, t, n = self.p.disputes, self.rng, ctx.t, ctx.ent.n_max
        new_cases: list[_Case] = []

        # background and stress-driven cases
        hz = d.background_hazard
        alpha = hz.alpha + d.hazard_shift
        p = np.clip(sigmoid(alpha + hz.beta * st) * self.dispute_size, 0.0, 1.0)
        p_base = sigmoid(np.full(n, alpha)) * self.dispute_size
        hit = alive & (self.n_ins > 0) & (rng.random(n) < p)     # no staff, no labour dispute
        idx = np.flatnonzero(hit)
        if idx.size and ctx.emit_events:
            k = idx.size
            types = draw_mix(rng, d.background_mix, k)
            single = rng.random(k) < d.background_single_prob
            claimants = np.where(single, 1, d.background_group_base + rng.poisson(d.background_group_pois, k))
            stress = rng.random(k) >= p_base[idx] / p[idx]
            dates = random_day_in_month(rng, t, k)
            claims = claimants * d.claim_per_claimant[0] * np.exp(d.claim_per_claimant[1] * rng.standard_normal(k))
            for j in range(k):
                new_cases.append(_Case(int(idx[j]), dates[j], t, str(types[j]), int(claimants[j]),
                                       round(float(claims[j]), 2), "stress" if stress[j] else "background"))

        # cascade: schedule at the default, create now when the drawn month is not in the future
        dflt = np.flatnonzero(ctx.latent.defaulted_now)
        if dflt.size:
            sel = dflt[rng.random(dflt.size) < d.cascade_prob]
            offs = rng.integers(d.cascade_lag_months[0], d.cascade_lag_months[1] + 1, sel.size)
            for slot, off in zip(sel.tolist(), offs.tolist(), strict=True):
                self.cascade_queue.setdefault(t + max(0, off), []).append((slot, t + off))
        for slot, m in self.cascade_queue.pop(t, []):
            if m < ctx.params.t_events or not ctx.latent.born[slot]:
                continue
            new_cases.append(self._cascade_case(slot, m))

        first = len(self.cases)
        self.cases.extend(new_cases)
        rows = list(range(first, len(self.cases)))
        # outcome after Gamma(2, 1) months; blacklist check for large cascade wage-arrears cases
        gam = rng.gamma(d.resolution_gamma[0], d.resolution_gamma[1], len(rows))
        outcome = draw_mix(rng, d.outcome_mix, len(rows))
        for ci, g, o in zip(rows, gam.tolist(), outcome.tolist(), strict=True):
            c = self.cases[ci]
            res_date = add_days(c.case_date, round(g * DAYS_PER_MONTH))
            self._resolution[ci] = (res_date, str(o))
            self.case_queue.setdefault(max(t, int(date_to_month(res_date))), []).append((ci, "resolve"))
            if (c.cause == "cascade" and c.dispute_type == "wage_arrears"
                    and c.claimants >= d.blacklist_min_claimants):
                self.case_queue.setdefault(max(t, c.month + d.blacklist_after_months), []).append((ci, "blacklist"))
        records = [self._record(ctx, self.cases[ci], self.cases[ci].case_date) for ci in rows]
        records += self._process_queue(ctx)
        if records and ctx.emit_events:
            self._emit_cases(ctx, out, records)

    def _record(self, ctx: MonthContext, c: _Case, event_date: np.datetime64) -> tuple:
        """The case as published after `event_date` (values copied: later updates append new rows).

        Without backdating, an event dated in an earlier month (a cascade case generated at the default)
        is published from the current month on; an update is never published before the case itself.
        """
        event = np.datetime64(event_date, "D")
        if not self.p.disputes.backdate_availability:
            event = max(event, np.datetime64(ctx.first_day, "D"))
        lo, hi = self._lags["labor_disputes"]
        avail = event + np.timedelta64(int(self.rng.integers(lo, hi + 1)), "D")
        if c.available is None:
            c.available = avail
        else:
            avail = max(avail, c.available + np.timedelta64(1, "D"))
        return (c.slot, c.case_date, c.dispute_type, c.claimants, c.claim, c.outcome, c.blacklist, c.cause, avail)

    def _cascade_case(self, slot: int, month: int) -> _Case:
        d, rng = self.p.disputes, self.rng
        dtype = str(draw_mix(rng, d.cascade_mix, 1)[0])
        claimants = 1 + int(rng.binomial(int(max(0, self.n_ins[slot])), d.cascade_claimant_share))
        claim = claimants * d.claim_per_claimant[0] * float(np.exp(d.claim_per_claimant[1] * rng.standard_normal()))
        date = random_day_in_month(rng, month, 1)[0]
        return _Case(slot, date, month, dtype, claimants, round(claim, 2), "cascade")

    def _process_queue(self, ctx: MonthContext) -> list[tuple]:
        """Outcome and blacklist updates due this month: a new row per change, same case key."""
        items = self.case_queue.pop(ctx.t, [])
        d, rng, lat = self.p.disputes, self.rng, ctx.latent
        records: list[tuple] = []
        for ci, kind in sorted(items, key=lambda x: (x[1] != "resolve", x[0])):
            c = self.cases[ci]
            if kind == "resolve":
                res_date, outcome = self._resolution.pop(ci)
                c.outcome = outcome
                records.append(self._record(ctx, c, res_date))
            else:
                unpaid = (not lat.performing[c.slot] or not lat.alive[c.slot]) and c.outcome not in (
                    "award_for_employer", "withdrawn")
                if unpaid and rng.random() < d.blacklist_prob:
                    c.blacklist = True
                    self.blacklist_month[c.slot] = ctx.t
                    records.append(self._record(ctx, c, random_day_in_month(rng, ctx.t, 1)[0]))
        return records

    def _emit_cases(self, ctx: MonthContext, out: Emitter, records: list[tuple]) -> None:
        cols = list(zip(*records, strict=True))
        slots = np.array(cols[0], dtype=np.int64)
        out.emit("labor_disputes", {
            "uscc": ctx.ent.uscc[slots],
            "case_date": np.array(cols[1], dtype="datetime64[D]"),
            "dispute_type": np.array(cols[2], dtype=object),
            "claimants_count": np.array(cols[3], dtype=np.int64),
            "claim_amount": np.array(cols[4], dtype=np.float64),
            "outcome": np.array(cols[5], dtype=object),
            "wage_arrears_blacklist": np.array(cols[6], dtype=bool),
        }, ent=slots, available=np.array(cols[8], dtype="datetime64[D]"), cause=np.array(cols[7], dtype=object))
