"""The enterprise universe: every slot's static attributes, drawn once at set-up (simulation.md §3).

Slots 0..N0-1 exist at the burn-in month; the rest are entrants whose birth month the lifecycle
assigns. Attributes of all slots are drawn up front so that each module's draws stay independent
of when firms are born.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from data.simulate.calendar import month_index
from data.simulate.compact import shared_strings
from data.simulate.draws import choice_by_weights
from data.simulate.params import OIL_CHAIN, WorldParams
from kernel.uscc import generate_usccs


def module_rng(root_seed: int, name: str) -> np.random.Generator:
    """An independent random stream per module, keyed by its name (changing one leaves others alone)."""
    return np.random.default_rng(np.random.SeedSequence([root_seed, zlib.crc32(name.encode("utf-8"))]))


@dataclass
class Enterprises:
    """Static per-slot attributes (length n_max). Time-varying state lives in latent.LatentState."""

    n0: int
    n_max: int
    sector: np.ndarray              # int16 index into params.sector_names
    industry_code: np.ndarray       # object: GB/T 4754 class code
    district: np.ndarray            # object: '330902' ...
    region: np.ndarray              # object: USCC positions 3-8
    ftz_area: np.ndarray            # object: none / offshore_islands / island_north / island_south
    cluster: np.ndarray             # bool: cluster-registered address
    shell: np.ndarray               # bool: cluster-registered oil-trading shell
    z_size: np.ndarray              # float64
    sales: np.ndarray               # S_i annual sales median (万元)
    employees: np.ndarray           # E_i (>= 1)
    growth: np.ndarray              # g_i per year
    frag: np.ndarray                # bool: fragile
    mu: np.ndarray                  # permanent quality (cure lowers it: mutable)
    need: np.ndarray                # latent financing need
    leverage_base: np.ndarray       # r0_i ~ Beta(5.5, 4.5)
    establish_date: np.ndarray      # datetime64[D]; NaT until an entrant is born
    birth_month: np.ndarray         # int64 month index; large sentinel until born
    is_entrant: np.ndarray          # bool
    uscc: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    has_elec: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    has_water: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    has_gas: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    has_property: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    is_customs: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))

    NOT_BORN = np.iinfo(np.int64).max // 4

    def sector_is(self, names: tuple[str, ...] | str, sector_names: tuple[str, ...]) -> np.ndarray:
        """Boolean mask of slots whose sector is in `names`."""
        if isinstance(names, str):
            names = (names,)
        ids = [sector_names.index(n) for n in names]
        return np.isin(self.sector, ids)




def draw_enterprises(params: WorldParams, rng: np.random.Generator) -> Enterprises:
    """Draw the static attributes of every slot (initial universe and future entrants)."""
    n0 = params.enterprises
    n_max = int(np.ceil(n0 * params.n_max_factor))
    names = params.sector_names
    share = params.sector_column("share")
    sector = rng.choice(len(names), size=n_max, p=share / share.sum()).astype(np.int16)
    sector_name = np.array(names, dtype=object)[sector]

    industry = np.empty(n_max, dtype=object)
    district = np.empty(n_max, dtype=object)
    for s, name in enumerate(names):
        idx = np.flatnonzero(sector == s)
        industry[idx] = choice_by_weights(rng, params.industry_codes[name], len(idx))
        district[idx] = choice_by_weights(rng, params.district_overrides.get(name, params.districts), len(idx))

    ftz = rng.random(n_max) < params.sector_column("ftz")[sector]
    ftz_area = np.full(n_max, "none", dtype=object)
    u = rng.random(n_max)
    ftz_area[ftz & (district == "330921")] = "offshore_islands"
    ftz_area[ftz & (district == "330902")] = np.where(u[ftz & (district == "330902")] < 0.55, "island_north",
                                                       "island_south")
    ftz_area[ftz & np.isin(district, ["330903", "330922"])] = "island_south"

    region = district.copy()
    r = rng.random(n_max)
    region[r < 0.15] = "330900"
    region[(r >= 0.15) & ftz & (rng.random(n_max) < 0.10)] = "330901"

    cluster = rng.random(n_max) < params.sector_column("cluster")[sector]
    oil_trader = sector_name == "oil_trading_bunkering"
    shell = cluster & oil_trader & (rng.random(n_max) < params.firms.shell_prob_cluster_oil)

    z_size = rng.standard_normal(n_max)
    sales = params.sector_column("sales_median")[sector] * np.exp(params.sector_column("sales_logsd")[sector] * z_size)
    emp_med = params.sector_column("employees_median")[sector]
    employees = np.maximum(1.0, np.round(emp_med * np.exp(0.9 * (0.7 * z_size + 0.71 * rng.standard_normal(n_max)))))
    employees[shell] = rng.integers(1, 4, size=shell.sum())
    growth = rng.normal(params.firms.growth_mean, params.firms.growth_sd, n_max)

    lp = params.latent
    is_entrant = np.arange(n_max) >= n0
    frag_p = lp.frag_prob * np.where(is_entrant, lp.frag_mult_entrant, 1.0) * np.where(shell, lp.frag_mult_shell, 1.0)
    frag = rng.random(n_max) < frag_p
    mu = (params.sector_column("mu_s")[sector] + lp.mu_size_loading * z_size
          + rng.normal(0, lp.mu_sd, n_max) - lp.frag_penalty * frag)
    # need ~ N(0,1), corr 0.4 with growth (the -(h-mu) part enters at registration time)
    gz = (growth - params.firms.growth_mean) / params.firms.growth_sd
    need = 0.4 * gz + np.sqrt(1 - 0.16) * rng.standard_normal(n_max)
    leverage_base = rng.beta(5.5, 4.5, n_max)

    # initial firms: age at burn-in start ~ Gamma(shape, scale) years, truncated at earliest_establish
    shape, scale = params.firms.initial_age_gamma
    age_days = (rng.gamma(shape, scale, n0) * 365.25).astype(np.int64)
    t0 = np.datetime64(f"{params.t_first // 12:04d}-{params.t_first % 12 + 1:02d}-01")
    est0 = t0 - age_days.astype("timedelta64[D]")
    est0 = np.maximum(est0, np.datetime64(params.firms.earliest_establish))
    establish = np.full(n_max, np.datetime64("NaT"), dtype="datetime64[D]")
    establish[:n0] = est0
    birth = np.full(n_max, Enterprises.NOT_BORN, dtype=np.int64)
    birth[:n0] = est0.astype("datetime64[M]").astype(np.int64) + 1970 * 12

    ent = Enterprises(n0=n0, n_max=n_max, sector=sector, industry_code=industry, district=district, region=region,
                      ftz_area=shared_strings(ftz_area), cluster=cluster, shell=shell, z_size=z_size, sales=sales,
                      employees=employees, growth=growth, frag=frag, mu=mu, need=need,
                      leverage_base=leverage_base, establish_date=establish, birth_month=birth,
                      is_entrant=is_entrant)
    cov = {c: params.sector_column(c)[sector] for c in ("elec", "water", "gas", "prop", "customs")}
    ent.has_elec = rng.random(n_max) < cov["elec"] * np.where(shell, 0.3, 1.0)
    ent.has_water = rng.random(n_max) < cov["water"]
    ent.has_gas = rng.random(n_max) < cov["gas"]
    ent.has_property = rng.random(n_max) < np.clip(cov["prop"] * (1 + 0.3 * z_size), 0, 1)
    ent.is_customs = rng.random(n_max) < cov["customs"]
    assign_usccs(ent, rng, born_before_2015_10=None)
    return ent


def assign_usccs(ent: Enterprises, rng: np.random.Generator, born_before_2015_10: np.ndarray | None) -> None:
    """USCCs for all slots. Legacy bodies for initial firms born before 2015-10; entrants get MA codes."""
    cutoff = month_index("2015-10")
    legacy = np.zeros(ent.n_max, dtype=bool)
    legacy[: ent.n0] = ent.birth_month[: ent.n0] < cutoff
    if born_before_2015_10 is not None:
        legacy |= born_before_2015_10
    ent.uscc = generate_usccs(rng, ent.region, legacy)


def oil_chain_mask(ent: Enterprises, params: WorldParams) -> np.ndarray:
    return ent.sector_is(OIL_CHAIN, params.sector_names)
