"""S07 msa_credit_lists: the abnormal-operation list and the serious-illegal-dishonest list (simulation.md §7.3).

Listings are mechanical (every firm without its annual report on 30 June is listed on 1-15 July;
36 months on the abnormal list moves a firm to the serious list) or hazard-driven (unreachable
address, with a post-default cascade; instant information; false disclosure; false registration of
cluster shells; serious market violations after serious penalties). A removal re-emits the listing
row (same key) with its removal date and reason.

Stock arithmetic (why the active abnormal share runs high against the ~5% ±1.5 pp of §11): with filing
at 88 / 6 / 6 % on time / late / missing, 12% of firms are listed each July; the late filers stay listed
~3.3 months (6% x 3.3/12 ~ 1.7 pp) and the non-filers until their next report, ~10 months on average
(6% x 10/12 ~ 5 pp), before any other reason. Over all months the share of operating firms listed
averages 7-8%; at the year ends the calibration report reads (after the late filers' removals) it is
about 6.4% on the default world.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data.simulate.calendar import month_start, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import DEREGISTERED, sigmoid
from data.simulate.observe.annual_report import AnnualReportParams, FilingCycle
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

NAT = np.datetime64("NaT", "D")
LIST_TYPES = ("abnormal_operation", "serious_illegal_dishonest")
REASONS = ("annual_report_not_filed", "unreachable_address", "instant_info_not_filed", "false_disclosure",
           "abnormal_3y_unremedied", "false_registration_materials", "serious_market_violation")
REASON_TYPE = np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int8)          # index into LIST_TYPES
REMOVALS = ("obligation_fulfilled", "address_verified", "credit_repair", "expiry", "deregistered", "other")
(AR, UNREACHABLE, INSTANT, FALSE_DISCLOSURE, ABNORMAL_3Y, FALSE_REGISTRATION, MARKET_VIOLATION) = range(7)
(R_FULFILLED, R_ADDRESS, R_REPAIR, R_EXPIRY, R_DEREGISTERED, R_OTHER) = range(6)
CAUSES = ("background", "stress", "cascade", "contagion", "ring", "platform")
C_BACKGROUND, C_STRESS, C_CASCADE, _, C_RING, _ = range(6)


class RemovableHazard(FrozenModel):
    hazard: tuple[float, float]
    removal_prob: float
    removal_months: tuple[int, int]


class AnnualReportListing(FrozenModel):
    list_days: tuple[int, int]


class UnreachableParams(RemovableHazard):
    cascade_prob: float
    cascade_lag_gamma: tuple[float, float]


class FalseDisclosureParams(RemovableHazard):
    misreport_multiplier: float


class HazardOnly(FrozenModel):
    hazard: tuple[float, float]


class MarketViolationParams(FrozenModel):
    prob: float
    proxy_hazard: tuple[float, float]
    proxy_serious: tuple[float, float]


class SeriousRemovalParams(FrozenModel):
    expiry_months: int
    credit_repair_prob: float
    credit_repair_months: tuple[int, int]


class MsaListsParams(FrozenModel):
    authority_city_share: float
    lag_days: tuple[int, int]
    stress_cause_threshold: float
    stress_cap: float
    annual_report: AnnualReportListing
    unreachable_address: UnreachableParams
    instant_info_not_filed: RemovableHazard
    false_disclosure: FalseDisclosureParams
    abnormal_3y_months: int
    false_registration_materials: HazardOnly
    serious_market_violation: MarketViolationParams
    serious_removal: SeriousRemovalParams


def hz(alpha_beta: tuple[float, float], st: np.ndarray) -> np.ndarray:
    """Monthly event probability sigma(alpha + beta st) (simulation.md §7.0)."""
    return sigmoid(alpha_beta[0] + alpha_beta[1] * st)


LISTING_COLUMNS: dict[str, object] = {
    "ent": np.int64, "reason": np.int8, "list_date": "datetime64[D]", "list_month": np.int64, "city": bool,
    "report_year": np.int64, "active": bool, "removal_month": np.int64, "removal_code": np.int8,
    "removal_date": "datetime64[D]", "removal_reason": np.int8, "cause": np.int8, "emitted": bool,
    "available": "datetime64[D]"}


class _Listings:
    """Growable column store of every listing ever made (struct of arrays)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self.cols = {k: np.zeros(capacity, dtype=d) for k, d in LISTING_COLUMNS.items()}

    def add(self, **values: np.ndarray) -> np.ndarray:
        k = len(values["ent"])
        if self.size + k > len(self.cols["ent"]):
            cap = max(2 * len(self.cols["ent"]), self.size + k)
            for name, arr in self.cols.items():
                grown = np.zeros(cap, dtype=arr.dtype)
                grown[: self.size] = arr[: self.size]
                self.cols[name] = grown
        idx = np.arange(self.size, self.size + k)
        defaults = {"report_year": -1, "active": True, "removal_month": -1, "removal_code": -1,
                    "removal_date": NAT, "removal_reason": -1, "emitted": False, "available": NAT}
        for name in LISTING_COLUMNS:
            self.cols[name][idx] = values.get(name, defaults.get(name))
        self.size += k
        return idx

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name][: self.size]


class MsaListsModule:
    """MSA abnormal-operation and serious-illegal-dishonest listings with their removals."""

    name = "msa_lists"
    sub_items = ("msa_credit_lists",)

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.p: MsaListsParams = load_module_params(MsaListsParams, self.name)
        self.rng = rng
        self.n = ctx.ent.n_max
        self.lists = _Listings()
        self.queue: dict[int, list[np.ndarray]] = defaultdict(list)   # unreachable cascade: month -> slots
        self.ar_missing = np.zeros(self.n, dtype=bool)
        self.ar_year = -1
        self.proxy_cycle: FilingCycle | None = None
        self.first_t = ctx.t
        self.emitting = False
        self.active_by_reason = np.zeros((len(REASONS), self.n), dtype=bool)
        self.pending: list[dict[str, np.ndarray]] = []

    # --- helpers ----------------------------------------------------------------------------------
    def _cause(self, ctx: MonthContext, slots: np.ndarray) -> np.ndarray:
        st = ctx.stress[slots]
        return np.where(~ctx.latent.performing[slots], C_CASCADE,
                        np.where(st > self.p.stress_cause_threshold, C_STRESS, C_BACKGROUND)).astype(np.int8)

    def _lag(self, k: int) -> np.ndarray:
        lo, hi = self.p.lag_days
        return self.rng.integers(lo, hi + 1, k).astype("timedelta64[D]")

    def _columns(self, rows: np.ndarray, ctx: MonthContext) -> dict[str, np.ndarray]:
        c = self.lists
        reason = c["reason"][rows]
        rr = c["removal_reason"][rows]
        return {
            "uscc": ctx.ent.uscc[c["ent"][rows]],
            "list_type": np.array(LIST_TYPES, dtype=object)[REASON_TYPE[reason]],
            "list_reason": np.array(REASONS, dtype=object)[reason],
            "list_date": c["list_date"][rows],
            "decision_authority_level": np.where(c["city"][rows], "city", "district").astype(object),
            "removal_date": c["removal_date"][rows],
            "removal_reason": np.where(rr >= 0, np.array(REMOVALS, dtype=object)[np.maximum(rr, 0)], None),
        }

    def _emit(self, ctx: MonthContext, out: Emitter, rows: np.ndarray, available: np.ndarray) -> None:
        """Queue the current version of listing rows; `_flush` hands the month's rows over in one batch."""
        if rows.size == 0:
            return
        c = self.lists
        cols = self._columns(rows, ctx)
        cols["__ent"] = c["ent"][rows]
        cols["__available"] = available
        cols["__cause"] = np.array(CAUSES, dtype=object)[c["cause"][rows]]
        self.pending.append(cols)
        c["emitted"][rows] = True
        c["available"][rows] = available

    def _flush(self, out: Emitter) -> None:
        if not self.pending:
            return
        merged = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
        self.pending = []
        ent, avail, cause = merged.pop("__ent"), merged.pop("__available"), merged.pop("__cause")
        out.emit("msa_credit_lists", merged, ent=ent, available=avail, cause=cause)

    def _list(self, ctx: MonthContext, out: Emitter, slots: np.ndarray, reason: int,
              dates: np.ndarray | None = None, cause: np.ndarray | None = None, report_year: int = -1) -> None:
        """New listings of `slots` for `reason` dated in this month (or at `dates`)."""
        k = slots.size
        if k == 0:
            return
        rng = self.rng
        if dates is None:
            dates = random_day_in_month(rng, ctx.t, size=k)
        if cause is None:
            cause = self._cause(ctx, slots)
        removal_month = np.full(k, -1, dtype=np.int64)
        removal_code = np.full(k, -1, dtype=np.int8)
        hz_params = {UNREACHABLE: (self.p.unreachable_address, R_ADDRESS),
                     INSTANT: (self.p.instant_info_not_filed, R_FULFILLED),
                     FALSE_DISCLOSURE: (self.p.false_disclosure, R_FULFILLED)}
        if reason in hz_params:
            hp, code = hz_params[reason]
            go = rng.random(k) < hp.removal_prob
            removal_month[go] = ctx.t + rng.integers(hp.removal_months[0], hp.removal_months[1] + 1, go.sum())
            removal_code[go] = code
        elif REASON_TYPE[reason] == 1:
            sr = self.p.serious_removal
            repair = rng.random(k) < sr.credit_repair_prob
            removal_month[:] = ctx.t + sr.expiry_months
            removal_code[:] = R_EXPIRY
            removal_month[repair] = ctx.t + rng.integers(sr.credit_repair_months[0], sr.credit_repair_months[1] + 1,
                                                         repair.sum())
            removal_code[repair] = R_REPAIR
        rows = self.lists.add(ent=slots, reason=np.full(k, reason, dtype=np.int8), list_date=dates,
                              list_month=np.full(k, ctx.t), city=rng.random(k) < self.p.authority_city_share,
                              report_year=np.full(k, report_year), removal_month=removal_month,
                              removal_code=removal_code, cause=cause)
        self.active_by_reason[reason, slots] = True
        if self.emitting:
            self._emit(ctx, out, rows, dates + self._lag(k))

    def _remove(self, ctx: MonthContext, out: Emitter, rows: np.ndarray, reason: np.ndarray | int,
                dates: np.ndarray | None = None) -> None:
        if rows.size == 0:
            return
        c = self.lists
        if dates is None:
            dates = random_day_in_month(self.rng, ctx.t, size=rows.size)
        dates = np.where(np.isnat(dates), random_day_in_month(self.rng, ctx.t, size=rows.size), dates)
        dates = np.maximum(dates, c["list_date"][rows])
        c["active"][rows] = False
        c["removal_date"][rows] = dates
        c["removal_reason"][rows] = reason
        emitted = rows[c["emitted"][rows]]
        if self.emitting and emitted.size:
            avail = np.maximum(c["removal_date"][emitted] + self._lag(emitted.size), c["available"][emitted])
            self._emit(ctx, out, emitted, avail)

    def _refresh_active(self) -> None:
        c = self.lists
        act = np.flatnonzero(c["active"])
        self.active_by_reason[:] = False
        self.active_by_reason[c["reason"][act], c["ent"][act]] = True

    # --- annual report inputs ---------------------------------------------------------------------
    def _annual_report_state(self, ctx: MonthContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(filed, submit_date, backfill_date) for the report of ctx.year - 1 and the reports owed before it.

        From the annual-report module's board keys; without them, from a proxy filing cycle in which
        every filing also files the reports still owed.
        """
        b = ctx.board
        if "annual_report_filed" in b:
            nat = np.full(self.n, NAT)
            return (b["annual_report_filed"], b.get("annual_report_submit_date", nat),
                    b.get("annual_report_backfill_date", nat))
        if self.proxy_cycle is None:
            fp = load_module_params(AnnualReportParams, "annual_report").filing
            self.proxy_cycle = FilingCycle(fp, self.n, self.rng)
        cyc = self.proxy_cycle
        filers = cyc.step(ctx)
        backfill = np.full(self.n, NAT)
        backfill[filers] = cyc.submit_date[filers]
        return cyc.filed, np.where(cyc.filed, cyc.submit_date, NAT), backfill

    def _serious_penalty_last_month(self, ctx: MonthContext) -> np.ndarray:
        """Serious penalties decided in the previous month (penalties step after this module)."""
        if ctx.t == self.first_t:
            return np.zeros(self.n, dtype=bool)
        if "serious_penalty_now" in ctx.board:
            return ctx.board["serious_penalty_now"].astype(bool)
        mv = self.p.serious_market_violation
        st = np.minimum(ctx.stress, self.p.stress_cap)
        p = hz(mv.proxy_hazard, st) * (mv.proxy_serious[0] + mv.proxy_serious[1] * np.minimum(2.0, st))
        return ctx.alive & (self.rng.random(self.n) < p)

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        p, rng, c, t = self.p, self.rng, self.lists, ctx.t
        alive, n = ctx.alive, self.n
        st = np.minimum(ctx.stress, p.stress_cap)
        filed, submit, backfill = self._annual_report_state(ctx)
        penalty_prev = self._serious_penalty_last_month(ctx)

        if ctx.emit_events and not self.emitting:
            # first emission month: the listings active now (made before the event history starts)
            self.emitting = True
            act = np.flatnonzero(c["active"])
            self._emit(ctx, out, act, np.full(act.size, ctx.first_day) + self._lag(act.size))

        # --- removals ------------------------------------------------------------------------------
        active = c["active"]
        dereg = np.zeros(n, dtype=bool)
        dereg[ctx.latent.status_changed_now & (ctx.latent.status == DEREGISTERED)] = True
        rows = np.flatnonzero(active & dereg[c["ent"]])
        self._remove(ctx, out, rows, R_DEREGISTERED)
        rows = np.flatnonzero(c["active"] & (c["removal_month"] == t))
        self._remove(ctx, out, rows, c["removal_code"][rows])
        if ctx.moy >= 7:
            rows = np.flatnonzero(c["active"] & (c["reason"] == AR) & (c["report_year"] == ctx.year - 1)
                                  & filed[c["ent"]])
            self._remove(ctx, out, rows, R_FULFILLED, dates=submit[c["ent"][rows]])
        rows = np.flatnonzero(c["active"] & (c["reason"] == AR) & (c["report_year"] < ctx.year - 1)
                              & ~np.isnat(backfill[c["ent"]]))
        self._remove(ctx, out, rows, R_FULFILLED, dates=backfill[c["ent"][rows]])
        self._refresh_active()
        listed = self.active_by_reason

        # --- mechanical listings -------------------------------------------------------------------
        if ctx.moy == 7 and self.ar_year == ctx.year - 1:
            slots = np.flatnonzero(self.ar_missing & alive)
            lo, hi = p.annual_report.list_days
            days = rng.integers(lo - 1, hi, slots.size).astype("timedelta64[D]")
            self._list(ctx, out, slots, AR, dates=month_start(t)[()] + days, report_year=ctx.year - 1)
        # 36 months on the abnormal list: moved to the serious list (the abnormal listing ends, 'other')
        rows = np.flatnonzero(c["active"] & (REASON_TYPE[c["reason"]] == 0)
                              & (c["list_month"] + p.abnormal_3y_months == t) & alive[c["ent"]])
        slots, inv = np.unique(c["ent"][rows], return_inverse=True)
        dates = random_day_in_month(rng, t, size=slots.size)
        new = ~listed[ABNORMAL_3Y, slots]
        self._list(ctx, out, slots[new], ABNORMAL_3Y, dates=dates[new])
        self._remove(ctx, out, rows, R_OTHER, dates=dates[inv])

        # --- hazards and the unreachable-address cascade -------------------------------------------
        ua = p.unreachable_address
        d = np.flatnonzero(ctx.latent.defaulted_now)
        if d.size:
            go = d[rng.random(d.size) < ua.cascade_prob]
            lag = np.round(rng.gamma(ua.cascade_lag_gamma[0], ua.cascade_lag_gamma[1], go.size)).astype(np.int64)
            for m in np.unique(lag):
                self.queue[t + int(m)].append(go[lag == m])
        due = self.queue.pop(t, [])
        casc = np.unique(np.concatenate(due)) if due else np.zeros(0, dtype=np.int64)
        casc = casc[alive[casc] & ~listed[UNREACHABLE, casc]]
        self._list(ctx, out, casc, UNREACHABLE, cause=np.full(casc.size, C_CASCADE, dtype=np.int8))

        u = rng.random((5, n))
        hit = alive & ~listed[UNREACHABLE] & (u[0] < hz(ua.hazard, st))
        self._list(ctx, out, np.flatnonzero(hit), UNREACHABLE)
        hit = alive & ~listed[INSTANT] & (u[1] < hz(p.instant_info_not_filed.hazard, st))
        self._list(ctx, out, np.flatnonzero(hit), INSTANT)
        fd = p.false_disclosure
        mis = ctx.board.get("annual_report_misreported", np.zeros(n, dtype=bool))
        p_fd = hz(fd.hazard, st) * np.where(mis, fd.misreport_multiplier, 1.0)
        hit = alive & ~listed[FALSE_DISCLOSURE] & (u[2] < p_fd)
        self._list(ctx, out, np.flatnonzero(hit), FALSE_DISCLOSURE)
        shells = ctx.ent.shell
        hit = alive & shells & ~listed[FALSE_REGISTRATION] & (u[3] < hz(p.false_registration_materials.hazard, st))
        slots = np.flatnonzero(hit)
        ring = ctx.net.ring_id[slots] >= 0
        self._list(ctx, out, slots, FALSE_REGISTRATION,
                   cause=np.where(ring, C_RING, self._cause(ctx, slots)).astype(np.int8))
        hit = alive & penalty_prev & ~listed[MARKET_VIOLATION] & (u[4] < p.serious_market_violation.prob)
        self._list(ctx, out, np.flatnonzero(hit), MARKET_VIOLATION)

        # --- who lacks the previous year's report on 30 June ---------------------------------------
        if ctx.moy == 6:
            self.ar_year = ctx.year - 1
            self.ar_missing = alive & (ctx.ent.birth_month <= 12 * self.ar_year + 11) & ~filed

        self._flush(out)
        self._refresh_active()
        ab = self.active_by_reason
        b = ctx.board
        b["active_abnormal_list"] = ab[REASON_TYPE == 0].any(axis=0)
        b["active_serious_list"] = ab[REASON_TYPE == 1].any(axis=0)
        b["unreachable"] = ab[UNREACHABLE].copy()
