"""A feature store built from the small world's warehouse, shared by the feature-store tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def small_feature_store(small_warehouse, tmp_path_factory):
    """(ws, store, defs): sources exported from the small warehouse, definitions applied (local profile)."""
    from data.feature_store.definitions import build_definitions
    from data.feature_store.sources import export_sources
    from data.feature_store.store import apply_definitions, open_store
    from kernel.profile import load_profile
    from kernel.workspace import warehouse_db

    src, _ = small_warehouse
    ws = tmp_path_factory.mktemp("small-features")
    shutil.copytree(src / "warehouse", ws / "warehouse")
    export_sources(warehouse_db(ws), ws / "features" / "sources")
    defs = build_definitions(ws / "features" / "sources")
    store = open_store(ws, load_profile("local"))
    apply_definitions(store, defs)
    return ws, store, defs
