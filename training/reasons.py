"""Reason codes: every model column mapped to one business reason (configs/reason_codes.yaml).

The vocabulary comes from the catalog and the marts' declarations, not from a model, so a loan officer
reads the same reasons whichever model is champion; the model's per-firm contributions only rank them.
"""

from __future__ import annotations

from pydantic import model_validator

from data.marts.registry import MARTS
from data.marts.spec import mart_view_name
from kernel.catalog import load_catalog
from kernel.config import FrozenModel, configs_dir, load_yaml_model
from kernel.errors import ConfigError


class ReasonText(FrozenModel):
    zh: str
    en: str


class ReasonCodes(FrozenModel):
    reasons: dict[str, ReasonText]
    sources: dict[str, str]
    mart_groups: dict[str, str]

    @model_validator(mode="after")
    def _known_reasons(self) -> ReasonCodes:
        unknown = {r for r in [*self.sources.values(), *self.mart_groups.values()] if r not in self.reasons}
        if unknown:
            raise ValueError(f"mappings name undefined reasons: {sorted(unknown)}")
        return self


def load_reason_codes() -> ReasonCodes:
    return load_yaml_model(ReasonCodes, configs_dir() / "reason_codes.yaml")


def column_reasons(columns: list[str], codes: ReasonCodes | None = None) -> dict[str, str]:
    """`view__feature` -> reason for every model column; a column no mapping covers is a config error."""
    codes = codes or load_reason_codes()
    sub_items = {s.code for s in load_catalog().sub_items}
    mart_group = {f"{mart_view_name(m.name)}__{f.name}": f.reason_group for m in MARTS for f in m.features()}
    out, missing = {}, []
    for c in columns:
        view = c.split("__", 1)[0]
        if c in mart_group and mart_group[c] in codes.mart_groups:
            out[c] = codes.mart_groups[mart_group[c]]
        elif view in sub_items and view in codes.sources:
            out[c] = codes.sources[view]
        else:
            missing.append(c)
    if missing:
        raise ConfigError(f"reason_codes.yaml maps no reason for {len(missing)} columns, e.g. {missing[:3]}")
    return out
