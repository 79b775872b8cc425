"""Training configuration models (configs/training/*.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kernel.config import FrozenModel, configs_dir, load_yaml_model


class LabelSpec(FrozenModel):
    horizon_days: int
    default_window_days: int


class SplitSpec(FrozenModel):
    test_months: int
    validation_months: int
    embargo_months: int
    min_train_months: int


class FeatureSpec(FrozenModel):
    max_categories: int
    drop_constant: bool


class ScorecardSpec(FrozenModel):
    """The WoE scorecard challenger: every choice below is made on the train split only."""

    screen_candidates: int = Field(gt=0)    # columns kept by the quick quantile-IV screen for optimal binning
    max_features: int = Field(gt=0)         # scorecard features (highest IV after binning, decorrelated)
    min_iv: float = Field(ge=0)             # information value a binned feature needs to be considered
    max_correlation: float = Field(gt=0, le=1)  # |corr| of WoE with a stronger selected feature that drops it
    screen_bins: int = Field(ge=2)          # quantile bins of the IV screen
    max_n_prebins: int = Field(ge=2)        # optbinning pre-binning
    min_bin_size: float = Field(gt=0, lt=0.5)  # share of train rows a final bin must hold
    max_n_bins: int = Field(ge=2)
    undeclared_trend: Literal["auto", "auto_asc_desc", "ascending", "descending"]  # no risk direction declared
    logistic_c: float = Field(gt=0)         # inverse L2 strength of the logistic regression on WoE
    calibration: Literal["platt", "isotonic"]  # platt keeps the served score a sum of the table's points
    reason_baseline: Literal["best_bin", "mean"]  # points lost vs the feature's best bin, or vs its train mean
    top_reasons: int = Field(ge=1)


class CreditRatingConfig(FrozenModel):
    model_name: str
    experiment: str
    feature_service: str
    label: LabelSpec
    split: SplitSpec
    features: FeatureSpec
    model: Literal["lightgbm", "scorecard"] = "lightgbm"   # what `zhouxin train credit-rating` fits by default
    lightgbm: dict[str, Any]
    scorecard: ScorecardSpec
    monotone: bool
    calibration: Literal["auto", "isotonic", "cir", "platt"]
    pip_requirements: list[str]


def load_credit_rating_config() -> CreditRatingConfig:
    return load_yaml_model(CreditRatingConfig, configs_dir() / "training" / "credit_rating.yaml")


def credit_rating_config_path():
    return configs_dir() / "training" / "credit_rating.yaml"
