"""Shared fixtures: small seeded worlds and a per-test workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/ goes at the END of sys.path: at the front, tests/data would shadow the `data` package
sys.path.append(str(Path(__file__).resolve().parent))
from support import simulate_small_world

os.environ.setdefault("ZHOUXIN_PERSON_SALT", "test-salt-not-secret")


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder for one test."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("ZHOUXIN_WORKSPACE", str(ws))
    return ws


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
