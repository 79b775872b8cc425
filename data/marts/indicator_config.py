"""configs/indicators.yaml as frozen models: the 5/17/49 tree, normalisation parameters, caps and tiers.

Validation guarantees what the mart relies on: weights sum to 1 at every level (so the 49 effective
weights sum to 1), codes nest (A1.1 under A1 under A), every method has the parameters it needs, knots
are increasing, and tiers are ordered.
"""

from __future__ import annotations

from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import ConfigError

Method = Literal["PW", "PCT", "PCT_S", "DED", "EXP", "CAT", "LIN"]
Direction = Literal["+", "-", "cat"]
WEIGHT_TOLERANCE = 1e-6


class PercentileForm(FrozenModel):
    """s = base + span F(x) (reversed: base + span (1 - F(x))); positive_only: F is fitted on x > 0."""

    base: float = Field(60.0, ge=0, le=100)
    span: float = Field(40.0, ge=0, le=100)
    reversed: bool = False
    positive_only: bool = False

    @model_validator(mode="after")
    def _within_scale(self) -> PercentileForm:
        if self.base + self.span > 100 + WEIGHT_TOLERANCE:
            raise ValueError(f"percentile form base {self.base} + span {self.span} exceeds 100")
        return self


class DecaySpec(FrozenModel):
    """EXP: s = 100 exp(-k S); events age-weighted by 0.5^(age_days / half_life_days) (None: no decay)."""

    k: float = Field(gt=0)
    half_life_days: float | None = Field(None, gt=0)
    window_months: int | None = Field(None, gt=0)
    window_days: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_window(self) -> DecaySpec:
        if (self.window_months is None) == (self.window_days is None):
            raise ValueError("give exactly one of window_months / window_days")
        return self


class Indicator(FrozenModel):
    """A third-level indicator: identity, local weight, direction of the raw value and its normalisation."""

    code: str = Field(pattern=r"^[A-E][1-4]\.[1-9]$")
    name_en: str
    name_zh: str
    weight: float = Field(gt=0, le=1)
    direction: Direction
    method: Method
    raw_en: str
    raw_zh: str
    knots: tuple[tuple[float, float], ...] | None = None
    pct: PercentileForm | None = None
    exp: DecaySpec | None = None
    bands: tuple[tuple[float, float], ...] | None = None
    params: dict[str, float] = Field(default_factory=dict)
    tables: dict[str, dict[str, float]] = Field(default_factory=dict)
    sets: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    missing_score: float | None = Field(None, ge=0, le=100)
    min_history_months: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _method_parameters(self) -> Indicator:
        if self.method == "PW" and not self.knots:
            raise ValueError(f"{self.code}: PW needs knots")
        if self.method in ("PCT", "PCT_S") and self.pct is None:
            raise ValueError(f"{self.code}: {self.method} needs a pct form")
        if self.method == "EXP" and self.exp is None:
            raise ValueError(f"{self.code}: EXP needs exp parameters")
        if self.knots is not None:
            xs = [k[0] for k in self.knots]
            if len(xs) < 2 or any(b <= a for a, b in pairwise(xs)):
                raise ValueError(f"{self.code}: knot x values must be strictly increasing (>= 2 knots)")
            if self.method != "DED" and any(not 0 <= k[1] <= 100 for k in self.knots):
                raise ValueError(f"{self.code}: knot scores must lie in [0, 100]")
        if self.bands is not None:
            mins = [b[0] for b in self.bands]
            if any(b >= a for a, b in pairwise(mins)):
                raise ValueError(f"{self.code}: bands must be ordered by decreasing min value")
        return self

    @property
    def column(self) -> str:
        """Column stem in the mart: A1.1 -> A1_1."""
        return self.code.replace(".", "_")

    def param(self, name: str) -> float:
        """A named constant; a missing one is a configuration error naming the indicator."""
        try:
            return self.params[name]
        except KeyError:
            raise ConfigError(f"indicators.yaml: {self.code}: missing parameter {name!r}") from None

    def table(self, name: str) -> dict[str, float]:
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(f"indicators.yaml: {self.code}: missing table {name!r}") from None

    def category_set(self, name: str) -> tuple[str, ...]:
        try:
            return self.sets[name]
        except KeyError:
            raise ConfigError(f"indicators.yaml: {self.code}: missing set {name!r}") from None


def _check_weights(what: str, weights: list[float]) -> None:
    total = sum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights of {what} sum to {total:.6f}, not 1")


class Level2(FrozenModel):
    code: str = Field(pattern=r"^[A-E][1-4]$")
    name_en: str
    name_zh: str
    weight: float = Field(gt=0, le=1)
    indicators: tuple[Indicator, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights_and_codes(self) -> Level2:
        _check_weights(f"the indicators under {self.code}", [i.weight for i in self.indicators])
        for ind in self.indicators:
            if not ind.code.startswith(self.code + "."):
                raise ValueError(f"indicator {ind.code} is listed under {self.code}")
        return self

    @property
    def reason_group(self) -> str:
        """The L2 name in snake_case: 'Scale & growth' -> 'scale_and_growth'."""
        words = self.name_en.lower().replace("&", " and ").replace(",", " ").replace("/", " ").split()
        return "_".join(words)


class Level1(FrozenModel):
    code: str = Field(pattern=r"^[A-E]$")
    name_en: str
    name_zh: str
    weight: float = Field(gt=0, le=1)
    level2: tuple[Level2, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights_and_codes(self) -> Level1:
        _check_weights(f"the second-level indicators under {self.code}", [j.weight for j in self.level2])
        for j in self.level2:
            if not j.code.startswith(self.code):
                raise ValueError(f"second-level {j.code} is listed under {self.code}")
        return self


class NormSettings(FrozenModel):
    winsor_lower: float = Field(ge=0, lt=0.5)
    winsor_upper: float = Field(gt=0.5, le=1)
    n_quantiles: int = Field(ge=3)
    min_sector_reference: int = Field(ge=1)
    base_fallback_months: int = Field(ge=0)
    seasonal_window_months: int = Field(ge=13)
    carry_forward_months: int = Field(ge=0)
    min_firm_age_months: int = Field(ge=0)
    thin_file_b_score: float = Field(ge=0, le=100)
    days_per_year: float = Field(gt=0)
    round_cci: int = Field(ge=0)


class SectorRule(FrozenModel):
    name: str
    prefixes: tuple[str, ...] = Field(min_length=1)


class Caps(FrozenModel):
    revoked_or_liquidating: float = Field(ge=0, le=100)
    dishonest_or_serious_illegal: float = Field(ge=0, le=100)
    restriction_or_tax_d: float = Field(ge=0, le=100)
    unreachable_address: float = Field(ge=0, le=100)
    cap_window_months: int = Field(gt=0)


class Tier(FrozenModel):
    name: str
    name_zh: str
    min_cci: float = Field(ge=0, le=100)


class IndicatorConfig(FrozenModel):
    norm_version: str = Field(min_length=1)
    base_month: str = Field(pattern=r"^\d{4}-\d{2}$")
    norm: NormSettings
    sectors: tuple[SectorRule, ...] = Field(min_length=1)
    caps: Caps
    tiers: tuple[Tier, ...] = Field(min_length=1)
    level1: tuple[Level1, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _tree(self) -> IndicatorConfig:
        _check_weights("the first-level indicators", [m.weight for m in self.level1])
        codes = [i.code for i in self.indicators]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate indicator codes")
        l2 = [j.code for m in self.level1 for j in m.level2]
        if len(set(l2)) != len(l2):
            raise ValueError("duplicate second-level codes")
        _check_weights("the effective weights of all indicators", list(self.effective_weights().values()))
        mins = [t.min_cci for t in self.tiers]
        if any(b >= a for a, b in pairwise(mins)) or mins[-1] != 0:
            raise ValueError("tiers must be ordered by decreasing min_cci and end at 0")
        if "" not in self.sectors[-1].prefixes:
            raise ValueError("the last sector rule must match everything (prefix '')")
        return self

    @property
    def level2(self) -> tuple[Level2, ...]:
        return tuple(j for m in self.level1 for j in m.level2)

    @property
    def indicators(self) -> tuple[Indicator, ...]:
        return tuple(i for j in self.level2 for i in j.indicators)

    def indicator(self, code: str) -> Indicator:
        for ind in self.indicators:
            if ind.code == code:
                return ind
        raise ConfigError(f"indicators.yaml: no indicator {code!r}")

    def effective_weights(self) -> dict[str, float]:
        """Global weight of every third-level indicator: product of its three weights."""
        return {i.code: m.weight * j.weight * i.weight
                for m in self.level1 for j in m.level2 for i in j.indicators}

    def sector_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sectors)


def load_indicator_config(path: Path | None = None) -> IndicatorConfig:
    """The indicator tree; the default configs/indicators.yaml is cached for the process."""
    if path is None:
        return _default_config()
    return load_yaml_model(IndicatorConfig, path)


def indicator_config_path() -> Path:
    return configs_dir() / "indicators.yaml"


@cache
def _default_config() -> IndicatorConfig:
    return load_yaml_model(IndicatorConfig, indicator_config_path())
