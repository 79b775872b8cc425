"""Reason codes: every served column has a business reason; the configuration is checked."""

from __future__ import annotations

import pytest

from data.marts.registry import MARTS
from kernel.catalog import load_catalog
from kernel.errors import ConfigError
from training.reasons import ReasonCodes, column_reasons, load_reason_codes


def test_every_catalog_field_and_mart_column_maps_to_a_defined_reason():
    cols = [f"{s.code}__{f.name}" for s in load_catalog().sub_items for f in s.fields if f.name != "uscc"]
    cols += [f"mart_{m.name}__{f.name}" for m in MARTS for f in m.features()]
    mapping = column_reasons(cols)
    codes = load_reason_codes()
    assert set(mapping) == set(cols)
    assert set(mapping.values()) <= set(codes.reasons)
    assert mapping["dishonest_debtors__performance_status"] == "court_enforcement"
    assert all(t.zh and t.en for t in codes.reasons.values())


def test_unmapped_columns_and_undefined_reasons_are_refused():
    with pytest.raises(ConfigError, match="maps no reason"):
        column_reasons(["nowhere__x"])
    with pytest.raises(ValueError, match="undefined reasons"):
        ReasonCodes(reasons={"tax": {"zh": "税", "en": "tax"}}, sources={"tax_monthly": "taxes"}, mart_groups={})
