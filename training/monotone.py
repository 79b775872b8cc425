"""Monotone constraints from the declared risk directions (catalog fields and mart columns).

A model column `view__feature` gets +1 when a higher value means more risk (PD may only rise), -1 when it
means less, 0 otherwise (identifiers, categories, and dates turned into ages, whose direction the catalog
does not state).
"""

from __future__ import annotations

from data.marts.registry import MARTS
from data.marts.spec import mart_view_name
from kernel.catalog import load_catalog

_SIGN = {"+": 1, "-": -1}


def declared_directions() -> dict[str, int]:
    """`view__feature` -> +1 / -1 for every feature with a declared risk direction."""
    out: dict[str, int] = {}
    for spec in load_catalog().sub_items:
        for f in spec.fields:
            if f.dtype in ("int", "float", "bool") and f.risk_direction in _SIGN:
                out[f"{spec.code}__{f.name}"] = _SIGN[f.risk_direction]
    for m in MARTS:
        for f in m.features():
            if f.dtype in ("int", "float", "bool") and f.risk_direction in _SIGN:
                out[f"{mart_view_name(m.name)}__{f.name}"] = _SIGN[f.risk_direction]
    return out


def monotone_constraints(columns: list[str], categorical: set[str]) -> list[int]:
    d = declared_directions()
    return [0 if c in categorical else d.get(c, 0) for c in columns]
