"""Training configuration models (configs/training/*.yaml)."""

from __future__ import annotations

from typing import Any, Literal

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


class CreditRatingConfig(FrozenModel):
    model_name: str
    experiment: str
    feature_service: str
    label: LabelSpec
    split: SplitSpec
    features: FeatureSpec
    lightgbm: dict[str, Any]
    monotone: bool
    calibration: Literal["isotonic"]
    pip_requirements: list[str]


def load_credit_rating_config() -> CreditRatingConfig:
    return load_yaml_model(CreditRatingConfig, configs_dir() / "training" / "credit_rating.yaml")


def credit_rating_config_path():
    return configs_dir() / "training" / "credit_rating.yaml"
