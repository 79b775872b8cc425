"""Serving configuration (configs/serving.yaml)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field

from kernel.config import FrozenModel, configs_dir, load_yaml_model


class FamilySpec(FrozenModel):
    """One served model family: its module under serving/families and its MLflow registered model."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    module: str
    registered_model: str
    alias: str = "champion"


class ServingConfig(FrozenModel):
    host: str
    port: int = Field(ge=1, le=65535)
    workers: int = Field(ge=1, le=32)
    model_threads: int = Field(1, ge=1, le=64)
    timeout_s: int = Field(ge=1)
    reload_interval_s: float = Field(gt=0)
    audit_checkpoint_interval_s: float = Field(gt=0)
    batch_max_items: int = Field(ge=1, le=10_000)
    key_grace_days: int = Field(ge=0)
    open_paths: tuple[str, ...]
    purposes: tuple[str, ...]
    route_scopes: dict[str, str]
    families: tuple[FamilySpec, ...]
    online_reader: Literal["direct", "feast"]


@cache
def load_serving_config() -> ServingConfig:
    return load_yaml_model(ServingConfig, configs_dir() / "serving.yaml")
