"""Shared fixtures: small seeded worlds and a per-test workspace."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("ZHOUXIN_PERSON_SALT", "test-salt-not-secret")


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder for one test."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("ZHOUXIN_WORKSPACE", str(ws))
    return ws


SMALL_WORLD = {"enterprises": 400, "start": "2018-01", "end": "2018-12", "seed": 7,
               "burn_in_years": 2, "event_history_years": 1, "series_history_years": 1,
               "oracle": {"paths": 64, "chunk": 32, "evaluation_months": ["2018-03", "2018-06"]}}


def simulate_small_world(ws: Path, **overrides: object):
    """Simulate the small test world (all modules, dirty records, oracle) into `ws`."""
    from data.simulate.params import load_world_params
    from data.simulate.run import simulate_world

    return simulate_world(load_world_params(**(SMALL_WORLD | overrides)), ws)


def tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under root (relative path -> hash)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.fixture(scope="session")
def simulate_small():
    """The function that simulates the small test world into a folder (with optional overrides)."""
    return simulate_small_world


@pytest.fixture(scope="session")
def hash_tree():
    """The function that hashes every file under a folder."""
    return tree_hashes


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """One small world per test session (read-only for tests: copy it before changing anything)."""
    ws = tmp_path_factory.mktemp("small-world")
    summary = simulate_small_world(ws)
    return ws, summary


@pytest.fixture(scope="session")
def small_warehouse(small_world, tmp_path_factory):
    """The small world ingested once (read-only for tests)."""
    import shutil

    from data.warehouse.ingest import ingest_all

    src, _ = small_world
    ws = tmp_path_factory.mktemp("small-warehouse")
    shutil.copytree(src / "raw", ws / "raw")
    shutil.copytree(src / "truth", ws / "truth")
    shutil.copy(src / "world.json", ws / "world.json")
    summary = ingest_all(ws)
    return ws, summary


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


@pytest.fixture(scope="session")
def small_built_features(small_world, small_warehouse, tmp_path_factory):
    """(ws, summary): the whole features step on the small world — marts, Feast registry, online store
    (local profile). Read-only for tests: copy it before changing anything."""
    from data.feature_store.pipeline import build_features
    from kernel.profile import load_profile

    world, _ = small_world
    wh, _ = small_warehouse
    ws = tmp_path_factory.mktemp("features-pipeline")
    shutil.copytree(wh / "warehouse", ws / "warehouse")
    if (world / "platform").exists():                         # the 2018 world predates the platform
        shutil.copytree(world / "platform", ws / "platform")
    shutil.copy(world / "world.json", ws / "world.json")
    summary = build_features(ws, load_profile("local"))
    return ws, summary
