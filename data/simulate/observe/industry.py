"""Industrial efficiency, customs and environmental credit (simulation.md §7.7, §7.8 S22).

S20 `mu_efficiency` and S22 `env_credit` are annual evaluations of year y, computed in December of y
from the year's accumulated sales, taxes, headcount and mean health, published in Q2 of y+1.
S21 `customs_monthly` is a monthly series for customs traders with a customs-credit Markov state
that evolves from the first simulated month; the module writes `customs_dishonest` and
`customs_advanced` to the board for the public-credit evaluation.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import sigmoid
from data.simulate.params import OIL_CHAIN, load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel

MU_CLASSES = np.array(["A", "B", "C", "D"], dtype=object)
ENV_COLOURS = np.array(["green", "blue", "yellow", "red", "black"], dtype=object)
H_FLOOR = -10.0      # far below any default threshold: deeper values carry no extra information


class SalesProxyParams(FrozenModel):
    base_year: int
    noise_logsd: float
    tax_rate: float


class MuEfficiencyParams(FrozenModel):
    sectors: tuple[str, ...]
    require_section_c_code: bool
    sales_threshold: float
    land_threshold_mu: float
    industrial_land_prob: float
    land_m2_median: float
    land_m2_logsd: float
    m2_per_mu: float
    fallback_land_mu_median: float
    fallback_land_mu_logsd: float
    value_added_share: float
    value_added_logsd: float
    rd_mean: dict[str, float]
    rd_mu_loading: float
    rd_concentration: float
    rank_weights: tuple[float, float, float]
    class_shares: tuple[float, float, float, float]


class CustomsParams(FrozenModel):
    advanced_mu_quantile: float
    advanced_sales_min: float
    advanced_lost_below_h: float
    dishonest_hz: tuple[float, float]
    dishonest_review_months: int
    dishonest_revert_prob: float
    import_share: dict[str, float]
    import_share_default: float
    cross_border_share: tuple[float, float]
    p_ship_oil: float
    p_ship_other: float
    trade_logsd: float
    fx: dict[int, float]
    declarations_base: int
    declarations_per_value: float
    hs27_oil: tuple[float, float]
    hs27_other_prob: float
    hs27_other: tuple[float, float]
    bonded: dict[str, tuple[float, float]]
    bonded_default: tuple[float, float]


class EnvCreditParams(FrozenModel):
    eval_rate: dict[str, float]
    eval_rate_default: float
    mu_loading: float
    h_loading: float
    noise_sd: float
    exceedance_loading: float
    exceedance_cap: int
    thresholds: tuple[float, float, float, float]
    permit: dict[str, str]
    permit_default: str
    key_unit_shipbuilding_employees: float
    exceedance_base: float
    exceedance_stress: float


class IndustryParams(FrozenModel):
    sales_proxy: SalesProxyParams
    mu_efficiency: MuEfficiencyParams
    customs: CustomsParams
    env_credit: EnvCreditParams


def draw_lag(rng: np.random.Generator, lag: tuple[int, int], n: int) -> np.ndarray:
    """Publication lags in days, uniform over the catalog's inclusive range."""
    return rng.integers(lag[0], lag[1] + 1, size=n).astype("timedelta64[D]")


def proxy_monthly_sales(ctx: MonthContext, rng: np.random.Generator, base_year: int, noise_logsd: float) -> np.ndarray:
    """Sales_i,t per §7.4 when the tax module is absent: 0 for unborn, exited and dormant firms."""
    ent = ctx.ent
    years = (ctx.t - 12 * base_year) / 12.0
    s = (ent.sales / 12.0 * ctx.season() * np.exp(ent.growth * years) * ctx.volume
         * np.exp(noise_logsd * rng.standard_normal(ent.n_max)))
    return np.where(ctx.alive & ~ctx.latent.dormant, s, 0.0)


class IndustryModule:
    """S20 mu_efficiency, S21 customs_monthly, S22 env_credit."""

    name = "industry"
    sub_items = ("mu_efficiency", "customs_monthly", "env_credit")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        self.p = load_module_params(IndustryParams, "industry")
        cat = load_catalog()
        self.lags = {code: cat.sub_item(code).lag_days for code in self.sub_items}
        ent = ctx.ent
        n = ent.n_max
        names = ctx.params.sector_names
        sector_name = np.array(names, dtype=object)[ent.sector]
        self.sector_name = sector_name
        oil = ent.sector_is(OIL_CHAIN, names)

        # --- S20: coverage and land (static) -------------------------------------------------------
        mp = self.p.mu_efficiency
        industrial = np.isin(sector_name, mp.sectors)
        if mp.require_section_c_code:
            industrial &= np.array([str(c).startswith("C") for c in ent.industry_code], dtype=bool)
        own_land = ent.has_property & (rng.random(n) < mp.industrial_land_prob)
        land_recorded = mp.land_m2_median * np.exp(mp.land_m2_logsd * rng.standard_normal(n)) / mp.m2_per_mu
        land_fallback = mp.fallback_land_mu_median * np.exp(mp.fallback_land_mu_logsd * rng.standard_normal(n))
        above_size = ent.sales >= mp.sales_threshold
        self.land_mu = np.where(own_land, land_recorded, land_fallback)
        self.mu_cover = industrial & ((own_land & (land_recorded >= mp.land_threshold_mu)) | above_size)
        self.rd_mean = np.array([mp.rd_mean.get(s, 0.0) for s in sector_name])

        # --- S21: customs traders (static) ---------------------------------------------------------
        cp = self.p.customs
        self.customs = ent.is_customs.copy()
        mu_cut = np.quantile(ent.mu, cp.advanced_mu_quantile)
        self.adv_eligible = self.customs & (ent.mu >= mu_cut) & (ent.sales >= cp.advanced_sales_min)
        self.adv_lost = np.zeros(n, dtype=bool)
        self.dishonest = np.zeros(n, dtype=bool)
        self.dishonest_since = np.full(n, -1, dtype=np.int64)
        self.import_share = np.array([cp.import_share.get(s, cp.import_share_default) for s in sector_name])
        self.cross_border = rng.uniform(cp.cross_border_share[0], cp.cross_border_share[1], n)
        self.p_ship = np.where(oil, cp.p_ship_oil, cp.p_ship_other)
        self.oil = oil
        self.hs27_trader = oil | (rng.random(n) < cp.hs27_other_prob)
        bonded = np.array([cp.bonded.get(s, cp.bonded_default) for s in sector_name], dtype=np.float64)
        self.bonded_lo, self.bonded_hi = bonded[:, 0], bonded[:, 1]

        # --- S22: evaluated firms, permits and key units (static) ----------------------------------
        ep = self.p.env_credit
        rate = np.array([ep.eval_rate.get(s, ep.eval_rate_default) for s in sector_name])
        self.env_cover = rng.random(n) < rate
        self.permit = np.array([ep.permit.get(s, ep.permit_default) for s in sector_name], dtype=object)
        shipbuilding = sector_name == "shipbuilding_repair"
        self.key_unit = (self.permit == "key") | (shipbuilding & (ent.employees >= ep.key_unit_shipbuilding_employees))

        # --- yearly accumulators -------------------------------------------------------------------
        self.sales_year = np.zeros(n)
        self.h_sum = np.zeros(n)
        self.h_months = np.zeros(n, dtype=np.int64)
        ctx.board["customs_dishonest"] = np.zeros(n, dtype=bool)
        ctx.board["customs_advanced"] = np.zeros(n, dtype=bool)

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        if ctx.moy == 1:
            self.sales_year[:] = 0.0
            self.h_sum[:] = 0.0
            self.h_months[:] = 0
        alive = ctx.alive
        sales = ctx.board.get("sales")
        if sales is None:
            sp = self.p.sales_proxy
            sales = proxy_monthly_sales(ctx, self.rng, sp.base_year, sp.noise_logsd)
        sales = np.where(alive, np.nan_to_num(np.asarray(sales, dtype=np.float64)), 0.0)
        self.sales_year += sales
        # h is floored so that a runaway latent value cannot overflow the exponentials below
        self.h_sum += np.where(alive, np.maximum(ctx.h, H_FLOOR), 0.0)
        self.h_months += alive

        self._customs(ctx, out, sales)
        if ctx.moy == 12 and ctx.emit_events:
            self._mu_efficiency(ctx, out)
            self._env_credit(ctx, out)

    # --- S21 -------------------------------------------------------------------------------------
    def _customs(self, ctx: MonthContext, out: Emitter, sales: np.ndarray) -> None:
        cp, rng, t = self.p.customs, self.rng, ctx.t
        n = ctx.ent.n_max
        trader = self.customs & ctx.alive
        # dishonest spells: hazard entry, a review every 12 months reverts w.p. 0.5
        hz = sigmoid(cp.dishonest_hz[0] + cp.dishonest_hz[1] * np.minimum(ctx.stress, -H_FLOOR))
        new = trader & ~self.dishonest & (rng.random(n) < hz)
        self.dishonest[new] = True
        self.dishonest_since[new] = t
        spell = t - self.dishonest_since
        review = self.dishonest & ~new & (spell > 0) & (spell % cp.dishonest_review_months == 0)
        revert = review & (rng.random(n) < cp.dishonest_revert_prob)
        self.dishonest[revert] = False
        self.dishonest_since[revert] = -1
        # advanced certification is lost for good once health falls below the floor or after a listing
        self.adv_lost |= trader & ((ctx.h < cp.advanced_lost_below_h) | self.dishonest)
        advanced = self.adv_eligible & ~self.adv_lost & trader
        dishonest_now = self.dishonest & trader
        ctx.board["customs_dishonest"] = dishonest_now
        ctx.board["customs_advanced"] = advanced

        if not ctx.emit_series:
            return
        idx = np.flatnonzero(trader)
        k = idx.size
        if k == 0:
            return
        shipped = rng.random(k) < self.p_ship[idx]
        trade = (sales[idx] * self.cross_border[idx] * shipped / self.p_ship[idx]
                 * np.exp(cp.trade_logsd * rng.standard_normal(k)))
        fx = cp.fx.get(ctx.year, cp.fx[min(cp.fx, key=lambda y: abs(y - ctx.year))])
        imp = np.round(trade * self.import_share[idx] / fx, 2)
        exp_ = np.round(trade * (1.0 - self.import_share[idx]) / fx, 2)
        active = (imp + exp_) > 0
        # Pois(1 + trade / 30) in the spec; drawn as 1 + Pois(trade / 30) (same mean) so that a month
        # with declared trade always has at least one declaration
        decl = np.where(active, cp.declarations_base + rng.poisson(trade / cp.declarations_per_value), 0)
        hs27 = np.where(self.oil[idx], rng.uniform(cp.hs27_oil[0], cp.hs27_oil[1], k),
                        np.where(self.hs27_trader[idx], rng.uniform(cp.hs27_other[0], cp.hs27_other[1], k), 0.0))
        bonded = rng.uniform(self.bonded_lo[idx], self.bonded_hi[idx])
        grade = np.full(k, "general", dtype=object)
        grade[advanced[idx]] = "advanced_certified"
        grade[dishonest_now[idx]] = "dishonest"
        cols = {
            "uscc": ctx.ent.uscc[idx],
            "period_month": np.full(k, ctx.first_day),
            "customs_credit_grade": grade,
            "import_value": imp,
            "export_value": exp_,
            "declaration_count": decl.astype(np.int64),
            "hs27_share": np.where(active, np.round(hs27, 4), np.nan),
            "bonded_trade_share": np.where(active, np.round(bonded, 4), np.nan),
        }
        available = ctx.last_day + draw_lag(rng, self.lags["customs_monthly"], k)
        cause = np.where(dishonest_now[idx], "stress", "background").astype(object)
        out.emit("customs_monthly", cols, ent=idx, available=available, cause=cause)

    # --- S20 -------------------------------------------------------------------------------------
    def _mu_efficiency(self, ctx: MonthContext, out: Emitter) -> None:
        mp, rng, ent = self.p.mu_efficiency, self.rng, ctx.ent
        y = ctx.year
        idx = np.flatnonzero(self.mu_cover & ctx.alive & (ent.birth_month <= 12 * y))
        k = idx.size
        if k == 0:
            return
        tax_year = ctx.board.get("total_tax_paid_year")
        annual_sales = self.sales_year[idx]
        tax = (np.asarray(tax_year, dtype=np.float64)[idx] if tax_year is not None
               else self.p.sales_proxy.tax_rate * annual_sales)
        insured = ctx.board.get("insured_count_year_mean")
        staff = np.asarray(insured, dtype=np.float64)[idx] if insured is not None else ent.employees[idx]
        land = self.land_mu[idx]
        va = mp.value_added_share * annual_sales * np.exp(mp.value_added_logsd * rng.standard_normal(k))
        tax_pm = np.maximum(np.nan_to_num(tax), 0.0) / land
        va_pm = va / land
        rd_m = np.clip(self.rd_mean[idx] * np.exp(mp.rd_mu_loading * ctx.mu[idx]), 1e-4, 0.5)
        rd = rng.beta(rd_m * mp.rd_concentration, (1 - rd_m) * mp.rd_concentration)
        with np.errstate(divide="ignore", invalid="ignore"):
            productivity = np.where(staff > 0, va / staff, np.nan)

        w = mp.rank_weights
        cls = np.empty(k, dtype=object)
        district = ent.district[idx]
        edges = np.cumsum(mp.class_shares)[:-1]      # 0.2, 0.7, 0.95 from the top
        for d in np.unique(district):
            sel = np.flatnonzero(district == d)
            m = sel.size
            comp = (w[0] * rankdata(tax_pm[sel]) + w[1] * rankdata(va_pm[sel]) + w[2] * rankdata(rd[sel])) / m
            top_share = (m - rankdata(comp, method="ordinal")) / m     # 0 for the best firm
            cls[sel] = MU_CLASSES[np.searchsorted(edges, top_share, side="right")]
        cols = {
            "uscc": ent.uscc[idx],
            "eval_year": np.full(k, y, dtype=np.int64),
            "eval_class": cls,
            "land_area_mu": np.round(land, 2),
            "tax_per_mu": np.round(tax_pm, 2),
            "value_added_per_mu": np.round(va_pm, 2),
            "rd_expense_ratio": np.round(rd, 4),
            "labor_productivity": np.round(productivity, 2),
        }
        available = ctx.last_day + draw_lag(rng, self.lags["mu_efficiency"], k)
        out.emit("mu_efficiency", cols, ent=idx, available=available, valid_from=available)

    # --- S22 -------------------------------------------------------------------------------------
    def _env_credit(self, ctx: MonthContext, out: Emitter) -> None:
        ep, rng, ent = self.p.env_credit, self.rng, ctx.ent
        y = ctx.year
        idx = np.flatnonzero(self.env_cover & ctx.alive & (ent.birth_month <= 12 * y) & (self.h_months > 0))
        k = idx.size
        if k == 0:
            return
        hbar = self.h_sum[idx] / self.h_months[idx]
        key = self.key_unit[idx]
        lam = ep.exceedance_base * np.exp(ep.exceedance_stress * np.maximum(0.0, -hbar))
        exceed = np.where(key, rng.poisson(lam), 0).astype(np.int64)
        e = (ep.mu_loading * ctx.mu[idx] + ep.h_loading * hbar + rng.normal(0.0, ep.noise_sd, k)
             - ep.exceedance_loading * np.minimum(ep.exceedance_cap, exceed))
        th = np.asarray(ep.thresholds)
        colour = ENV_COLOURS[(e[:, None] <= th[None, :]).sum(axis=1)]
        cols = {
            "uscc": ent.uscc[idx],
            "eval_year": np.full(k, y, dtype=np.int64),
            "env_credit_color": colour,
            "discharge_permit_type": self.permit[idx],
            "key_pollutant_unit": key,
            "online_monitoring_exceedances": exceed,
        }
        available = ctx.last_day + draw_lag(rng, self.lags["env_credit"], k)
        cause = np.where(np.isin(colour, ("red", "black")) & (hbar < 0), "stress", "background").astype(object)
        out.emit("env_credit", cols, ent=idx, available=available, cause=cause, valid_from=available)
