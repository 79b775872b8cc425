"""Shared fixtures: small seeded worlds and a per-test workspace."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ZHOUXIN_PERSON_SALT", "test-salt-not-secret")


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder for one test."""
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("ZHOUXIN_WORKSPACE", str(ws))
    return ws
