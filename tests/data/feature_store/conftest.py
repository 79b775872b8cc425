"""Shared checks for the feature-store tests."""

from __future__ import annotations

import math

import pytest

from data.feature_store.online_read import DirectOnlineReader


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def assert_direct_equals_feast(store, firms: list[str], service: str = "credit_rating",
                               refs: list[str] | None = None) -> int:
    """Compare both readers on every feature of a service (or on `refs`); returns the number of non-null
    values seen."""
    if refs is None:
        svc = store.get_feature_service(service)
        refs = [f"{p.name}:{f.name}" for p in svc.feature_view_projections for f in p.features]
    resp = store.get_online_features(features=refs, entity_rows=[{"uscc": u} for u in firms],
                                     full_feature_names=True).to_dict()
    direct = DirectOnlineReader(store).read(firms, refs)
    seen = 0
    for i in range(len(firms)):
        assert set(direct[i]) == {r.replace(":", "__", 1) for r in refs}
        for col, value in direct[i].items():
            assert _same(resp[col][i], value), (firms[i], col, resp[col][i], value)
            seen += value is not None
    return seen


@pytest.fixture(scope="session")
def direct_equals_feast():
    """check(store, firms, service, refs) -> non-null values compared: the direct reader equals Feast's SDK."""
    return assert_direct_equals_feast
