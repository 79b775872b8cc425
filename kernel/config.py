"""Load YAML files from configs/ into frozen pydantic models (extra fields forbidden)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from kernel.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class FrozenModel(BaseModel):
    """Base for every configuration model: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def configs_dir() -> Path:
    """The configs folder: ZHOUXIN_CONFIGS if set, else the repository's configs/."""
    env = os.environ.get("ZHOUXIN_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "configs"


def load_yaml_model(model: type[M], path: Path) -> M:
    """Read one YAML file and validate it; errors name the file and the offending key."""
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from exc


def file_sha256(path: Path) -> str:
    """Content hash of a file (configuration files for lineage tags, deliveries for their manifests),
    read in 1 MiB chunks so a large delivery is never held whole for it."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
