"""Utilities: electricity (S28), water (S29) and gas (S30) accounts, consumption and payment behaviour.

simulation.md §7.10. Consumption scales with the firm's activity (the tax module's monthly sales on
the board when present, else the proxy S_i/12 x season x v) with utility-specific seasonality and
volume elasticity; bills follow the arrears Markov chains of §7.0, so late payment and supply cuts
lead a default. 5% of accounts are missing from the account-to-USCC map (D16): they consume but
produce no rows, and are recorded in truth/unmapped_utility_accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import Field

from data.simulate.calendar import add_days, month_end, month_index, month_start
from data.simulate.latent import sigmoid
from data.simulate.observe.employment import (
    CAUSES,
    ArrearsChainParams,
    HazardParams,
    arrears_transition,
    lag_days,
)
from data.simulate.params import load_module_params
from kernel.config import FrozenModel

if TYPE_CHECKING:
    from data.simulate.context import MonthContext
    from data.simulate.emit import Emitter

UTILITIES = ("electricity", "water", "gas")


# --- parameters --------------------------------------------------------------------------------------
class TariffChange(FrozenModel):
    from_: str = Field(alias="from")
    factor: float


class ElectricityParams(FrozenModel):
    intensity: dict[str, float]
    industrial_sectors: tuple[str, ...]
    volume_gamma_industrial: float
    volume_gamma_other: float
    season_damping: float
    flat_season_industry_codes: tuple[str, ...]
    noise_logsd: float
    capacity_headroom: float
    load_factor: float
    hours_per_month: float
    standard_kva: tuple[float, ...]
    tariff_large: float
    tariff_small: float
    large_capacity_kva: float
    tariff_change: TariffChange
    arrears: ArrearsChainParams
    disconnect_days: int


class WaterParams(FrozenModel):
    intensity: dict[str, float]
    firm_logsd: float
    volume_power: float
    noise_logsd: float
    bimonthly_threshold_m3: float
    bimonthly_share: float
    tariff: float
    tariff_by_sector: dict[str, float]
    arrears: ArrearsChainParams


class GasParams(FrozenModel):
    intensity: dict[str, float]
    firm_logsd: float
    volume_power: float
    noise_logsd: float
    heating_industry_codes: tuple[str, ...]
    heating_profile: tuple[float, ...] = Field(min_length=12, max_length=12)
    tariff: float
    tariff_change: TariffChange
    arrears: ArrearsChainParams
    suspend_after_arrears_months: int
    suspend_prob: float
    safety_hazard: HazardParams
    safety_consumption_factor: float


class UtilitiesParams(FrozenModel):
    unmapped_share: float
    post_default_stay_prob: float
    sales_ratio_cap: float
    sales_ratio_smoothing: float
    activity_floor: float
    due_day: int
    electricity: ElectricityParams
    water: WaterParams
    gas: GasParams


def sector_values(table: dict[str, float], sector_names: tuple[str, ...], sector: np.ndarray,
                  default: float | None = None) -> np.ndarray:
    """Per-slot value of a {sector: value} table (every sector required unless a default is given)."""
    missing = [s for s in sector_names if s not in table]
    if missing and default is None:
        raise ValueError(f"sector table lacks {missing}")
    vals = np.array([table.get(s, default) for s in sector_names], dtype=np.float64)
    return vals[sector]


def standard_capacity(k_kwh: np.ndarray, p: ElectricityParams) -> np.ndarray:
    """Smallest standard transformer size >= headroom x K / (load factor x hours), capped at the largest."""
    need = p.capacity_headroom * k_kwh / (p.load_factor * p.hours_per_month)
    sizes = np.asarray(p.standard_kva, dtype=np.float64)
    return sizes[np.minimum(np.searchsorted(sizes, need, side="left"), len(sizes) - 1)]


class _Account:
    """Payment state of one utility's accounts over all slots (arrears chain)."""

    def __init__(self, n: int) -> None:
        self.arrears_months = np.zeros(n, dtype=np.int64)   # consecutive unpaid bills
        self.arrears_amount = np.zeros(n)
        self.oldest = np.full(n, -1, dtype=np.int64)        # month of the oldest unpaid bill

    def update(self, t: int, bill: np.ndarray, active: np.ndarray, u: np.ndarray, st: np.ndarray,
               absorbed: np.ndarray, chain: ArrearsChainParams, stay_post_default: float) -> np.ndarray:
        """Apply one month of the chain; returns the mask of accounts unpaid at month end."""
        in_arr = active & (self.arrears_months > 0)
        missed, stays, caught = arrears_transition(u, in_arr, active & (bill > 0), st, absorbed, chain,
                                                   stay_post_default)
        unpaid = missed | stays
        self.oldest = np.where(missed, t, np.where(caught, -1, self.oldest))
        self.arrears_amount = np.where(caught, 0.0, self.arrears_amount + np.where(unpaid, bill, 0.0))
        self.arrears_months = np.where(caught, 0, self.arrears_months + (unpaid & (bill > 0)))
        return unpaid


class UtilitiesModule:
    """S28 electricity_monthly, S29 water_monthly, S30 gas_monthly."""

    name = "utilities"
    sub_items = ("electricity_monthly", "water_monthly", "gas_monthly")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Static account attributes: mapping, base consumption, capacity, meter-reading cycle."""
        self.rng = rng
        self.p: UtilitiesParams = load_module_params(UtilitiesParams, self.name)
        p, ent, n = self.p, ctx.ent, ctx.ent.n_max
        names, sector = ctx.params.sector_names, ent.sector
        self.has = {"electricity": ent.has_elec.copy(), "water": ent.has_water.copy(), "gas": ent.has_gas.copy()}
        self.mapped = {u: rng.random(n) >= p.unmapped_share for u in UTILITIES}
        monthly_sales = ent.sales / 12.0

        e = p.electricity
        self.k_elec = monthly_sales * sector_values(e.intensity, names, sector)
        self.capacity = standard_capacity(self.k_elec, e)
        industrial = ent.sector_is(e.industrial_sectors, names)
        self.gamma = np.where(industrial, e.volume_gamma_industrial, e.volume_gamma_other)
        self.flat_elec = np.isin(ent.industry_code, list(e.flat_season_industry_codes))
        self.tariff_elec = np.where(self.capacity >= e.large_capacity_kva, e.tariff_large, e.tariff_small)

        w = p.water
        self.w_base = (monthly_sales * sector_values(w.intensity, names, sector)
                       * np.exp(w.firm_logsd * rng.standard_normal(n)))
        self.bimonthly = (self.w_base < w.bimonthly_threshold_m3) & (rng.random(n) < w.bimonthly_share)
        self.tariff_water = sector_values(w.tariff_by_sector, names, sector, default=w.tariff)
        self.w_prev = np.zeros(n)

        g = p.gas
        self.g_base = (monthly_sales * sector_values(g.intensity, names, sector)
                       * np.exp(g.firm_logsd * rng.standard_normal(n)))
        self.heating = np.isin(ent.industry_code, list(g.heating_industry_codes))

        self.acct = {u: _Account(n) for u in UTILITIES}
        self.disconnected = np.zeros(n, dtype=bool)
        self.gas_suspended = np.zeros(n, dtype=bool)
        self.t_elec_change = month_index(e.tariff_change.from_)
        self.t_gas_change = month_index(g.tariff_change.from_)
        self.activity = np.ones(n)
        self.activity_started = np.zeros(n, dtype=bool)
        self._lags: dict[str, tuple[int, int]] = {}
        self._truth_written = False

    # -------------------------------------------------------------------------------------------------
    def _write_unmapped(self, ctx: MonthContext, out: Emitter) -> None:
        parts = []
        for u in UTILITIES:
            idx = np.flatnonzero(self.has[u] & ~self.mapped[u])
            parts.append(pd.DataFrame({"slot": idx, "uscc": ctx.ent.uscc[idx], "utility": u}))
        out.emit_table("truth", "unmapped_utility_accounts", pd.concat(parts, ignore_index=True))
        self._truth_written = True

    def _activity(self, ctx: MonthContext, v: np.ndarray, season: np.ndarray) -> np.ndarray:
        """Activity relative to the spec's proxy S_i/12 x season x v, from the tax module's sales if present.

        The ratio carries the sales trend, growth and sustained stops (abandoned firms stop declaring);
        it is smoothed so that the month-to-month lumpiness of declared sales (oil traders trade in 70%
        of months, shells skip months) does not switch the meters on and off.
        """
        sales = ctx.board.get("sales")
        if sales is None:
            return np.ones(ctx.ent.n_max)
        proxy = ctx.ent.sales / 12.0 * season * v
        ok = proxy > 1e-9
        ratio = np.where(ok, np.asarray(sales, dtype=np.float64) / np.where(ok, proxy, 1.0), 1.0)
        ratio = np.clip(np.nan_to_num(ratio, nan=0.0), 0.0, self.p.sales_ratio_cap)
        w = self.p.sales_ratio_smoothing
        fresh = ctx.alive & ~self.activity_started            # a firm's first month starts the average
        self.activity = np.where(fresh, ratio,
                                 np.where(ctx.alive, w * ratio + (1.0 - w) * self.activity, self.activity))
        self.activity_started |= ctx.alive
        # an idle but registered firm still draws a base load (v takes it to zero after a default)
        return np.maximum(self.activity, self.p.activity_floor)

    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """Consumption, bills and the arrears chains every month; rows from t_series on."""
        if not self._lags:
            self._lags = {c: tuple(out.catalog.sub_item(c).lag_days) for c in self.sub_items}
        if not self._truth_written:
            self._write_unmapped(ctx, out)
        p, rng, t, n = self.p, self.rng, ctx.t, ctx.ent.n_max
        alive = ctx.alive
        st = ctx.stress
        absorbed = alive & ~ctx.latent.performing
        v = np.nan_to_num(ctx.volume, nan=0.0, posinf=0.0)
        season = ctx.season()
        season_elec = np.where(self.flat_elec, 1.0, 1.0 + p.electricity.season_damping * (season - 1.0))
        activity = self._activity(ctx, v, season)
        stay = p.post_default_stay_prob

        # electricity ---------------------------------------------------------------------------------
        e = p.electricity
        act_e = alive & self.has["electricity"]
        kwh = (self.k_elec * season_elec * v ** self.gamma * activity
               * np.exp(e.noise_logsd * rng.standard_normal(n)))
        kwh = np.round(np.where(act_e & ~self.disconnected, kwh, 0.0), 0)
        tariff = self.tariff_elec * (e.tariff_change.factor if t >= self.t_elec_change else 1.0)
        bill_e = np.round(kwh * tariff, 2)
        acc = self.acct["electricity"]
        unpaid_e = acc.update(t, bill_e, act_e, rng.random(n), st, absorbed, e.arrears, stay)
        due_oldest = month_start(np.maximum(acc.oldest, 0)) + np.timedelta64(p.due_day - 1, "D")
        days = np.where(acc.arrears_amount > 0, (month_end(t) - due_oldest).astype(np.int64), 0)
        days = np.maximum(days, 0)
        was_cut = self.disconnected.copy()
        self.disconnected = act_e & (acc.arrears_months > 0) & (days >= e.disconnect_days)
        if ctx.emit_series:
            self._emit_elec(ctx, out, act_e, kwh, bill_e, unpaid_e, days, absorbed, was_cut)

        # water ---------------------------------------------------------------------------------------
        w = p.water
        act_w = alive & self.has["water"]
        m3 = (self.w_base * season * v ** w.volume_power * activity
              * np.exp(w.noise_logsd * rng.standard_normal(n)))
        m3 = np.where(act_w, m3, 0.0)
        odd = ctx.moy % 2 == 1
        read = np.where(self.bimonthly, 0.0 if odd else m3 + self.w_prev, m3)
        self.w_prev = m3
        read = np.round(read, 1)
        billing = act_w & (~self.bimonthly | (not odd))
        bill_w = np.round(np.where(billing, read * self.tariff_water, 0.0), 2)
        acc = self.acct["water"]
        unpaid_w = acc.update(t, bill_w, act_w & billing, rng.random(n), st, absorbed, w.arrears, stay)
        if ctx.emit_series:
            self._emit_water(ctx, out, act_w, read, bill_w, unpaid_w, billing, absorbed)

        # gas -----------------------------------------------------------------------------------------
        g = p.gas
        act_g = alive & self.has["gas"]
        season_gas = np.where(self.heating, g.heating_profile[ctx.moy - 1], season_elec)
        safety = act_g & (rng.random(n) < sigmoid(g.safety_hazard.alpha + g.safety_hazard.beta * st))
        gm3 = (self.g_base * season_gas * v ** g.volume_power * activity
               * np.exp(g.noise_logsd * rng.standard_normal(n)))
        gm3 = np.where(act_g & ~self.gas_suspended, gm3, 0.0) * np.where(safety, g.safety_consumption_factor, 1.0)
        gm3 = np.round(gm3, 1)
        tariff_g = g.tariff * (g.tariff_change.factor if t >= self.t_gas_change else 1.0)
        bill_g = np.round(gm3 * tariff_g, 2)
        acc = self.acct["gas"]
        before = acc.arrears_months.copy()
        unpaid_g = acc.update(t, bill_g, act_g, rng.random(n), st, absorbed, g.arrears, stay)
        reached = (before < g.suspend_after_arrears_months) & (acc.arrears_months >= g.suspend_after_arrears_months)
        u_susp = rng.random(n)
        was_susp = self.gas_suspended.copy()
        self.gas_suspended = act_g & (acc.arrears_months > 0) & (was_susp | (reached & (u_susp < g.suspend_prob)))
        if ctx.emit_series:
            flag = self.gas_suspended | was_susp & act_g | safety
            self._emit_gas(ctx, out, act_g, gm3, bill_g, unpaid_g, flag, absorbed)

    # --- emission -----------------------------------------------------------------------------------------
    def _rows(self, ctx: MonthContext, utility: str, active: np.ndarray) -> np.ndarray:
        return np.flatnonzero(active & self.mapped[utility])

    def _available(self, ctx: MonthContext, code: str, k: int) -> np.ndarray:
        return add_days(np.full(k, ctx.last_day), lag_days(self.rng, self._lags[code], k))

    @staticmethod
    def _cause(absorbed: np.ndarray, stressed: np.ndarray) -> np.ndarray:
        """Row cause: post-default rows are cascade, rows in arrears or cut off stress, else background."""
        return CAUSES[np.where(absorbed, 2, np.asarray(stressed, dtype=bool).astype(np.int64))]

    def _emit_elec(self, ctx: MonthContext, out: Emitter, active: np.ndarray, kwh: np.ndarray, bill: np.ndarray,
                   unpaid: np.ndarray, days: np.ndarray, absorbed: np.ndarray, was_cut: np.ndarray) -> None:
        idx = self._rows(ctx, "electricity", active)
        k = idx.size
        acc = self.acct["electricity"]
        out.emit("electricity_monthly", {
            "uscc": ctx.ent.uscc[idx],
            "period_month": np.full(k, ctx.first_day, dtype="datetime64[D]"),
            "consumption_kwh": kwh[idx],
            "contracted_capacity_kva": self.capacity[idx],
            "bill_amount": bill[idx],
            "paid_on_time": ~unpaid[idx],
            "arrears_amount": np.round(acc.arrears_amount[idx], 2),
            "arrears_days": days[idx],
        }, ent=idx, available=self._available(ctx, "electricity_monthly", k),
            cause=self._cause(absorbed[idx], unpaid[idx] | was_cut[idx]))

    def _emit_water(self, ctx: MonthContext, out: Emitter, active: np.ndarray, m3: np.ndarray, bill: np.ndarray,
                    unpaid: np.ndarray, billing: np.ndarray, absorbed: np.ndarray) -> None:
        idx = self._rows(ctx, "water", active)
        k = idx.size
        acc = self.acct["water"]
        in_arr = acc.arrears_amount[idx] > 0
        # months without a meter reading carry no bill: paid_on_time is null unless old bills are overdue
        on_time = np.where(billing[idx], ~unpaid[idx], np.where(in_arr, False, None)).astype(object)
        out.emit("water_monthly", {
            "uscc": ctx.ent.uscc[idx],
            "period_month": np.full(k, ctx.first_day, dtype="datetime64[D]"),
            "consumption_m3": m3[idx],
            "bill_amount": bill[idx],
            "paid_on_time": on_time,
            "arrears_amount": np.round(acc.arrears_amount[idx], 2),
        }, ent=idx, available=self._available(ctx, "water_monthly", k), cause=self._cause(absorbed[idx], in_arr))

    def _emit_gas(self, ctx: MonthContext, out: Emitter, active: np.ndarray, m3: np.ndarray, bill: np.ndarray,
                  unpaid: np.ndarray, suspended: np.ndarray, absorbed: np.ndarray) -> None:
        idx = self._rows(ctx, "gas", active)
        k = idx.size
        acc = self.acct["gas"]
        out.emit("gas_monthly", {
            "uscc": ctx.ent.uscc[idx],
            "period_month": np.full(k, ctx.first_day, dtype="datetime64[D]"),
            "consumption_m3": m3[idx],
            "bill_amount": bill[idx],
            "paid_on_time": ~unpaid[idx],
            "arrears_amount": np.round(acc.arrears_amount[idx], 2),
            "supply_suspended": suspended[idx],
        }, ent=idx, available=self._available(ctx, "gas_monthly", k),
            cause=self._cause(absorbed[idx], unpaid[idx] | suspended[idx]))
