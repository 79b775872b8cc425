"""Typed parameters of the simulator's core world (configs/simulation/world.yaml)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from data.simulate.calendar import month_index
from kernel.config import FrozenModel, configs_dir, load_yaml_model

SECTOR_COLUMNS = ("share", "mu_s", "beta_s", "sales_median", "sales_logsd", "employees_median",
                  "elec", "water", "gas", "prop", "customs", "ftz", "cluster")
OIL_CHAIN = ("oil_gas_storage", "oil_trading_bunkering", "petrochemical")
MARINE_ECONOMY = ("shipbuilding_repair", "shipping_port_logistics", "marine_fishery", "aquatic_processing",
                  "tourism_hospitality")


class FirmParams(FrozenModel):
    growth_mean: float
    growth_sd: float
    young_growth_bonus: float
    shell_prob_cluster_oil: float
    initial_age_gamma: tuple[float, float]
    earliest_establish: str
    entry_rate_annual: float
    oil_wave_years: tuple[int, int]
    voluntary_exit_annual: float
    voluntary_exit_annual_shell: float
    liquidating_before_exit_prob: float
    moved_out_annual: float


class LatentParams(FrozenModel):
    mu_size_loading: float
    mu_sd: float
    frag_prob: float
    frag_penalty: float
    frag_mult_entrant: float
    frag_mult_shell: float
    young_penalty: float
    young_tau_months: float
    x_ar: float
    x_sd: float
    x0_sd: float
    student_df: float
    jump_prob: float
    jump_size: float
    macro_ar: float
    macro_sd: float
    sector_ar: float
    sector_sd: float
    volume_loading: float
    post_default_decay: float


class PolicyMultiplier(FrozenModel):
    from_: str = Field(alias="from")
    to: str
    value: float


class HazardParams(FrozenModel):
    a: float
    b: float
    calibrate: bool
    target_annual_rate: float
    calibration_years: tuple[int, int]
    policy_multipliers: tuple[PolicyMultiplier, ...]


class ContagionParams(FrozenModel):
    guarantee: float
    guarantee_equity_floor: float
    parent_default: float
    subsidiary_default: float
    same_controller: float
    supplier: float
    spillover: float
    spillover_threshold: float


class AfterDefaultParams(FrozenModel):
    absorbed_months: int
    cure_prob: float
    cure_window: tuple[int, int]
    cure_mu_penalty: float
    cure_x: tuple[float, float]
    deregister_prob: float
    deregister_lag: tuple[int, int]
    revoke_prob: float
    revoke_lag: tuple[int, int]


class OracleParams(FrozenModel):
    paths: int
    chunk: int
    evaluation_months: tuple[str, ...]


class WorldParams(FrozenModel):
    seed: int
    enterprises: int = Field(gt=0)
    start: str
    end: str
    burn_in_years: int
    event_history_years: int
    series_history_years: int
    platform_launch: str
    seed_checkpoint: str
    n_max_factor: float
    sectors: dict[str, tuple[float, ...]]
    industry_codes: dict[str, dict[str, float]]
    districts: dict[str, float]
    district_overrides: dict[str, dict[str, float]]
    seasonality: dict[str, tuple[float, ...]]
    firms: FirmParams
    latent: LatentParams
    hazard: HazardParams
    shocks: dict[str, dict[str, float]]
    contagion: ContagionParams
    after_default: AfterDefaultParams
    oracle: OracleParams

    @field_validator("sectors")
    @classmethod
    def _sector_rows(cls, v: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for name, row in v.items():
            if len(row) != len(SECTOR_COLUMNS):
                raise ValueError(f"sector {name}: {len(row)} values, expected {len(SECTOR_COLUMNS)}")
        total = sum(r[0] for r in v.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"sector shares sum to {total}, expected 1")
        return v

    @field_validator("seasonality")
    @classmethod
    def _season_rows(cls, v: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for name, row in v.items():
            if len(row) != 12 or abs(sum(row) - 12) > 1e-6:
                raise ValueError(f"seasonality {name}: needs 12 values summing to 12")
        return v

    # --- derived, cached ---------------------------------------------------------------------------
    @cached_property
    def sector_names(self) -> tuple[str, ...]:
        return tuple(self.sectors)

    def sector_column(self, column: str) -> np.ndarray:
        j = SECTOR_COLUMNS.index(column)
        return np.array([row[j] for row in self.sectors.values()], dtype=np.float64)

    def sector_id(self, name: str) -> int:
        return self.sector_names.index(name)

    @cached_property
    def t_start(self) -> int:
        return month_index(self.start)

    @cached_property
    def t_end(self) -> int:
        return month_index(self.end)

    @cached_property
    def t_first(self) -> int:
        """First simulated (burn-in) month."""
        return self.t_start - 12 * self.burn_in_years

    @cached_property
    def t_events(self) -> int:
        return self.t_start - 12 * self.event_history_years

    @cached_property
    def t_series(self) -> int:
        return self.t_start - 12 * self.series_history_years

    @cached_property
    def season_matrix(self) -> np.ndarray:
        """(n_sectors, 12) seasonality multipliers."""
        default = self.seasonality["default"]
        return np.array([self.seasonality.get(s, default) for s in self.sector_names], dtype=np.float64)

    def policy_multiplier(self, t: int) -> float:
        for p in self.hazard.policy_multipliers:
            if month_index(p.from_) <= t <= month_index(p.to):
                return p.value
        return 1.0


def load_world_params(path: Path | None = None, **overrides: object) -> WorldParams:
    """Load world.yaml; keyword overrides (enterprises, start, end, seed) come from the CLI."""
    params = load_yaml_model(WorldParams, path or configs_dir() / "simulation" / "world.yaml")
    if overrides:
        data = params.model_dump(by_alias=True)
        data.update({k: v for k, v in overrides.items() if v is not None})
        params = WorldParams.model_validate(data)
    return params


def load_module_params(model: type[FrozenModel], name: str):
    """Parameters of one observation module: configs/simulation/<name>.yaml."""
    return load_yaml_model(model, configs_dir() / "simulation" / f"{name}.yaml")
