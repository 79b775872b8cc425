"""Real property, IP, movable collateral and vessels: S25, S26, S27, S31 (simulation.md §7.9, §7.11).

Four registers with their own state, stepped in a fixed order from one random stream:

* S25 `real_property_rights` (list): 1-3 rights per property holder, registered at acquisition; new
  versions when a court seizure is registered (post-default cascade or a preservation seizure of a
  stressed firm in litigation) or cleared, and when an expired use term is renewed. Assessed values
  follow a price index (+3%/year to 2021, -2%/year after) and are re-assessed at every version.
* S26 `ip_assets` (monthly snapshot): zero-inflated holdings by sector that grow with grants of the
  firm's own applications, lapse under stress, and carry IP pledges; a version whenever a count changes.
* S27 `movable_collateral_registry` (event list): Poisson registrations whose rate rises with distress;
  each registration is later cancelled, amended or expired, re-emitted as a row with the same key.
* S31 `vessels` (list): fleets by sector, with rolling 24-month detention and penalty counters; a version
  whenever a counter changes.

Board keys written (arrays over all slots, 万元 unless stated):
* `property_value`: assessed value of the unseized rights at the current price index;
* `free_property_value`: products_and_demands.md's sum over unseized non-sea rights of
  max(0, assessed_value - mortgage_amount); `sea_area_value`: the same over sea-area use rights;
* `vessel_value`: the whole fleet by the §7.11 value model; `vessel_value_est`: its unmortgaged vessels;
* `bunkering_supplier` (bool): the licensed bunkering suppliers drawn here (they own the bunkering
  tankers); the licence module steps later and may align its bunkering licences with it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data.simulate.calendar import add_months, month_end, month_start, random_day_in_month
from data.simulate.compact import full_object, shared_strings
from data.simulate.context import MonthContext
from data.simulate.draws import choice_by_weights, lag_days, pick_rows
from data.simulate.emit import Emitter
from data.simulate.networks import hex_ids
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel

# --- vessel value model (simulation.md §7.11); public because products use it (vessel_value_est) ------
VESSEL_TYPES = ("oil_tanker", "bunkering_tanker", "chemical_tanker", "bulk_carrier", "container", "general_cargo",
                "fishing_vessel", "engineering_vessel", "tug_or_service", "other")
VESSEL_UNIT_NEW = {"oil_tanker": 1.0, "bunkering_tanker": 1.0, "chemical_tanker": 1.3, "bulk_carrier": 0.6,
                   "container": 0.8, "general_cargo": 0.6, "fishing_vessel": 2.0, "engineering_vessel": 1.5,
                   "tug_or_service": 3.0, "other": 0.8}   # 万元 per GT, new
VESSEL_DEPRECIATION = 0.045      # per year of age
VESSEL_RESIDUAL_FLOOR = 0.2
VESSEL_CYCLE_LOADING = 0.3       # on the shipping sector factor F_shipping,t
_UNIT_BY_CODE = np.array([VESSEL_UNIT_NEW[v] for v in VESSEL_TYPES])
_FISHING = VESSEL_TYPES.index("fishing_vessel")


def vessel_value_estimate(vessel_type: np.ndarray | list[str], gross_tonnage: np.ndarray, build_year: np.ndarray,
                          as_of_year: float | np.ndarray, shipping_factor: float = 0.0) -> np.ndarray:
    """Vessel value (万元): GT x unit_new(type) x max(0.2, 1 - 0.045 age) x exp(0.3 F_shipping) (not fishing).

    Products compute `vessel_value_est` from observable fields; they do not know F_shipping and pass 0.
    Unknown types are valued as 'other'.
    """
    codes = np.array([VESSEL_TYPES.index(v) if v in VESSEL_UNIT_NEW else VESSEL_TYPES.index("other")
                      for v in np.asarray(vessel_type, dtype=object).ravel()], dtype=np.int64)
    return _vessel_value(codes.reshape(np.shape(vessel_type)), np.asarray(gross_tonnage, dtype=np.float64),
                         np.asarray(build_year, dtype=np.float64), as_of_year, shipping_factor)


def _vessel_value(codes: np.ndarray, gt: np.ndarray, build_year: np.ndarray, as_of_year: float | np.ndarray,
                  shipping_factor: float) -> np.ndarray:
    age = np.maximum(0.0, np.asarray(as_of_year, dtype=np.float64) - build_year)
    residual = np.maximum(VESSEL_RESIDUAL_FLOOR, 1.0 - VESSEL_DEPRECIATION * age)
    cycle = np.where(codes == _FISHING, 1.0, np.exp(VESSEL_CYCLE_LOADING * shipping_factor))
    return gt * _UNIT_BY_CODE[codes] * residual * cycle


# --- parameters ---------------------------------------------------------------------------------------
class PropertyParams(FrozenModel):
    n_rights_probs: tuple[float, ...]
    first_parcel_months: int
    sea_share: dict[str, float]
    sea_purpose: dict[str, dict[str, float]]
    purpose: dict[str, dict[str, float]]
    area: dict[str, tuple[float, float]]
    land_price: dict[str, float]
    building_price: float
    office_price: dict[str, float]
    sea_price: dict[str, float]
    value_logsd: float
    price_base_year: int
    price_growth: float
    price_peak_year: int
    price_decline: float
    term_years: dict[str, int]
    renew_min_h: float
    mortgage_base: float
    mortgage_leverage: float
    mortgage_ltv: tuple[float, float]
    seizure_cascade_prob: float
    seizure_cascade_lag: tuple[int, int]
    seizure_hz: tuple[float, float]
    seizure_min_hold: int
    seizure_max_hold: int
    seizure_fallback_hold: tuple[int, int]
    litigation_proxy_stress: float


class IpParams(FrozenModel):
    manufacturing_sectors: tuple[str, ...]
    invention_zero: float
    invention_zero_manufacturing: float
    invention_mean: float
    invention_size: float
    invention_mu: float
    utility_zero: float
    utility_zero_manufacturing: float
    utility_mean: float
    utility_size: float
    design_zero: float
    design_mean: float
    trademark_zero: dict[str, float]
    trademark_mean: float
    software_zero: float
    software_zero_prefix: dict[str, float]
    software_mean: float
    application_rate: float
    application_base: float
    application_base_zero: float
    invention_application_share: float
    grant_prob: tuple[float, float]
    grant_lag_invention: tuple[int, int]
    grant_lag_utility: tuple[int, int]
    lapse_annual: float
    lapse_stress: float
    other_growth_annual: float
    pledge_hz: tuple[float, float]
    pledge_amount: tuple[float, float]
    pledge_months: tuple[int, int]


class CollateralParams(FrozenModel):
    rate: dict[str, float]
    stress_threshold: float
    types: dict[str, dict[str, float]]
    categories: dict[str, dict[str, float]]
    categories_by_sector: dict[str, dict[str, dict[str, float]]]
    amount: tuple[float, float]
    amount_sales_ref: float
    amount_sales_elasticity: float
    party_mix: dict[str, float]
    party_stress_threshold: float
    party_stress_shift: dict[str, float]
    cancel_months: tuple[int, int]
    amend_prob: float
    never_cancel_prob: float
    expire_months: int


class VesselParams(FrozenModel):
    fishery_prob: float
    fishery_extra: float
    carrier_prefix: str
    carrier_prob: float
    other_shipping_prob: float
    merchant_extra: float
    merchant_mix: dict[str, float]
    bunkering_supplier_prob: float
    bunkering_prob: float
    bunkering_extra: float
    storage_tug_prob: float
    shipbuilder_prob: float
    aquatic_prob: float
    aquatic_count: tuple[int, int]
    tonnage: dict[str, tuple[float, float]]
    build_age: tuple[int, int]
    build_age_fishing: tuple[int, int]
    earliest_build_year: int
    first_acquisition_floor: str
    entrant_first_months: int
    mortgage_prob: float
    mortgage_value_share: float
    psc_base: float
    psc_stress: float
    psc_age_scale: float
    penalty_base: float
    window_months: int
    shipping_sector: str


class AssetsParams(FrozenModel):
    stress_cap: float
    real_property: PropertyParams
    ip: IpParams
    collateral: CollateralParams
    vessels: VesselParams


# --- small helpers --------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def _by_sector(mapping: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Per-sector values of a sector-keyed map with a `default` entry."""
    return np.array([mapping.get(s, mapping.get("default", 0.0)) for s in names], dtype=np.float64)








def _ln(rng: np.random.Generator, median: float, logsd: float, n: int) -> np.ndarray:
    return median * np.exp(logsd * rng.standard_normal(n))


def _queue_push(queue: dict[int, list[np.ndarray]], months: np.ndarray, items: np.ndarray) -> None:
    for m in np.unique(months):
        queue[int(m)].append(items[months == m])


def _queue_pop(queue: dict[int, list[np.ndarray]], t: int) -> np.ndarray:
    parts = queue.pop(t, [])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _days_between(a: np.ndarray, b: np.ndarray | np.datetime64) -> np.ndarray:
    return (np.asarray(b, dtype="datetime64[D]") - np.asarray(a, dtype="datetime64[D]")).astype(np.int64)


def _year_frac(t: int) -> float:
    return t // 12 + (t % 12) / 12.0


# --- S25 real property rights ---------------------------------------------------------------------------
_OFFICE_LIKE = ("commercial_office", "residential")


class _Property:
    code = "real_property_rights"

    def setup(self, ctx: MonthContext, rng: np.random.Generator, p: PropertyParams) -> None:
        self.rng, self.p = rng, p
        self.lag = load_catalog().sub_item(self.code).lag_days
        ent, names = ctx.ent, ctx.params.sector_names
        self.end_date = month_end(ctx.params.t_end)[()]
        holders = np.flatnonzero(ent.has_property)
        probs = np.asarray(p.n_rights_probs, dtype=np.float64)
        k = rng.choice(np.arange(1, probs.size + 1), size=holders.size, p=probs / probs.sum())
        slot = np.repeat(holders, k)
        n_r = slot.size
        starts = np.cumsum(k) - k
        start = np.repeat(starts, k)
        rank = np.arange(n_r) - start
        sector = ent.sector[slot]
        sea = rng.random(n_r) < _by_sector(p.sea_share, names)[sector]
        ns = (~sea).astype(np.int64)
        cum = np.cumsum(ns)
        ns_rank = cum - 1 - (cum[start] - ns[start]) if n_r else cum
        n_ns = np.repeat(np.add.reduceat(ns, starts), k) if n_r else ns
        pair, pos = ns_rank // 2, ns_rank % 2
        single = ~sea & (pos == 0) & (ns_rank == n_ns - 1)
        # parcels: a land + building pair or one sea area; they share purpose, date and mortgage
        key = slot.astype(np.int64) * 8 + np.where(sea, 4 + rank, pair)
        _, first_of, parcel = np.unique(key, return_index=True, return_inverse=True)
        n_p = first_of.size
        p_slot, p_sea = slot[first_of], sea[first_of]
        p_purpose = np.empty(n_p, dtype=object)
        for s, name in enumerate(names):
            for is_sea, table in ((True, p.sea_purpose), (False, p.purpose)):
                sel = np.flatnonzero((ent.sector[p_slot] == s) & (p_sea == is_sea))
                if sel.size:
                    p_purpose[sel] = choice_by_weights(rng, table.get(name, table["default"]), sel.size)
        p_first = np.zeros(n_p, dtype=bool)
        p_first[parcel[rank == 0]] = True
        p_offset = rng.integers(0, int(p.first_parcel_months * 30.44) + 1, n_p)
        p_frac = rng.random(n_p)
        p_mort = rng.random(n_p) < p.mortgage_base + p.mortgage_leverage * ent.leverage_base[p_slot]
        p_ltv = rng.uniform(p.mortgage_ltv[0], p.mortgage_ltv[1], n_p)

        purpose = p_purpose[parcel]
        office_like = np.isin(purpose, _OFFICE_LIKE)
        rtype = np.where(sea, "sea_area_use", np.where(pos == 1, "building_ownership", "state_land_use")).astype(object)
        coin = rng.random(n_r) < 0.5
        rtype[single] = np.where(office_like[single] | coin[single], "building_ownership", "state_land_use")
        area_key = np.where(sea, "sea", np.where(rtype == "building_ownership",
                                                 np.where(office_like, "building_office", "building_industrial"),
                                                 np.where(office_like, "land_commercial", "land_industrial")))
        area = np.zeros(n_r)
        for a_key, (median, sd) in p.area.items():
            sel = np.flatnonzero(area_key == a_key)
            area[sel] = _ln(rng, median, sd, sel.size)
        price = np.zeros(n_r)
        land = rtype == "state_land_use"
        price[land] = [p.land_price[x] for x in purpose[land]]
        bld = rtype == "building_ownership"
        district = ent.district[slot]
        price[bld & ~office_like] = p.building_price
        office_sel = bld & office_like
        price[office_sel] = [p.office_price.get(d, min(p.office_price.values())) for d in district[office_sel]]
        price[sea] = [p.sea_price.get(x, p.sea_price["port_wharf"]) for x in purpose[sea]]
        self.base_value = area * price / 10_000 * np.exp(p.value_logsd * rng.standard_normal(n_r))
        self.area = np.round(area, 2)
        self.term = np.array([p.term_years[x] for x in purpose], dtype=np.int64)
        self.right_id = hex_ids(rng, "R_", n_r)
        self.slot, self.rtype, self.purpose = slot, shared_strings(rtype), purpose
        self.first, self.offset, self.frac = p_first[parcel], p_offset[parcel], p_frac[parcel]
        self.mortgaged, self.ltv = p_mort[parcel], p_ltv[parcel]
        self.mort_amount = np.zeros(n_r)
        self.acq = np.full(n_r, np.datetime64("NaT"), dtype="datetime64[D]")
        self.expiry = self.acq.copy()
        self.vdate = self.acq.copy()
        self.active = np.zeros(n_r, dtype=bool)
        self.emitted = np.zeros(n_r, dtype=bool)
        self.seized = np.zeros(n_r, dtype=bool)
        self.cause = full_object(n_r, "background")
        n = ent.n_max
        self.seized_since = np.full(n, -1, dtype=np.int64)
        self.clear_at = np.full(n, -1, dtype=np.int64)
        self.queue: dict[int, list[np.ndarray]] = defaultdict(list)
        self._place(ctx, np.flatnonzero(ctx.latent.born[slot]))

    def _place(self, ctx: MonthContext, idx: np.ndarray) -> None:
        """Acquisition and expiry dates of rights whose holder has just been born."""
        if idx.size == 0:
            return
        est = ctx.ent.establish_date[self.slot[idx]]
        span = np.maximum(0, _days_between(est, self.end_date))
        off = np.where(self.first[idx], self.offset[idx], np.floor(self.frac[idx] * span).astype(np.int64))
        self.acq[idx] = est + off.astype("timedelta64[D]")
        self.expiry[idx] = add_months(self.acq[idx], 12 * self.term[idx])

    def price_index(self, t: int) -> float:
        p = self.p
        y = _year_frac(t)
        up = min(y, p.price_peak_year + 1) - p.price_base_year
        down = max(0.0, y - (p.price_peak_year + 1))
        return float((1 + p.price_growth) ** up * (1 - p.price_decline) ** down)

    def step(self, ctx: MonthContext, out: Emitter, h: np.ndarray, st: np.ndarray) -> None:
        t, rng, p = ctx.t, self.rng, self.p
        if ctx.latent.born_now.any():
            self._place(ctx, np.flatnonzero(ctx.latent.born_now[self.slot]))
        alive = ctx.alive
        owner_alive = alive[self.slot]
        index = self.price_index(t)
        if t == ctx.params.t_events:
            dump = np.flatnonzero(self.active & owner_alive)
            self._emit(ctx, out, dump, self.vdate[dump], month_start(t)[()], index,
                       np.where(self.seized[dump], self.cause[dump], "background"))
        first, last = ctx.first_day, ctx.last_day

        new = ~self.active & (self.acq <= last) & owner_alive
        self.active |= new
        self.vdate[new] = self.acq[new]
        self.mort_amount[new] = np.where(self.mortgaged[new], self.ltv[new] * self.base_value[new] * index, 0.0)
        changed = np.zeros_like(new)

        # expired use terms (15-year aquaculture areas) are renewed by firms in working order
        due = self.active & (self.expiry <= last) & owner_alive & (h[self.slot] > p.renew_min_h)
        if due.any():
            self.expiry[due] = add_months(self.expiry[due], 12 * self.term[due])
            changed |= due

        # seizures: post-default cascade, then preservation seizures of stressed firms in litigation
        if ctx.latent.defaulted_now.any():
            d = np.flatnonzero(ctx.latent.defaulted_now & ctx.ent.has_property)
            hit = d[rng.random(d.size) < p.seizure_cascade_prob]
            lag = rng.integers(p.seizure_cascade_lag[0], p.seizure_cascade_lag[1] + 1, hit.size)
            _queue_push(self.queue, t + lag, hit)
        n = ctx.ent.n_max
        holding = np.bincount(self.slot[self.active & ~self.seized], minlength=n) > 0
        cascade = _queue_pop(self.queue, t)
        cascade = np.unique(cascade[holding[cascade] & alive[cascade] & (self.seized_since[cascade] < 0)])
        in_lit = ctx.board.get("in_litigation")
        lit = (np.asarray(in_lit, dtype=bool) if in_lit is not None
               else (ctx.months_since_default >= 0) | (st > p.litigation_proxy_stress))
        cand = holding & alive & ctx.latent.performing & lit & (st > 0) & (self.seized_since < 0)
        cand[cascade] = False
        cand = np.flatnonzero(cand)
        stress_hit = cand[rng.random(cand.size) < _sigmoid(p.seizure_hz[0] + p.seizure_hz[1] * st[cand])]
        cause_now = np.full(self.slot.size, "background", dtype=object)
        for slots, cause in ((cascade, "cascade"), (stress_hit, "stress")):
            if slots.size == 0:
                continue
            self.seized_since[slots] = t
            self.clear_at[slots] = t + rng.integers(p.seizure_fallback_hold[0], p.seizure_fallback_hold[1] + 1,
                                                    slots.size)
            mark = np.zeros(n, dtype=bool)
            mark[slots] = True
            r = self.active & ~self.seized & mark[self.slot]
            self.seized[r] = True
            self.cause[r] = cause
            cause_now[r] = cause
            changed |= r
        since = self.seized_since
        held = t - since
        if in_lit is not None:
            clear = (since >= 0) & (held > 0) & (((held >= p.seizure_min_hold) & ~lit) | (held >= p.seizure_max_hold))
        else:
            clear = (since >= 0) & (held > 0) & (t >= self.clear_at)
        if clear.any():
            r = self.seized & clear[self.slot]
            self.seized[r] = False
            cause_now[r] = self.cause[r]
            changed |= r
            self.seized_since[clear] = -1
        if changed.any():
            touched = np.unique(self.slot[changed])
            day = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
            day[touched] = random_day_in_month(rng, t, size=touched.size)
            self.vdate[changed] = day[self.slot[changed]]

        if ctx.emit_events:
            fresh = np.flatnonzero(new & (self.acq >= first))
            self._emit(ctx, out, fresh, self.acq[fresh], self.acq[fresh], index, cause_now[fresh])
            again = np.flatnonzero(changed & ~new & self.emitted & owner_alive)
            self._emit(ctx, out, again, self.vdate[again], self.vdate[again], index, cause_now[again])
        value = self.base_value * index
        keep = self.active & ~self.seized
        ctx.board["property_value"] = np.bincount(self.slot[keep], weights=value[keep], minlength=n)
        free = np.maximum(0.0, value - self.mort_amount)
        sea = self.rtype == "sea_area_use"
        ctx.board["free_property_value"] = np.bincount(self.slot[keep & ~sea], weights=free[keep & ~sea], minlength=n)
        ctx.board["sea_area_value"] = np.bincount(self.slot[keep & sea], weights=free[keep & sea], minlength=n)

    def _emit(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, valid_from: np.ndarray,
              anchor: np.ndarray | np.datetime64, index: float, cause: np.ndarray) -> None:
        if idx.size == 0:
            return
        self.emitted[idx] = True
        available = np.asarray(anchor, dtype="datetime64[D]") + lag_days(self.rng, idx.size, self.lag)
        out.emit(self.code, {
            "uscc": ctx.ent.uscc[self.slot[idx]],
            "right_id": self.right_id[idx],
            "right_type": self.rtype[idx],
            "land_use_purpose": self.purpose[idx],
            "area_m2": self.area[idx],
            "acquisition_date": self.acq[idx],
            "expiry_date": self.expiry[idx],
            "assessed_value": np.round(self.base_value[idx] * index, 2),
            "mortgage_registered": self.mortgaged[idx],
            "mortgage_amount": np.round(self.mort_amount[idx], 2),
            "seizure_flag": self.seized[idx],
        }, ent=self.slot[idx], available=available, cause=np.asarray(cause, dtype=object),
            valid_from=np.asarray(valid_from, dtype="datetime64[D]"))


# --- S26 IP assets --------------------------------------------------------------------------------------
_IP_FIELDS = ("invention_patents_granted", "utility_model_patents", "design_patents", "trademarks_registered",
              "software_copyrights", "patent_applications_12m", "ip_pledge_count", "ip_pledge_amount")


class _Ip:
    code = "ip_assets"

    def setup(self, ctx: MonthContext, rng: np.random.Generator, p: IpParams) -> None:
        self.rng, self.p = rng, p
        self.lag = load_catalog().sub_item(self.code).lag_days
        ent, names = ctx.ent, ctx.params.sector_names
        n = ent.n_max
        manuf = ent.sector_is(tuple(p.manufacturing_sectors), names)
        z, mu = ent.z_size, ent.mu

        def zero_inflated(zero: np.ndarray | float, mean: np.ndarray | float) -> np.ndarray:
            nonzero = rng.random(n) >= zero
            return np.where(nonzero, 1 + rng.poisson(mean, n), 0).astype(np.int64)

        self.inv = zero_inflated(np.where(manuf, p.invention_zero_manufacturing, p.invention_zero),
                                 p.invention_mean * np.exp(p.invention_size * z + p.invention_mu * mu))
        self.util = zero_inflated(np.where(manuf, p.utility_zero_manufacturing, p.utility_zero),
                                  p.utility_mean * np.exp(p.utility_size * z))
        self.design = zero_inflated(p.design_zero, p.design_mean)
        self.tm = zero_inflated(_by_sector(p.trademark_zero, names)[ent.sector], p.trademark_mean)
        sw_zero = np.full(n, p.software_zero)
        codes = ent.industry_code.astype(str)
        for prefix, zero in p.software_zero_prefix.items():
            sw_zero[np.char.startswith(codes, prefix)] = zero
        self.sw = zero_inflated(sw_zero, p.software_mean)
        self.apps_hist = np.zeros((12, n), dtype=np.int32)
        self.apps12 = np.zeros(n, dtype=np.int64)
        self.grants: dict[int, list[np.ndarray]] = defaultdict(list)   # encoded slot * 2 + kind
        self.pl_slot = np.zeros(0, dtype=np.int64)
        self.pl_amount = np.zeros(0)
        self.pl_end = np.zeros(0, dtype=np.int64)
        self.emitted = np.zeros(n, dtype=bool)
        self.last = np.zeros((n, len(_IP_FIELDS)))

    def state(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The snapshot fields of slots `idx`."""
        n = self.inv.size
        count = np.bincount(self.pl_slot, minlength=n)[idx]
        amount = np.round(np.bincount(self.pl_slot, weights=self.pl_amount, minlength=n)[idx], 2)
        values = (self.inv[idx], self.util[idx], self.design[idx], self.tm[idx], self.sw[idx], self.apps12[idx],
                  count, amount)
        return dict(zip(_IP_FIELDS, values, strict=True))

    def step(self, ctx: MonthContext, out: Emitter, h: np.ndarray, st: np.ndarray) -> None:
        t, rng, p = ctx.t, self.rng, self.p
        alive = ctx.alive
        n = alive.size
        if t == ctx.params.t_series:
            self._emit(ctx, out, np.flatnonzero(alive), month_start(t)[()], month_start(t)[()])
        dirty = np.zeros(n, dtype=bool)
        # applications (rolling 12-month count) -> grants
        live = np.flatnonzero(alive)
        patents = self.inv[live] + self.util[live]
        age_years = np.maximum(1.0, ctx.age_months[live] / 12.0)
        rate = p.application_rate * patents / age_years + np.where(patents > 0, p.application_base,
                                                                    p.application_base_zero)
        apps = np.zeros(n, dtype=np.int32)
        apps[live] = rng.poisson(rate / 12.0)
        old = self.apps_hist[t % 12]
        dirty |= apps != old
        self.apps12 += apps - old
        self.apps_hist[t % 12] = apps
        who = np.repeat(np.arange(n), apps)
        kind = (rng.random(who.size) >= p.invention_application_share).astype(np.int64)   # 0 invention, 1 utility
        granted = rng.random(who.size) < np.asarray(p.grant_prob)[kind]
        lag = np.where(kind == 0, rng.integers(p.grant_lag_invention[0], p.grant_lag_invention[1] + 1, who.size),
                       rng.integers(p.grant_lag_utility[0], p.grant_lag_utility[1] + 1, who.size))
        _queue_push(self.grants, t + lag[granted], who[granted] * 2 + kind[granted])
        due = _queue_pop(self.grants, t)
        due = due[alive[due // 2]]
        np.add.at(self.inv, due[due % 2 == 0] // 2, 1)
        np.add.at(self.util, due[due % 2 == 1] // 2, 1)
        dirty[due // 2] = True
        # lapses (fees not paid), new trademarks and software copyrights
        for arr in (self.inv, self.util, self.design):
            k = np.flatnonzero(alive & (arr > 0))
            drop = rng.binomial(arr[k], p.lapse_annual / 12.0 * (1 + p.lapse_stress * st[k]))
            arr[k] -= drop
            dirty[k[drop > 0]] = True
        for arr in (self.tm, self.sw):
            k = np.flatnonzero(alive & (arr > 0))
            add = rng.poisson(p.other_growth_annual / 12.0, k.size)
            arr[k] += add
            dirty[k[add > 0]] = True
        # IP pledges
        ended = self.pl_end <= t
        dirty[self.pl_slot[ended]] = True
        self.pl_slot, self.pl_amount, self.pl_end = self.pl_slot[~ended], self.pl_amount[~ended], self.pl_end[~ended]
        k = np.flatnonzero(alive & ((self.inv + self.util + self.tm + self.sw) > 0))
        new = k[rng.random(k.size) < _sigmoid(p.pledge_hz[0] + p.pledge_hz[1] * st[k])]
        if new.size:
            dirty[new] = True
            self.pl_slot = np.concatenate([self.pl_slot, new])
            self.pl_amount = np.concatenate([self.pl_amount, _ln(rng, *p.pledge_amount, new.size)])
            self.pl_end = np.concatenate([self.pl_end, t + rng.integers(p.pledge_months[0], p.pledge_months[1] + 1,
                                                                        new.size)])
        if ctx.emit_series:
            cand = np.flatnonzero(alive & (~self.emitted | dirty))
            now = np.column_stack(list(self.state(cand).values()))
            changed = cand[~self.emitted[cand] | (now != self.last[cand]).any(axis=1)]
            self._emit(ctx, out, changed, month_start(t + 1)[()], ctx.last_day)

    def _emit(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, valid_from: np.datetime64,
              anchor: np.datetime64) -> None:
        if idx.size == 0:
            return
        self.emitted[idx] = True
        state = self.state(idx)
        self.last[idx] = np.column_stack(list(state.values()))
        out.emit(self.code, {"uscc": ctx.ent.uscc[idx], **state}, ent=idx,
                 available=anchor + lag_days(self.rng, idx.size, self.lag), cause="background",
                 valid_from=np.full(idx.size, valid_from, dtype="datetime64[D]"))


# --- S27 movable collateral registry --------------------------------------------------------------------
_REG_TYPES = ("chattel_mortgage", "receivables_pledge", "financial_lease", "retention_of_title",
              "warehouse_receipt_pledge", "deposit_pledge", "other")
_COLL_CATS = ("production_equipment", "vehicles", "inventory_oil_products", "inventory_aquatic_products",
              "receivables", "vessel_equipment", "other")
_PARTIES = ("bank", "financial_leasing", "factoring", "guarantee_company", "enterprise", "other")
_STATUS = ("active", "amended", "cancelled", "expired")
ACTIVE_S, AMENDED_S, CANCELLED_S, EXPIRED_S = range(4)
_CANCEL, _AMEND, _EXPIRE = range(3)


class _Collateral:
    code = "movable_collateral_registry"

    def setup(self, ctx: MonthContext, rng: np.random.Generator, p: CollateralParams) -> None:
        self.rng, self.p = rng, p
        self.lag = load_catalog().sub_item(self.code).lag_days
        names = ctx.params.sector_names
        self.rate = _by_sector(p.rate, names)
        self.type_w = np.array([[p.types.get(s, p.types["default"]).get(x, 0.0) for x in _REG_TYPES] for s in names])
        cat = np.zeros((len(names), len(_REG_TYPES), len(_COLL_CATS)))
        for i, s in enumerate(names):
            for j, rt in enumerate(_REG_TYPES):
                w = p.categories_by_sector.get(s, {}).get(rt, p.categories.get(rt, {"other": 1.0}))
                cat[i, j] = [w.get(c, 0.0) for c in _COLL_CATS]
        self.cat_w = cat
        base = np.array([p.party_mix.get(x, 0.0) for x in _PARTIES])
        shifted = base.copy()
        for k, v in p.party_stress_shift.items():
            shifted[_PARTIES.index(k)] += v
            shifted[0] -= v
        no_lease = np.array([x != "financial_leasing" for x in _PARTIES])
        self.party_w = np.vstack([base * no_lease, np.maximum(shifted, 0) * no_lease])
        # growable register
        self.cols: dict[str, np.ndarray] = {
            "slot": np.zeros(0, dtype=np.int64), "id": np.zeros(0, dtype=object), "type": np.zeros(0, dtype=np.int64),
            "cat": np.zeros(0, dtype=np.int64), "date": np.zeros(0, dtype="datetime64[D]"),
            "month": np.zeros(0, dtype=np.int64), "amount": np.zeros(0), "party": np.zeros(0, dtype=np.int64),
            "status": np.zeros(0, dtype=np.int64), "cause": np.zeros(0, dtype=object),
            "emitted": np.zeros(0, dtype=bool),
        }
        self.queue: dict[int, list[np.ndarray]] = defaultdict(list)   # encoded reg * 3 + event kind

    def step(self, ctx: MonthContext, out: Emitter, h: np.ndarray, st: np.ndarray) -> None:
        t, rng, p, c = ctx.t, self.rng, self.p, self.cols
        alive = ctx.alive
        if t == ctx.params.t_events:
            open_ = np.flatnonzero(c["status"] <= AMENDED_S)
            self._emit(ctx, out, open_, np.full(open_.size, month_start(t)[()]), c["cause"][open_])
        # scheduled status changes of earlier registrations
        ev = _queue_pop(self.queue, t)
        reg, kind = ev // 3, ev % 3
        status = c["status"]
        is_open = status[reg] <= AMENDED_S
        performing = ctx.latent.performing[c["slot"][reg]]
        cancel = reg[(kind == _CANCEL) & is_open & performing]
        held = reg[(kind == _CANCEL) & is_open & ~performing]     # defaulted: stays active until expiry
        amend = reg[(kind == _AMEND) & (status[reg] == ACTIVE_S)]
        expire = reg[(kind == _EXPIRE) & is_open]
        status[cancel] = CANCELLED_S
        status[amend] = AMENDED_S
        status[expire] = EXPIRED_S
        if held.size:
            _queue_push(self.queue, c["month"][held] + p.expire_months, held * 3 + _EXPIRE)
        changed = np.concatenate([cancel, amend, expire])
        # new registrations
        n = alive.size
        lam = self.rate[ctx.ent.sector] * (1 + np.maximum(0.0, -h - p.stress_threshold))
        counts = rng.poisson(np.where(alive & ~ctx.latent.dormant, lam, 0.0))
        who = np.repeat(np.arange(n), counts)
        k = who.size
        if k:
            sector = ctx.ent.sector[who]
            rtype = pick_rows(rng, self.type_w[sector])
            cat = pick_rows(rng, self.cat_w[sector, rtype])
            st_who = st[who]
            party = pick_rows(rng, self.party_w[(st_who > p.party_stress_threshold).astype(np.int64)])
            party[rtype == _REG_TYPES.index("financial_lease")] = _PARTIES.index("financial_leasing")
            amount = (_ln(rng, *p.amount, k)
                      * (ctx.ent.sales[who] / p.amount_sales_ref) ** p.amount_sales_elasticity)
            extra = np.maximum(0.0, -h[who] - p.stress_threshold)
            cause = shared_strings(np.where(rng.random(k) < extra / (1 + extra), "stress", "background"))
            start = c["slot"].size
            new_cols = {"slot": who, "id": hex_ids(rng, "M_", k), "type": rtype, "cat": cat,
                        "date": random_day_in_month(rng, t, size=k), "month": np.full(k, t, dtype=np.int64),
                        "amount": np.round(amount, 2), "party": party, "status": np.zeros(k, dtype=np.int64),
                        "cause": cause, "emitted": np.zeros(k, dtype=bool)}
            for name, arr in new_cols.items():
                c[name] = np.concatenate([c[name], arr])
            idx = np.arange(start, start + k)
            cancel_lag = rng.integers(p.cancel_months[0], p.cancel_months[1] + 1, k)
            never = rng.random(k) < p.never_cancel_prob
            _queue_push(self.queue, np.where(never, t + p.expire_months, t + cancel_lag),
                        idx * 3 + np.where(never, _EXPIRE, _CANCEL))
            am = ~never & (rng.random(k) < p.amend_prob) & (cancel_lag > 1)
            am_lag = np.floor(rng.random(k) * (cancel_lag - 1)).astype(np.int64) + 1
            _queue_push(self.queue, t + am_lag[am], idx[am] * 3 + _AMEND)
            if ctx.emit_events:
                self._emit(ctx, out, idx, c["date"][idx], cause)
        if ctx.emit_events and changed.size:
            changed = changed[c["emitted"][changed]]
            day = random_day_in_month(rng, t, size=changed.size)
            cause = np.where(c["status"][changed] == EXPIRED_S, np.where(
                ctx.latent.performing[c["slot"][changed]], "background", "cascade"), "background").astype(object)
            self._emit(ctx, out, changed, day, cause)

    def _emit(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, anchor: np.ndarray, cause: np.ndarray) -> None:
        if idx.size == 0:
            return
        c = self.cols
        c["emitted"][idx] = True
        out.emit(self.code, {
            "uscc": ctx.ent.uscc[c["slot"][idx]],
            "registration_id": c["id"][idx],
            "registration_type": np.array(_REG_TYPES, dtype=object)[c["type"][idx]],
            "collateral_category": np.array(_COLL_CATS, dtype=object)[c["cat"][idx]],
            "registration_date": c["date"][idx],
            "secured_amount": c["amount"][idx],
            "secured_party_type": np.array(_PARTIES, dtype=object)[c["party"][idx]],
            "status": np.array(_STATUS, dtype=object)[c["status"][idx]],
        }, ent=c["slot"][idx], available=np.asarray(anchor, dtype="datetime64[D]") + lag_days(self.rng, idx.size, self.lag),
            cause=cause)


# --- S31 vessels ----------------------------------------------------------------------------------------
class _Vessels:
    code = "vessels"

    def setup(self, ctx: MonthContext, rng: np.random.Generator, p: VesselParams) -> None:
        self.rng, self.p = rng, p
        self.lag = load_catalog().sub_item(self.code).lag_days
        ent, names = ctx.ent, ctx.params.sector_names
        n = ent.n_max
        self.end_date = month_end(ctx.params.t_end)[()]
        self.burn_in_start = month_start(ctx.params.t_first)[()]
        self.ship_id = ctx.params.sector_id(p.shipping_sector)
        sec = ent.sector

        def is_(name: str) -> np.ndarray:
            return sec == names.index(name)

        count = np.zeros(n, dtype=np.int64)
        group = np.full(n, -1, dtype=np.int64)       # 0 fishing, 1 merchant, 2 bunkering, 3 tug, 4 engineering

        def assign(mask: np.ndarray, k: np.ndarray, g: int) -> None:
            count[mask] = k[mask]
            group[mask] = g

        u = rng.random((7, n))
        assign(is_("marine_fishery") & (u[0] < p.fishery_prob), 1 + rng.poisson(p.fishery_extra, n), 0)
        carrier = np.char.startswith(ent.industry_code.astype(str), p.carrier_prefix)
        shipping = is_("shipping_port_logistics")
        assign(shipping & (u[1] < np.where(carrier, p.carrier_prob, p.other_shipping_prob)),
               1 + rng.poisson(p.merchant_extra, n), 1)
        self.supplier = is_("oil_trading_bunkering") & ~ent.shell & (u[2] < p.bunkering_supplier_prob)
        assign(self.supplier & (u[3] < p.bunkering_prob), 1 + rng.poisson(p.bunkering_extra, n), 2)
        assign(is_("oil_gas_storage") & (u[4] < p.storage_tug_prob), np.ones(n, dtype=np.int64), 3)
        assign(is_("shipbuilding_repair") & (u[5] < p.shipbuilder_prob), np.ones(n, dtype=np.int64), 4)
        assign(is_("aquatic_processing") & (u[6] < p.aquatic_prob),
               rng.integers(p.aquatic_count[0], p.aquatic_count[1] + 1, n), 0)
        slot = np.repeat(np.arange(n), count)
        v = slot.size
        rank = np.arange(v) - np.repeat(np.cumsum(count) - count, count)
        g = group[slot]
        vtype = np.full(v, VESSEL_TYPES.index("fishing_vessel"), dtype=np.int64)
        merchant = np.flatnonzero(g == 1)
        mix = p.merchant_mix
        vtype[merchant] = [VESSEL_TYPES.index(x) for x in choice_by_weights(rng, mix, merchant.size)]
        vtype[g == 2] = VESSEL_TYPES.index("bunkering_tanker")
        vtype[g == 3] = VESSEL_TYPES.index("tug_or_service")
        vtype[g == 4] = VESSEL_TYPES.index("engineering_vessel")
        gt = np.zeros(v)
        for j, name in enumerate(VESSEL_TYPES):
            sel = np.flatnonzero(vtype == j)
            gt[sel] = _ln(rng, *p.tonnage[name], sel.size)
        fishing = vtype == _FISHING
        self.age_off = np.where(fishing, rng.integers(p.build_age_fishing[0], p.build_age_fishing[1] + 1, v),
                                rng.integers(p.build_age[0], p.build_age[1] + 1, v))
        self.u_acq = rng.random(v)
        self.mortgaged = rng.random(v) < p.mortgage_prob
        self.vessel_id = hex_ids(rng, "V_", v)
        self.slot, self.rank, self.vtype, self.gt = slot, rank, vtype, np.round(gt, 1)
        self.type_name = np.array(VESSEL_TYPES, dtype=object)[vtype]
        self.build_year = np.zeros(v, dtype=np.int64)
        self.acq = np.full(v, np.datetime64("NaT"), dtype="datetime64[D]")
        self.vdate = self.acq.copy()
        self.active = np.zeros(v, dtype=bool)
        self.emitted = np.zeros(v, dtype=bool)
        self.mort_amount = np.zeros(v)
        self.psc = np.zeros(v, dtype=np.int64)
        self.pen = np.zeros(v, dtype=np.int64)
        self.queue: dict[int, list[np.ndarray]] = defaultdict(list)   # encoded vessel * 2 + counter
        self._place(ctx, np.flatnonzero(ctx.latent.born[slot]))

    def _place(self, ctx: MonthContext, idx: np.ndarray) -> None:
        """Acquisition dates and build years of the fleets of newly born owners."""
        if idx.size == 0:
            return
        p, ent = self.p, ctx.ent
        slot = self.slot[idx]
        est = ent.establish_date[slot]
        initial = ~ent.is_entrant[slot]
        lo = np.maximum(est, np.datetime64(p.first_acquisition_floor))
        span_init = np.maximum(0, _days_between(lo, self.burn_in_start))
        first = np.where(initial, lo + np.floor(self.u_acq[idx] * span_init).astype("timedelta64[D]"),
                         est + np.floor(self.u_acq[idx] * p.entrant_first_months * 30.44).astype("timedelta64[D]"))
        first_of_slot = np.full(ent.n_max, np.datetime64("NaT"), dtype="datetime64[D]")
        head = self.rank[idx] == 0
        first_of_slot[slot[head]] = first[head]
        base = first_of_slot[slot]
        later = base + np.floor(self.u_acq[idx] * np.maximum(0, _days_between(base, self.end_date))).astype(
            "timedelta64[D]")
        acq = np.where(head, first, later)
        self.acq[idx] = acq
        year = acq.astype("datetime64[Y]").astype(np.int64) + 1970
        self.build_year[idx] = np.clip(year - self.age_off[idx], p.earliest_build_year, year)

    def value(self, ctx: MonthContext) -> np.ndarray:
        return _vessel_value(self.vtype, self.gt, self.build_year, _year_frac(ctx.t),
                             float(ctx.latent.sector_f[self.ship_id]))

    def step(self, ctx: MonthContext, out: Emitter, h: np.ndarray, st_all: np.ndarray) -> None:
        t, rng, p = ctx.t, self.rng, self.p
        if ctx.latent.born_now.any():
            self._place(ctx, np.flatnonzero(ctx.latent.born_now[self.slot]))
        owner_alive = ctx.alive[self.slot]
        if t == ctx.params.t_events:
            dump = np.flatnonzero(self.active & owner_alive)
            self._emit(ctx, out, dump, self.vdate[dump], np.full(dump.size, month_start(t)[()]),
                       np.full(dump.size, "background", dtype=object))
        value = self.value(ctx)
        new = ~self.active & (self.acq <= ctx.last_day) & owner_alive
        self.active |= new
        self.vdate[new] = self.acq[new]
        self.mort_amount[new] = np.where(self.mortgaged[new], p.mortgage_value_share * value[new], 0.0)
        # rolling 24-month counters
        run = self.active & owner_alive & ~new
        st = st_all[self.slot]
        age = np.maximum(0.0, ctx.year - self.build_year)
        p_psc0 = p.psc_base * (1 + age / p.psc_age_scale)
        p_psc = p_psc0 * np.exp(p.psc_stress * st)
        p_pen = p.penalty_base * (1 + st)
        u_psc, u_pen = rng.random(self.slot.size), rng.random(self.slot.size)
        inc_psc = run & (u_psc < p_psc)
        inc_pen = run & (u_pen < p_pen)
        before = (self.psc.copy(), self.pen.copy())
        self.psc += inc_psc
        self.pen += inc_pen
        hits = np.concatenate([np.flatnonzero(inc_psc) * 2, np.flatnonzero(inc_pen) * 2 + 1])
        if hits.size:
            self.queue[t + p.window_months].append(hits)
        drop = _queue_pop(self.queue, t)
        self.psc[drop[drop % 2 == 0] // 2] -= 1
        self.pen[drop[drop % 2 == 1] // 2] -= 1
        changed = (self.psc != before[0]) | (self.pen != before[1])
        stress_cause = (inc_psc & (u_psc >= p_psc0)) | (inc_pen & (u_pen >= p.penalty_base))
        if ctx.emit_events:
            fresh = np.flatnonzero(new & (self.acq >= ctx.first_day))
            self._emit(ctx, out, fresh, self.acq[fresh], self.acq[fresh],
                       np.full(fresh.size, "background", dtype=object))
            again = np.flatnonzero(changed & self.emitted & owner_alive)
            cause = np.where(stress_cause[again], "stress", "background").astype(object)
            self._emit(ctx, out, again, np.full(again.size, month_start(t + 1)[()]),
                       np.full(again.size, ctx.last_day), cause)
        self.vdate[changed] = month_start(t + 1)[()]
        keep = self.active
        n = ctx.ent.n_max
        ctx.board["vessel_value"] = np.bincount(self.slot[keep], weights=value[keep], minlength=n)
        free = keep & ~self.mortgaged
        ctx.board["vessel_value_est"] = np.bincount(self.slot[free], weights=value[free], minlength=n)
        ctx.board["bunkering_supplier"] = self.supplier

    def _emit(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, valid_from: np.ndarray, anchor: np.ndarray,
              cause: np.ndarray) -> None:
        if idx.size == 0:
            return
        self.emitted[idx] = True
        out.emit(self.code, {
            "uscc": ctx.ent.uscc[self.slot[idx]],
            "vessel_id": self.vessel_id[idx],
            "vessel_type": self.type_name[idx],
            "gross_tonnage": self.gt[idx],
            "build_year": self.build_year[idx],
            "vessel_mortgage_registered": self.mortgaged[idx],
            "vessel_mortgage_amount": np.round(self.mort_amount[idx], 2),
            "psc_detentions_24m": self.psc[idx],
            "maritime_penalties_24m": self.pen[idx],
        }, ent=self.slot[idx], available=np.asarray(anchor, dtype="datetime64[D]") + lag_days(self.rng, idx.size, self.lag),
            cause=cause, valid_from=np.asarray(valid_from, dtype="datetime64[D]"))


# --- the module -----------------------------------------------------------------------------------------
class AssetsModule:
    """S25 real property, S26 IP, S27 movable collateral and S31 vessels (simulation.md §7.9, §7.11)."""

    name = "assets"
    sub_items = ("real_property_rights", "ip_assets", "movable_collateral_registry", "vessels")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        self.params: AssetsParams = load_module_params(AssetsParams, self.name)
        self.real_property = _Property()
        self.ip = _Ip()
        self.collateral = _Collateral()
        self.vessels = _Vessels()
        self.real_property.setup(ctx, rng, self.params.real_property)
        self.ip.setup(ctx, rng, self.params.ip)
        self.collateral.setup(ctx, rng, self.params.collateral)
        self.vessels.setup(ctx, rng, self.params.vessels)

    def step(self, ctx: MonthContext, out: Emitter) -> None:
        # h is capped below: a handful of dormant firms can drift to extreme h, and the hazards here
        # (Poisson rates, exp(st)) must stay finite
        h = np.maximum(ctx.h, -self.params.stress_cap)
        st = np.maximum(0.0, -h)
        self.real_property.step(ctx, out, h, st)
        self.ip.step(ctx, out, h, st)
        self.collateral.step(ctx, out, h, st)
        self.vessels.step(ctx, out, h, st)
