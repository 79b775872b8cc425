"""PD -> credit score and master-scale grade (configs/rating_scale.yaml), vectorised."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pydantic import Field, model_validator

from kernel.config import FrozenModel, configs_dir, load_yaml_model


class ScoreSpec(FrozenModel):
    base_points: float
    base_odds: float
    pdo: float
    min: float
    max: float


class GradeBand(FrozenModel):
    grade: str
    pd_upper: float
    central_pd: float
    tier: str
    tier_zh: str
    expected_share: float


class GradeCapRule(FrozenModel):
    cci_cap: str            # a cap name of configs/indicators.yaml `caps`
    best_grade: str
    reason: str             # a reason code of configs/reason_codes.yaml


class GradeCaps(FrozenModel):
    cap_column: str
    rules: tuple[GradeCapRule, ...] = ()


class Stability(FrozenModel):
    max_notches_per_month: int = Field(ge=1)


class RatingScale(FrozenModel):
    score: ScoreSpec
    grades: tuple[GradeBand, ...]
    default_grade: str
    grade_caps: GradeCaps | None = None
    stability: Stability | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RatingScale:
        uppers = [g.pd_upper for g in self.grades]
        if uppers != sorted(uppers) or len(set(uppers)) != len(uppers):
            raise ValueError("grade pd_upper bounds must strictly increase from the best grade")
        if uppers[-1] <= 1.0:
            raise ValueError("the last grade must cover PD = 1 (pd_upper > 1)")
        unknown = [r.best_grade for r in (self.grade_caps.rules if self.grade_caps else ())
                   if r.best_grade not in self.grade_names]
        if unknown:
            raise ValueError(f"grade_caps name grades the scale lacks: {unknown}")
        return self

    @property
    def grade_names(self) -> tuple[str, ...]:
        return tuple(g.grade for g in self.grades)

    def band(self, grade: str) -> tuple[float, float]:
        """[lower, upper) PD bounds of a grade."""
        lower = 0.0
        for g in self.grades:
            if g.grade == grade:
                return lower, min(g.pd_upper, 1.0)
            lower = g.pd_upper
        raise KeyError(grade)


def cap_floors(scale: RatingScale) -> list[tuple[float, float, str]]:
    """§1.3 caps as (CCI cap at most, PD floor, reason), worst floor first: a firm whose credit-index veto
    cap is at or below the first value gets at least the PD floor, i.e. no better than the capped grade.

    The cap values come from configs/indicators.yaml, which also codes the conditions behind each cap, so
    the rating and the credit index cannot disagree on who is dishonest or restricted."""
    if scale.grade_caps is None:
        return []
    from data.marts.indicator_config import load_indicator_config

    caps = load_indicator_config().caps
    out = []
    for rule in scale.grade_caps.rules:
        value = getattr(caps, rule.cci_cap, None)
        if not isinstance(value, float):
            raise ValueError(f"rating_scale.yaml grade_caps: {rule.cci_cap!r} is not a cap of indicators.yaml")
        out.append((value, scale.band(rule.best_grade)[0], rule.reason))
    return sorted(out, key=lambda r: -r[1])


@lru_cache(maxsize=1)
def load_rating_scale() -> RatingScale:
    return load_yaml_model(RatingScale, configs_dir() / "rating_scale.yaml")


def pd_to_score(pd_: np.ndarray, scale: RatingScale | None = None) -> np.ndarray:
    """score = base + pdo/ln2 * ln(odds / base_odds), odds = (1-PD)/PD, rounded and clipped."""
    s = (scale or load_rating_scale()).score
    p = np.clip(np.asarray(pd_, dtype=float), 1e-9, 1 - 1e-9)
    raw = s.base_points + s.pdo / np.log(2) * np.log(((1 - p) / p) / s.base_odds)
    return np.clip(np.round(raw), s.min, s.max)


def grade_index(pd_: np.ndarray, scale: RatingScale | None = None) -> np.ndarray:
    """Position on the master scale (0 = best grade) of each PD: the first band whose upper bound exceeds it."""
    scale = scale or load_rating_scale()
    uppers = np.array([g.pd_upper for g in scale.grades])
    return np.minimum(np.searchsorted(uppers, np.asarray(pd_, dtype=float), side="right"), len(uppers) - 1)


def pd_to_grade(pd_: np.ndarray, scale: RatingScale | None = None) -> np.ndarray:
    """Master-scale grade of each PD."""
    scale = scale or load_rating_scale()
    return np.array(scale.grade_names, dtype=object)[grade_index(pd_, scale)]
