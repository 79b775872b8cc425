"""S05 annual_report and S06 external_guarantees (simulation.md §7.2).

Every firm alive in January of y+1 and born by December y owes a report for y. Its filing outcome
(on time in Jan-Jun, late in Jul-Dec, never) is drawn from h in the month it would file on time, so
that no report dated before a month depends on the latent state after it. Financial figures use
hbar_y (mean h over y), the previous year's sales, taxes and insured headcount from the board, and
the misreporting rules of the spec. Filed reports disclose the guarantor's disclosed guarantee edges.
"""

from __future__ import annotations

import numpy as np

from data.simulate.calendar import add_months, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import sigmoid
from data.simulate.networks import TURNOVER
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

NAT = np.datetime64("NaT", "D")

# filing outcomes of the current cycle
PENDING, ON_TIME, LATE_SCHEDULED, LATE_FILED, NEVER = range(5)


class FilingParams(FrozenModel):
    on_time_intercept: float
    on_time_slope: float
    late_share: float
    defaulted_file_prob: float
    shell_file_prob: float
    on_time_month_weights: tuple[float, float, float, float, float, float]
    late_months: tuple[int, int]
    backfill_prob: float


class EmployeeParams(FrozenModel):
    uplift: tuple[float, float]
    misstate_prob: float
    misstate_logsd: float


class BalanceSheetParams(FrozenModel):
    h_clip: float
    assets_h_loading: float
    assets_noise_logsd: float
    leverage_h_loading: float
    leverage_noise_sd: float
    fragile_leverage_add: float


class IncomeParams(FrozenModel):
    revenue_noise_logsd: float
    misreport_prob: float
    misreport_logsd: float
    inflate_stress: float
    inflate_prob: float
    inflate_factor: float
    margin: dict[str, float]
    margin_h_loading: float
    margin_mu_loading: float
    margin_noise_sd: float
    net_share_small: float
    net_share_other: float
    tax_noise_logsd: float


class GuaranteeParams(FrozenModel):
    principal_noise_logsd: float


class ProxyParams(FrozenModel):
    base_year: int
    tax_rate: float


class AnnualReportParams(FrozenModel):
    filing: FilingParams
    employees: EmployeeParams
    balance_sheet: BalanceSheetParams
    income: IncomeParams
    guarantees: GuaranteeParams
    proxy: ProxyParams


class FilingCycle:
    """Filing outcomes for report year y = current year - 1, drawn month by month.

    Also used by the MSA-lists module as its fallback when no annual-report module runs.
    """

    def __init__(self, params: FilingParams, n: int, rng: np.random.Generator) -> None:
        self.p = params
        self.n = n
        self.rng = rng
        self.year = -1
        self.due = np.zeros(n, dtype=bool)
        self.outcome = np.full(n, PENDING, dtype=np.int8)
        self.submit_date = np.full(n, NAT)
        self.decision_moy = np.zeros(n, dtype=np.int64)
        self.late_moy = np.zeros(n, dtype=np.int64)
        self.u = np.zeros(n)
        self.never_now = np.zeros(0, dtype=np.int64)

    def start(self, ctx: MonthContext) -> None:
        """Open the cycle of report year ctx.year - 1: who owes a report, when each would file."""
        p, rng, n = self.p, self.rng, self.n
        self.year = ctx.year - 1
        self.due = ctx.alive & (ctx.ent.birth_month <= 12 * self.year + 11)
        w = np.asarray(p.on_time_month_weights, dtype=np.float64)
        self.decision_moy = rng.choice(np.arange(1, 7), size=n, p=w / w.sum())
        self.late_moy = rng.integers(p.late_months[0], p.late_months[1] + 1, n)
        self.u = rng.random(n)
        self.outcome = np.where(self.due, PENDING, NEVER).astype(np.int8)
        self.submit_date = np.full(n, NAT)

    def probabilities(self, ctx: MonthContext, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P on time, P late) for slots idx from the current h; absorbed firms and shells capped."""
        p = self.p
        p_on = sigmoid(p.on_time_intercept + p.on_time_slope * ctx.h[idx])
        p_late = p.late_share * (1.0 - p_on)
        cap = np.where(~ctx.latent.performing[idx], p.defaulted_file_prob,
                       np.where(ctx.ent.shell[idx], p.shell_file_prob, 1.0))
        scale = np.minimum(1.0, cap / (p_on + p_late))
        return p_on * scale, p_late * scale

    def step(self, ctx: MonthContext) -> np.ndarray:
        """Advance to month ctx.t; returns the slots that file their report in this month."""
        if ctx.year - 1 != self.year:
            self.start(ctx)
        moy, alive = ctx.moy, ctx.alive
        month0 = 12 * (self.year + 1) - 1          # month index = month0 + moy
        filers: list[np.ndarray] = []
        self.never_now = np.zeros(0, dtype=np.int64)
        if moy <= 6:
            idx = np.flatnonzero(self.due & (self.outcome == PENDING) & (self.decision_moy <= moy) & alive)
            if idx.size:
                p_on, p_late = self.probabilities(ctx, idx)
                u = self.u[idx]
                on = u < p_on
                late = ~on & (u < p_on + p_late)
                self.outcome[idx[on]] = ON_TIME
                self.outcome[idx[late]] = LATE_SCHEDULED
                self.outcome[idx[~on & ~late]] = NEVER
                self.never_now = idx[~on & ~late]
                k = idx[on]
                self.submit_date[k] = random_day_in_month(self.rng, month0 + self.decision_moy[k])
                filers.append(k)
        else:
            # late filings; pending firms that missed the window (slots born mid-cycle) never file
            self.outcome[self.outcome == PENDING] = NEVER
            k = np.flatnonzero((self.outcome == LATE_SCHEDULED) & (self.late_moy <= moy) & alive)
            if k.size:
                self.outcome[k] = LATE_FILED
                self.submit_date[k] = random_day_in_month(self.rng, month0 + np.maximum(self.late_moy[k], 7))
                filers.append(k)
        return np.concatenate(filers) if filers else np.zeros(0, dtype=np.int64)

    @property
    def filed(self) -> np.ndarray:
        return (self.outcome == ON_TIME) | (self.outcome == LATE_FILED)


def _lognormal(rng: np.random.Generator, logsd: float, size: int) -> np.ndarray:
    """LN(1, logsd): median 1."""
    return np.exp(rng.normal(0.0, logsd, size))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class AnnualReportModule:
    """MSA annual reports (S05) and the external guarantees they disclose (S06)."""

    name = "annual_report"
    sub_items = ("annual_report", "external_guarantees")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.p: AnnualReportParams = load_module_params(AnnualReportParams, self.name)
        self.rng = rng
        ent, n = ctx.ent, ctx.ent.n_max
        self.n = n
        self.cycle = FilingCycle(self.p.filing, n, rng)
        sector_names = np.array(ctx.params.sector_names, dtype=object)[ent.sector]
        turnover = np.array([TURNOVER.get(s, 1.0) for s in sector_names])
        self.base_assets = ent.sales / turnover
        self.margin_s = np.array([self.p.income.margin[s] for s in sector_names])
        self.small = (ent.employees < 100) & (ent.sales < 5000)       # micro or small (§7.1 scale)
        # running sums over the current calendar year, and their values for the previous year
        self.h_sum = np.zeros(n)
        self.months = np.zeros(n, dtype=np.int64)
        self.sales_sum = np.zeros(n)
        self.insured_sum = np.zeros(n)
        self.alive_any = np.zeros(n, dtype=bool)
        self.prev_hbar = np.full(n, np.nan)
        self.prev_months = np.zeros(n, dtype=np.int64)
        self.prev_sales = np.zeros(n)
        self.prev_insured = np.full(n, np.nan)
        self.prev_tax = np.full(n, np.nan)
        self.prev_alive_any = ctx.alive.copy()
        self.dec_insured: np.ndarray | None = None
        self.dec_tax: np.ndarray | None = None
        self.accum_year = ctx.year
        self.first_year = ctx.year          # reports for earlier years have no simulated sums to draw on
        # latest filed report per slot (board and the first emission month's state)
        self.last_year = np.full(n, -1, dtype=np.int64)
        self.last_cols: dict[str, np.ndarray] = {}
        self.last_misreported = np.zeros(n, dtype=bool)
        self.owners_equity = np.full(n, np.nan)
        # reports decided 'never' (year -> slots, figures), filed with the firm's next report (补报)
        self.unfiled: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        # guarantee edges, with the values of the latest disclosure per edge
        g = ctx.net.guarantees
        self.g = g
        self.edge_debtor_id = np.where(g.debtor >= 0, ent.uscc[np.maximum(g.debtor, 0)],
                                       ctx.net.persons.person_id[np.maximum(g.debtor_person, 0)]).astype(object)
        m = g.guarantor.size
        self.edge_year = np.full(m, -1, dtype=np.int64)
        self.edge_principal = np.zeros(m)
        self.edge_start = np.full(m, NAT)
        self.emitting = False

    # ---------------------------------------------------------------------------------------------
    def _close_year(self, ctx: MonthContext) -> None:
        """January: freeze last year's means and sums, reset the running ones."""
        with np.errstate(invalid="ignore", divide="ignore"):
            self.prev_hbar = np.where(self.months > 0, self.h_sum / np.maximum(self.months, 1), np.nan)
            proxy_insured = np.where(self.months > 0, self.insured_sum / np.maximum(self.months, 1), np.nan)
        self.prev_months = self.months.copy()
        self.prev_sales = self.sales_sum.copy()
        self.prev_insured = self.dec_insured if self.dec_insured is not None else proxy_insured
        self.prev_tax = self.dec_tax if self.dec_tax is not None else np.full(self.n, np.nan)
        self.prev_alive_any = self.alive_any.copy()
        self.h_sum[:] = 0.0
        self.months[:] = 0
        self.sales_sum[:] = 0.0
        self.insured_sum[:] = 0.0
        self.alive_any[:] = False
        self.dec_insured = None
        self.dec_tax = None

    def _accumulate(self, ctx: MonthContext) -> None:
        alive = ctx.alive
        v = ctx.volume
        self.h_sum += np.where(alive, ctx.h, 0.0)
        self.months += alive
        self.alive_any |= alive
        years = (ctx.t - 12 * self.p.proxy.base_year) / 12.0
        proxy_sales = (ctx.ent.sales / 12 * ctx.season() * np.exp(ctx.ent.growth * years) * v
                       * ~ctx.latent.dormant)
        self.sales_sum += np.where(alive, proxy_sales, 0.0)
        self.insured_sum += np.where(alive, ctx.ent.employees * np.sqrt(v), 0.0)
        if ctx.moy == 12:
            b = ctx.board
            self.dec_insured = b["insured_count_year_mean"].astype(np.float64).copy() \
                if "insured_count_year_mean" in b else None
            self.dec_tax = b["total_tax_paid_year"].astype(np.float64).copy() if "total_tax_paid_year" in b else None

    # ---------------------------------------------------------------------------------------------
    def _report(self, ctx: MonthContext, idx: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The S05 figures of slots idx for report year cycle.year, and whether each misreports."""
        p, rng, ent = self.p, self.rng, ctx.ent
        k = idx.size
        y = self.cycle.year
        mu = ctx.mu[idx]
        hbar = self.prev_hbar[idx]
        hbar = np.where(np.isnan(hbar), ctx.h[idx], hbar)
        bs = p.balance_sheet
        dev = np.clip(hbar - mu, -bs.h_clip, bs.h_clip)
        assets = self.base_assets[idx] * np.exp(bs.assets_h_loading * dev) * _lognormal(rng, bs.assets_noise_logsd, k)
        r = sigmoid(_logit(ent.leverage_base[idx]) - bs.leverage_h_loading * dev
                    + rng.normal(0.0, bs.leverage_noise_sd, k)) + bs.fragile_leverage_add * ent.frag[idx]
        assets = np.round(assets, 2)
        liabilities = np.round(assets * r, 2)
        equity = np.round(assets - liabilities, 2)

        inc = p.income
        simulated = y >= self.first_year
        fallback = ent.sales[idx] * np.exp(ent.growth[idx] * (y - p.proxy.base_year))
        if "annual_sales_last_year" in ctx.board and simulated:
            sales = ctx.board["annual_sales_last_year"][idx].astype(np.float64)
        else:
            sales = np.where(self.prev_months[idx] > 0, self.prev_sales[idx], fallback)
        mis = rng.random(k) < inc.misreport_prob
        factor = np.where(mis, _lognormal(rng, inc.misreport_logsd, k), 1.0)
        inflate = (ctx.stress[idx] > inc.inflate_stress) & (rng.random(k) < inc.inflate_prob)
        factor = factor * np.where(inflate, inc.inflate_factor, 1.0)
        revenue = np.round(np.maximum(0.0, sales) * _lognormal(rng, inc.revenue_noise_logsd, k) * factor, 2)
        m = (self.margin_s[idx] + inc.margin_h_loading * dev + inc.margin_mu_loading * mu
             + rng.normal(0.0, inc.margin_noise_sd, k))
        profit = np.round(revenue * m, 2)
        share = np.where(self.small[idx], inc.net_share_small, inc.net_share_other)
        net = np.round(np.where(profit > 0, profit * share, profit), 2)
        tax = self.prev_tax[idx] if simulated else np.full(k, np.nan)
        tax = np.where(np.isnan(tax), p.proxy.tax_rate * np.maximum(0.0, sales), tax)
        tax_total = np.round(np.maximum(0.0, tax) * _lognormal(rng, inc.tax_noise_logsd, k), 2)

        ep = p.employees
        insured = self.prev_insured[idx]
        insured = np.where(np.isnan(insured), ent.employees[idx], insured)
        emp = insured * rng.uniform(ep.uplift[0], ep.uplift[1], k)
        misstate = rng.random(k) < ep.misstate_prob
        emp = np.where(misstate, emp * _lognormal(rng, ep.misstate_logsd, k), emp)
        cols = {
            "uscc": ent.uscc[idx],
            "report_year": np.full(k, y, dtype=np.int64),
            "submit_date": self.cycle.submit_date[idx],
            "employee_count": np.round(emp).astype(np.int64),
            "total_assets": assets,
            "total_liabilities": liabilities,
            "owners_equity": equity,
            "operating_revenue": revenue,
            "total_profit": profit,
            "net_profit": net,
            "tax_total": tax_total,
        }
        return cols, mis | inflate | misstate

    def _guarantees(self, ctx: MonthContext, idx: np.ndarray) -> np.ndarray:
        """Draw this year's disclosed guarantee rows of filers idx into the per-edge arrays; returns edges."""
        g, y = self.g, self.cycle.year
        debtor = g.debtor
        active = (debtor < 0) | (self.prev_alive_any[np.maximum(debtor, 0)]
                                 & (ctx.ent.birth_month[np.maximum(debtor, 0)] <= 12 * y + 11))
        e = np.flatnonzero(np.isin(g.guarantor, idx) & g.disclosed & active)
        if e.size == 0:
            return e
        self.edge_year[e] = y
        self.edge_principal[e] = np.round(
            g.principal[e] * _lognormal(self.rng, self.p.guarantees.principal_noise_logsd, e.size), 2)
        self.edge_start[e] = random_day_in_month(self.rng, 12 * y + g.renewal_moy[e] - 1)
        return e

    def _guarantee_columns(self, ctx: MonthContext, e: np.ndarray) -> dict[str, np.ndarray]:
        g = self.g
        return {
            "uscc": ctx.ent.uscc[g.guarantor[e]],
            "report_year": self.edge_year[e],
            "debtor_id": self.edge_debtor_id[e],
            "creditor_type": g.creditor_type[e],
            "principal_amount": self.edge_principal[e],
            "debt_start_date": self.edge_start[e],
            "debt_end_date": add_months(self.edge_start[e], 12),
            "guarantee_mode": g.mode[e],
        }

    def _store(self, idx: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        if not self.last_cols:
            self.last_cols = {k: np.empty(self.n, dtype=v.dtype) for k, v in cols.items()}
            self.last_cols["submit_date"][:] = NAT
        for k, v in cols.items():
            self.last_cols[k][idx] = v
        self.last_year[idx] = self.cycle.year
        self.owners_equity[idx] = cols["owners_equity"]

    def _emit_state(self, ctx: MonthContext, out: Emitter) -> None:
        """First emission month: the latest report (and its guarantees) of every alive firm."""
        idx = np.flatnonzero(ctx.alive & (self.last_year >= 0) & (self.last_cols["submit_date"] < ctx.first_day)) \
            if self.last_cols else np.zeros(0, dtype=np.int64)
        if idx.size == 0:
            return
        avail = np.full(idx.size, ctx.first_day)
        cols = {k: v[idx] for k, v in self.last_cols.items()}
        out.emit("annual_report", cols, ent=idx, available=avail, valid_from=cols["submit_date"])
        g = self.g
        keep = np.zeros(self.n, dtype=bool)
        keep[idx] = True
        e = np.flatnonzero(keep[g.guarantor] & (self.edge_year >= 0) & (self.edge_year == self.last_year[g.guarantor]))
        if e.size:
            vf = self.last_cols["submit_date"][g.guarantor[e]]
            out.emit("external_guarantees", self._guarantee_columns(ctx, e), ent=g.guarantor[e],
                     available=np.full(e.size, ctx.first_day), valid_from=vf)

    def _backfill(self, filers: np.ndarray, backfill: np.ndarray) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Filers owing earlier reports file them on the same day (w.p. backfill_prob): (slots, rows) list."""
        found: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        if not self.unfiled:
            return found
        go = filers[self.rng.random(filers.size) < self.p.filing.backfill_prob]
        for year in sorted(self.unfiled):
            slots, cols = self.unfiled[year]
            hit = np.isin(slots, go)
            if not hit.any():
                continue
            k = slots[hit]
            rows = {name: v[hit] for name, v in cols.items()}
            rows["submit_date"] = self.cycle.submit_date[k]
            backfill[k] = rows["submit_date"]
            found.append((k, rows))
            keep = ~hit
            self.unfiled[year] = (slots[keep], {name: v[keep] for name, v in cols.items()})
        return found

    def _prune(self, ctx: MonthContext) -> None:
        """Forget the unfiled reports of firms that are gone."""
        for year in list(self.unfiled):
            slots, cols = self.unfiled[year]
            keep = ctx.alive[slots]
            if not keep.any():
                del self.unfiled[year]
            else:
                self.unfiled[year] = (slots[keep], {name: v[keep] for name, v in cols.items()})

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        if ctx.year != self.accum_year:
            self._close_year(ctx)
            self.accum_year = ctx.year
        self.first_year = ctx.year          # reports for earlier years have no simulated sums to draw on
        self._accumulate(ctx)
        if ctx.emit_events and not self.emitting:
            self._emit_state(ctx, out)
            self.emitting = True

        filers = self.cycle.step(ctx)
        never = np.sort(self.cycle.never_now)
        if never.size:
            cols, _ = self._report(ctx, never)
            year = self.cycle.year
            if year in self.unfiled:
                slots0, cols0 = self.unfiled[year]
                never = np.concatenate([slots0, never])
                cols = {k: np.concatenate([cols0[k], v]) for k, v in cols.items()}
            self.unfiled[year] = (never, cols)
        backfill = np.full(self.n, NAT)
        if filers.size:
            filers = np.sort(filers)
            cols, mis = self._report(ctx, filers)
            self.last_misreported[filers] = mis
            self._store(filers, cols)
            parts = [(filers, cols), *self._backfill(filers, backfill)]
            edges = self._guarantees(ctx, filers)
            if self.emitting:
                ent = np.concatenate([k for k, _ in parts])
                rows = {name: np.concatenate([r[name] for _, r in parts]) for name in cols}
                out.emit("annual_report", rows, ent=ent, available=rows["submit_date"],
                         valid_from=rows["submit_date"])
                if edges.size:
                    gcols = self._guarantee_columns(ctx, edges)
                    submit = self.cycle.submit_date[self.g.guarantor[edges]]
                    out.emit("external_guarantees", gcols, ent=self.g.guarantor[edges], available=submit,
                             valid_from=submit)

        if ctx.moy == 1:
            self._prune(ctx)
        b = ctx.board
        b["annual_report_backfill_date"] = backfill
        b["annual_report_filed"] = self.cycle.filed.copy()
        b["annual_report_submit_date"] = np.where(self.cycle.filed, self.cycle.submit_date, NAT)
        b["annual_report_misreported"] = self.last_misreported.copy()
        b["owners_equity"] = self.owners_equity.copy()
