"""What an observation module sees each month, and the contract it implements.

A module owns one or more sub-items. `setup` draws its static attributes; `step` is called once per
simulated month, in the fixed order of `modules.MODULE_ORDER`, and emits rows through the Emitter.
Modules share derived state through `ctx.board` (a dict of arrays of length n_max), documented in
`BOARD_KEYS` below; a module reads only keys that an earlier module in the order has written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from data.simulate.calendar import month_end, month_of_year, month_start, year_of
from data.simulate.params import WorldParams

if TYPE_CHECKING:
    from data.simulate.emit import Emitter
    from data.simulate.latent import LatentState
    from data.simulate.networks import Networks
    from data.simulate.world import Enterprises

# Cross-module state on the board (arrays over all n_max slots unless stated). Writer -> readers.
BOARD_KEYS = {
    "sales": "tax: this month's sales (万元), 0 while dormant or unborn -> utilities, customs, annual report",
    "annual_sales_last_year": "tax: sales over the previous calendar year -> annual report, mu_efficiency",
    "total_tax_paid_year": "tax: taxes paid in the current calendar year so far -> annual report, mu_efficiency",
    "declared_on_time": "tax: bool, this month's declaration on time",
    "tax_grade": "tax: object, latest published tax credit grade (None before the first) -> public credit",
    "abnormal_taxpayer": "tax: bool, non-normal taxpayer flag -> public credit, courts",
    "major_tax_violation_active": "tax: bool -> public credit black list",
    "tax_arrears_active": "tax: bool, active arrears announcement",
    "insured_count": "employment: social-insurance headcount this month -> hpf, annual report, disputes",
    "insured_count_year_mean": "employment: mean insured_count over the current calendar year",
    "wage_arrears_blacklist": "employment: bool -> public credit black list",
    "si_arrears_months": "employment: social-insurance arrears months",
    "active_dishonest": "courts: bool, active dishonest-debtor listing -> public credit, rating caps",
    "active_restriction": "courts: bool, active consumption restriction",
    "enforcement_terminated_24m": "courts: bool, enforcement terminated without assets within 24 months",
    "in_litigation": "courts: bool, a pending case as defendant",
    "active_abnormal_list": "msa lists: bool, active abnormal-operation listing",
    "active_serious_list": "msa lists: bool, active serious-illegal-dishonest listing",
    "unreachable": "msa lists: bool, listed for unreachable address",
    "annual_report_filed": "annual report: bool, report for the previous year filed",
    "penalties_12m": "penalties: int, administrative penalties in the trailing 12 months",
    "serious_penalty_now": "penalties: bool, a serious penalty decided this month",
    "customs_dishonest": "customs: bool",
    "customs_advanced": "customs: bool, advanced_certified",
    "safety_accident_now": "safety: bool, a work-safety accident this month",
    "owners_equity": "annual report: latest reported owners' equity (万元), NaN before the first report",
    "registered_capital": "registration: float, current registered capital (万元)",
    "legal_rep": "registration: int, person index of the current legal representative",
    "oil_license_active": "oil licence: bool",
    "ring_exposed_now": "tax: bool, member of a false-invoicing ring exposed this month -> courts (criminal cases)",
    "property_value": "assets: assessed value of unseized real-property rights (万元)",
    "free_property_value": "assets: value of unseized, unmortgaged property usable as new collateral (万元)",
    "sea_area_value": "assets: value of sea-area use rights (万元)",
    "vessel_value": "assets: fleet value per slot (万元), true shipping factor",
    "vessel_value_est": "assets: fleet value from observables only (products_and_demands.md attribute)",
    "bunkering_supplier": "assets: bool, licensed bunkering supplier with a fleet",
    "annual_report_submit_date": "annual report: datetime64[D], filing date of the last report (NaT if none)",
    "annual_report_backfill_date": "annual report: datetime64[D], date overdue reports were back-filled (补报)",
    "annual_report_misreported": "annual report: bool, the last report misstates figures",
    "platform_registered": "platform: bool, the enterprise has registered on the platform",
    "loan_90dpd_now": "platform: bool, a platform loan reached 90+ days past due this month (event E1)",
}


@dataclass
class MonthContext:
    """The world at month t, shared read-only by the observation modules (except `board`)."""

    t: int
    params: WorldParams
    ent: Enterprises
    net: Networks
    latent: LatentState
    mu: np.ndarray                      # current permanent quality (cures lower it)
    board: dict[str, np.ndarray] = field(default_factory=dict)

    # --- calendar -------------------------------------------------------------------------------
    @property
    def year(self) -> int:
        return int(year_of(self.t))

    @property
    def moy(self) -> int:
        """Month of year 1..12."""
        return int(month_of_year(self.t))

    @property
    def first_day(self) -> np.datetime64:
        return month_start(self.t)[()]

    @property
    def last_day(self) -> np.datetime64:
        return month_end(self.t)[()]

    @property
    def emit_events(self) -> bool:
        """Event lists and registration history are emitted from t_events on."""
        return self.t >= self.params.t_events

    @property
    def emit_series(self) -> bool:
        """Monthly series and monthly snapshots are emitted from t_series on."""
        return self.t >= self.params.t_series

    # --- latent state shortcuts ------------------------------------------------------------------
    @property
    def alive(self) -> np.ndarray:
        return self.latent.alive

    @property
    def h(self) -> np.ndarray:
        return self.latent.h

    @property
    def stress(self) -> np.ndarray:
        """st = max(0, -h)."""
        return np.maximum(0.0, -self.latent.h)

    @property
    def months_since_default(self) -> np.ndarray:
        """k >= 0 for firms absorbed by a default (last default), -1 otherwise."""
        k = self.t - self.latent.last_default
        return np.where((self.latent.last_default >= 0) & ~self.latent.performing, k, -1)

    @property
    def volume(self) -> np.ndarray:
        """Business-volume multiplier v = exp(0.35 (h - mu)) x D(k)."""
        lp = self.params.latent
        k = self.months_since_default
        decay = np.where(k >= 0, np.exp(-lp.post_default_decay * (k + 1)), 1.0)
        return np.exp(lp.volume_loading * (self.latent.h - self.mu)) * decay

    @property
    def age_months(self) -> np.ndarray:
        return self.t - self.ent.birth_month

    def season(self) -> np.ndarray:
        """season_s(m) for every slot's sector."""
        return self.params.season_matrix[self.ent.sector, self.moy - 1]

    def sector_mask(self, *names: str) -> np.ndarray:
        return self.ent.sector_is(tuple(names), self.params.sector_names)


class ObservationModule(Protocol):
    """One source department's generator (one or more catalog sub-items)."""

    name: str
    sub_items: tuple[str, ...]

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        """Draw static attributes once, before the first month (ctx.t is the burn-in month)."""

    def step(self, ctx: MonthContext, out: Emitter) -> None:
        """Update state for month ctx.t and emit the rows that arise in it."""
