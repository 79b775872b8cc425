"""S32 oil_trade_license and S33 safety_production (simulation.md §7.12).

Oil licences are held by a fixed share of storage, petrochemical and non-shell oil-trading firms and
by every retail station; each licence is issued once, renewed at expiry while h > -1.5, suspended
after a serious penalty or a work-safety accident (w.p. 0.5), revoked after a major tax violation.
Work safety covers hazchem-relevant and industrial firms (~15%): static licence type, grade and hazard
sources, a 3-year hazchem licence cycle, a rolling 12-month accident count and monthly overdue
rectifications, delivered as a monthly snapshot that gets a new version whenever a value changes.
"""

from __future__ import annotations

import numpy as np

from data.simulate.calendar import add_months, date_to_month, month_end, month_start, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.draws import choice_by_weights
from data.simulate.emit import Emitter
from data.simulate.latent import REVOKED, sigmoid
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

NAT = np.datetime64("NaT", "D")
NONE_YET, VALID, SUSPENDED, LIC_REVOKED, EXPIRED = range(5)
STATUS = (None, "valid", "suspended", "revoked", "expired")
HAZCHEM = ("none", "hazchem_business", "hazchem_safety_production", "hazchem_use")
GRADES = ("none", "level_1", "level_2", "level_3")
CAUSES = ("background", "stress", "cascade")


class OilLicenseParams(FrozenModel):
    holder_prob: dict[str, float]
    retail_code: str
    trader_types: dict[str, float]
    import_types: dict[str, float]
    lng_prob: float
    export_from: str
    issue_window: tuple[str, str]
    validity_years: int
    retail_validity_years: int
    renew_h_threshold: float
    storage_capacity_m3: tuple[float, float]
    retail_capacity_m3: tuple[float, float]
    quota_tonnes: tuple[float, float]
    suspend_prob: float
    suspend_months: tuple[int, int]
    lag_days: tuple[int, int]
    proxy_serious_penalty: tuple[float, float, float, float]
    proxy_major_tax_violation: tuple[float, float]


class SafetyParams(FrozenModel):
    coverage: dict[str, float]
    hazchem_use_manufacturing: float
    validity_years: int
    renewal_fail: tuple[float, float]
    retry_months: int
    level_1_top_share: float
    grade_shares: dict[str, float]
    hazard_sources: dict[str, tuple[int, float]]
    accident_base: float
    accident_factor: dict[str, float]
    rectification_rate: float
    rectification_stress: float
    lag_days: tuple[int, int]


class LicencesParams(FrozenModel):
    stress_cap: float
    oil_license: OilLicenseParams
    safety: SafetyParams




class LicencesModule:
    """FTZ oil-products licences (S32) and work-safety supervision (S33)."""

    name = "licences"
    sub_items = ("oil_trade_license", "safety_production")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.p: LicencesParams = load_module_params(LicencesParams, self.name)
        self.rng = rng
        self.n = ctx.ent.n_max
        sector = np.array(ctx.params.sector_names, dtype=object)[ctx.ent.sector]
        self.sector = sector
        self._setup_oil(ctx, sector)
        self._setup_safety(ctx, sector)
        self.oil_emitting = False
        self.pending: list[dict[str, np.ndarray]] = []

    # --- S32 set-up -------------------------------------------------------------------------------
    def _setup_oil(self, ctx: MonthContext, sector: np.ndarray) -> None:
        op, rng, n, ent = self.p.oil_license, self.rng, self.n, ctx.ent
        retail = ent.industry_code == op.retail_code
        trader = (sector == "oil_trading_bunkering") & ~retail & ~ent.shell
        storage = sector == "oil_gas_storage"
        petro = sector == "petrochemical"
        u = rng.random(n)
        holder = ((retail & (u < op.holder_prob["retail_station"])) | (trader & (u < op.holder_prob["oil_trader"]))
                  | (storage & (u < op.holder_prob["oil_gas_storage"])) | (petro & (u < op.holder_prob["petrochemical"])))
        ltype = np.full(n, None, dtype=object)
        ltype[retail] = "refined_oil_retail"
        ltype[trader] = choice_by_weights(rng, op.trader_types, int(trader.sum()))
        imp = storage | petro
        ltype[imp] = choice_by_weights(rng, op.import_types, int(imp.sum()))
        lng = ~retail & (rng.random(n) < op.lng_prob)
        ltype[lng & (trader | imp)] = "lng_trading"
        holder &= (ltype != None) & ~ent.shell  # noqa: E711 - object array; shells hold no licence
        self.holder = holder
        self.ltype = ltype
        self.retail_lic = ltype == "refined_oil_retail"
        cap = np.full(n, np.nan)
        big = storage | (ltype == "bonded_fuel_bunkering")
        cap[big] = op.storage_capacity_m3[0] * np.exp(rng.normal(0, op.storage_capacity_m3[1], big.sum()))
        cap[self.retail_lic] = op.retail_capacity_m3[0] * np.exp(
            rng.normal(0, op.retail_capacity_m3[1], self.retail_lic.sum()))
        self.capacity = np.round(cap)
        quota = np.full(n, np.nan)
        q = np.isin(ltype, ["crude_oil_import_nonstate", "refined_oil_export"])
        quota[q] = op.quota_tonnes[0] * np.exp(rng.normal(0, op.quota_tonnes[1], q.sum()))
        self.quota = np.round(quota)
        self.issue_date = np.full(n, NAT)
        self.expiry_date = np.full(n, NAT)
        self.status = np.zeros(n, dtype=np.int8)
        self.changed = np.full(n, NAT)             # business date of the latest version
        self.last_available = np.full(n, NAT)
        self.suspend_until = np.full(n, -1, dtype=np.int64)
        self.prev_major = np.zeros(n, dtype=bool)
        self._draw_issue(np.flatnonzero(holder & ~np.isnat(ent.establish_date)), ent.establish_date)

    def _draw_issue(self, idx: np.ndarray, establish: np.ndarray) -> None:
        """issue ~ U(max(establish, 2012 [2020 for export]), 2023); no licence if the window is empty."""
        if idx.size == 0:
            return
        op = self.p.oil_license
        lo = np.maximum(establish[idx], np.datetime64(op.issue_window[0]))
        lo = np.where(self.ltype[idx] == "refined_oil_export", np.maximum(lo, np.datetime64(op.export_from)), lo)
        hi = np.datetime64(op.issue_window[1])
        span = (hi - lo).astype(np.int64)
        ok = span >= 0
        self.holder[idx[~ok]] = False
        idx, lo, span = idx[ok], lo[ok], span[ok]
        self.issue_date[idx] = lo + np.floor(self.rng.random(idx.size) * (span + 1)).astype("timedelta64[D]")
        years = np.where(self.retail_lic[idx], op.retail_validity_years, op.validity_years)
        self.expiry_date[idx] = add_months(self.issue_date[idx], 12 * years)

    # --- S33 set-up -------------------------------------------------------------------------------
    def _setup_safety(self, ctx: MonthContext, sector: np.ndarray) -> None:
        sp, rng, n, ent = self.p.safety, self.rng, self.n, ctx.ent
        cov_p = np.array([sp.coverage.get(s, 0.0) for s in sector])
        use = (sector == "manufacturing_other") & (rng.random(n) < sp.hazchem_use_manufacturing)
        oil_holder = self.holder & (sector == "oil_trading_bunkering")
        covered = (rng.random(n) < cov_p) | use | self.holder
        hz = np.zeros(n, dtype=np.int8)
        hz[(sector == "oil_gas_storage") | (oil_holder & (sector == "oil_trading_bunkering"))] = 1
        hz[sector == "petrochemical"] = 2
        hz[use] = 3
        self.covered = covered
        self.hazchem = hz
        # grade: level_1 for the top mu among covered firms of medium size or more, others by shares
        medium_plus = ~((ent.employees < 100) & (ent.sales < 5000))
        cut = np.quantile(ent.mu[covered], 1 - sp.level_1_top_share) if covered.any() else np.inf
        grade = np.array([GRADES.index(g) for g in choice_by_weights(rng, sp.grade_shares, n)], dtype=np.int8)
        grade[covered & medium_plus & (ent.mu >= cut)] = GRADES.index("level_1")
        self.grade = grade
        src = np.zeros(n, dtype=np.int64)
        for s, (base, lam) in sp.hazard_sources.items():
            m = sector == s
            src[m] = base + rng.poisson(lam, m.sum())
        self.sources = src
        self.acc_factor = np.array([sp.accident_factor.get(s, 1.0) for s in sector])
        self.acc_hist = np.zeros((12, n), dtype=bool)
        self.overdue = np.zeros(n, dtype=np.int64)
        self.hz_expiry = np.full(n, NAT)
        self.hz_check = np.full(n, -1, dtype=np.int64)
        init = np.flatnonzero((hz > 0) & ctx.latent.born)
        days = rng.integers(0, 365 * sp.validity_years, init.size).astype("timedelta64[D]")
        self.hz_expiry[init] = month_start(ctx.t)[()] + days
        self.hz_check[init] = date_to_month(self.hz_expiry[init])
        self.last_emitted: dict[str, np.ndarray] = {
            "license_expiry_date": np.full(n, NAT), "accidents_12m": np.full(n, -1, dtype=np.int64),
            "overdue_hazard_rectifications": np.full(n, -1, dtype=np.int64)}
        self.ever_emitted = np.zeros(n, dtype=bool)

    # --- helpers -----------------------------------------------------------------------------------
    def _cause(self, ctx: MonthContext, idx: np.ndarray) -> np.ndarray:
        st = ctx.stress[idx]
        c = np.where(~ctx.latent.performing[idx], 2, np.where(st > 1.0, 1, 0))
        return np.array(CAUSES, dtype=object)[c]

    def _set_changed(self, idx: np.ndarray, dates: np.ndarray) -> None:
        """Business date of a new version, never before the previous version's."""
        prev = self.changed[idx]
        self.changed[idx] = np.where(np.isnat(prev), dates, np.maximum(dates, prev))

    def _lag(self, lag: tuple[int, int], k: int) -> np.ndarray:
        return self.rng.integers(lag[0], lag[1] + 1, k).astype("timedelta64[D]")

    def _emit_oil(self, ctx: MonthContext, idx: np.ndarray, available: np.ndarray | None = None) -> None:
        """Queue the current version of licences idx (one batch per month, see `_flush_oil`)."""
        if idx.size == 0 or not self.oil_emitting:
            return
        if available is None:
            available = self.changed[idx] + self._lag(self.p.oil_license.lag_days, idx.size)
        prev = self.last_available[idx]
        available = np.where(np.isnat(prev), available, np.maximum(available, prev))   # versions stay in order
        self.last_available[idx] = available
        self.pending.append({
            "uscc": ctx.ent.uscc[idx],
            "license_type": self.ltype[idx],
            "issue_date": self.issue_date[idx],
            "expiry_date": self.expiry_date[idx],
            "storage_capacity_m3": self.capacity[idx],
            "annual_quota_tonnes": self.quota[idx],
            "status": np.array(STATUS, dtype=object)[self.status[idx]],
            "__ent": idx, "__available": available, "__valid_from": self.changed[idx].copy(),
            "__cause": self._cause(ctx, idx),
        })

    def _flush_oil(self, out: Emitter) -> None:
        if not self.pending:
            return
        m = {k: np.concatenate([p[k] for p in self.pending]) for k in self.pending[0]}
        self.pending = []
        ent, avail, vf, cause = m.pop("__ent"), m.pop("__available"), m.pop("__valid_from"), m.pop("__cause")
        out.emit("oil_trade_license", m, ent=ent, available=avail, valid_from=vf, cause=cause)

    # --- S33 monthly --------------------------------------------------------------------------------
    def _step_safety(self, ctx: MonthContext, out: Emitter, st: np.ndarray) -> np.ndarray:
        sp, rng, n, t = self.p.safety, self.rng, self.n, ctx.t
        cov = self.covered & ctx.alive
        born = np.flatnonzero(ctx.latent.born_now & (self.hazchem > 0))
        if born.size:
            self.hz_expiry[born] = add_months(ctx.ent.establish_date[born], 12 * sp.validity_years)
            self.hz_check[born] = date_to_month(self.hz_expiry[born])
        due = np.flatnonzero(cov & (self.hz_check == t))
        if due.size:
            fail = rng.random(due.size) < sigmoid(sp.renewal_fail[0] + sp.renewal_fail[1] * st[due])
            ok = due[~fail]
            on_time = date_to_month(self.hz_expiry[ok]) == t
            start = np.where(on_time, self.hz_expiry[ok], random_day_in_month(rng, t, size=ok.size))
            self.hz_expiry[ok] = add_months(start, 12 * sp.validity_years)
            self.hz_check[ok] = date_to_month(self.hz_expiry[ok])
            self.hz_check[due[fail]] = t + sp.retry_months
        accident = cov & (rng.random(n) < sp.accident_base * (1 + st) * self.acc_factor)
        self.acc_hist[t % 12] = accident
        self.overdue = np.where(cov, rng.poisson(sp.rectification_rate * (1 + sp.rectification_stress * st)), 0)

        if ctx.emit_series:
            acc12 = self.acc_hist.sum(axis=0).astype(np.int64)
            le = self.last_emitted
            changed = (~self.ever_emitted | (acc12 != le["accidents_12m"]) | (self.overdue != le["overdue_hazard_rectifications"])
                       | (self.hz_expiry.astype(np.int64) != le["license_expiry_date"].astype(np.int64)))
            idx = np.flatnonzero(cov & changed)
            if idx.size:
                end = month_end(t)[()]
                cols = {
                    "uscc": ctx.ent.uscc[idx],
                    "hazchem_license_type": np.array(HAZCHEM, dtype=object)[self.hazchem[idx]],
                    "license_expiry_date": np.where(self.hazchem[idx] > 0, self.hz_expiry[idx], NAT),
                    "safety_standardization_grade": np.array(GRADES, dtype=object)[self.grade[idx]],
                    "major_hazard_sources": self.sources[idx],
                    "accidents_12m": acc12[idx],
                    "overdue_hazard_rectifications": self.overdue[idx],
                }
                out.emit("safety_production", cols, ent=idx, available=end + self._lag(sp.lag_days, idx.size),
                         valid_from=np.full(idx.size, end), cause=self._cause(ctx, idx))
                le["accidents_12m"][idx] = acc12[idx]
                le["overdue_hazard_rectifications"][idx] = self.overdue[idx]
                le["license_expiry_date"][idx] = self.hz_expiry[idx]
                self.ever_emitted[idx] = True
        return accident

    # --- S32 monthly --------------------------------------------------------------------------------
    def _board_or_proxy(self, ctx: MonthContext, st: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(serious penalty this month, major tax violation newly active) from the board or proxies."""
        op, rng, n, b = self.p.oil_license, self.rng, self.n, ctx.board
        if "serious_penalty_now" in b:
            serious = b["serious_penalty_now"].astype(bool)
        else:
            a, beta, s0, s1 = op.proxy_serious_penalty
            serious = rng.random(n) < sigmoid(a + beta * st) * (s0 + s1 * np.minimum(2.0, st))
        if "major_tax_violation_active" in b:
            major = b["major_tax_violation_active"].astype(bool)
            new = major & ~self.prev_major
            self.prev_major = major.copy()
        else:
            a, beta = op.proxy_major_tax_violation
            new = rng.random(n) < sigmoid(a + beta * st)
        return serious & ctx.alive, new & ctx.alive

    def _step_oil(self, ctx: MonthContext, st: np.ndarray, accident: np.ndarray) -> None:
        op, rng, t = self.p.oil_license, self.rng, ctx.t
        if ctx.emit_events and not self.oil_emitting:
            self.oil_emitting = True
            idx = np.flatnonzero((self.status != NONE_YET) & ctx.alive)
            self._emit_oil(ctx, idx, available=ctx.first_day + self._lag(op.lag_days, idx.size))
        born = np.flatnonzero(ctx.latent.born_now & self.holder & np.isnat(self.issue_date))
        self._draw_issue(born, ctx.ent.establish_date)
        s = self.status
        held = (s == VALID) | (s == SUSPENDED)

        issue = np.flatnonzero(self.holder & (s == NONE_YET) & ctx.alive
                               & (date_to_month(np.where(np.isnat(self.issue_date), np.datetime64("2200-01-01"),
                                                         self.issue_date)) <= t))
        s[issue] = VALID
        self._set_changed(issue, self.issue_date[issue])
        self._emit_oil(ctx, issue)

        gone = np.flatnonzero(held & ~ctx.alive)
        s[gone] = np.where(ctx.latent.status[gone] == REVOKED, LIC_REVOKED, EXPIRED)
        self._set_changed(gone, random_day_in_month(rng, t, size=gone.size))
        self._emit_oil(ctx, gone)

        held = (s == VALID) | (s == SUSPENDED)
        exp = np.flatnonzero(held & (date_to_month(np.where(held, self.expiry_date, np.datetime64("1970-01-01"))) == t))
        renew = ctx.h[exp] > op.renew_h_threshold
        k = exp[renew]
        self._set_changed(k, self.expiry_date[k])
        years = np.where(self.retail_lic[k], op.retail_validity_years, op.validity_years)
        self.expiry_date[k] = add_months(self.expiry_date[k], 12 * years)
        lapse = exp[~renew]
        s[lapse] = EXPIRED
        self._set_changed(lapse, self.expiry_date[lapse])
        self._emit_oil(ctx, exp)

        serious, major = self._board_or_proxy(ctx, st)
        held = (s == VALID) | (s == SUSPENDED)
        rev = np.flatnonzero(held & major)
        s[rev] = LIC_REVOKED
        self._set_changed(rev, random_day_in_month(rng, t, size=rev.size))
        self._emit_oil(ctx, rev)

        back = np.flatnonzero((s == SUSPENDED) & (self.suspend_until == t))
        s[back] = VALID
        self._set_changed(back, random_day_in_month(rng, t, size=back.size))
        self._emit_oil(ctx, back)

        trigger = (s == VALID) & (serious | accident)
        sus = np.flatnonzero(trigger & (rng.random(self.n) < op.suspend_prob))
        s[sus] = SUSPENDED
        self.suspend_until[sus] = t + rng.integers(op.suspend_months[0], op.suspend_months[1] + 1, sus.size)
        self._set_changed(sus, random_day_in_month(rng, t, size=sus.size))
        self._emit_oil(ctx, sus)

    def step(self, ctx: MonthContext, out: Emitter) -> None:
        st = np.minimum(ctx.stress, self.p.stress_cap)
        accident = self._step_safety(ctx, out, st)
        self._step_oil(ctx, st, accident)
        self._flush_oil(out)
        ctx.board["safety_accident_now"] = accident
        ctx.board["oil_license_active"] = self.status == VALID
