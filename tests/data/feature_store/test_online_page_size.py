"""A new SQLite online store gets the profile's page size; an existing one keeps its own."""

from __future__ import annotations

import sqlite3

import pytest
from pydantic import ValidationError

from data.feature_store.store import open_store
from kernel.profile import FeastProfile, SqliteOnline, load_profile


def _page_size(path) -> int:
    with sqlite3.connect(path) as con:
        return con.execute("pragma page_size").fetchone()[0]


def _local_with_page(page_size: int):
    local = load_profile("local")
    feast = local.feast.model_dump()
    feast["online_store"]["page_size"] = page_size
    return local.model_copy(update={"feast": FeastProfile(**feast)})


def test_new_online_store_gets_the_profile_page_size(tmp_path):
    profile = _local_with_page(8192)
    open_store(tmp_path, profile)
    db = tmp_path / profile.feast.online_store.path
    assert _page_size(db) == 8192
    assert load_profile("local").feast.online_store.page_size == 16384


def test_existing_online_store_keeps_its_page_size(tmp_path):
    profile = _local_with_page(16384)
    db = tmp_path / profile.feast.online_store.path
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as con:
        con.execute("create table t (x)")             # SQLite's default page size, 4,096
    open_store(tmp_path, profile)
    assert _page_size(db) == 4096


@pytest.mark.parametrize("bad", [1000, 256, 131072])
def test_page_size_must_be_a_power_of_two_sqlite_accepts(bad):
    with pytest.raises(ValidationError, match="page_size"):
        SqliteOnline(type="sqlite", path="features/online.db", page_size=bad)
