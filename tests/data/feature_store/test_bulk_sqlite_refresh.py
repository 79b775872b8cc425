"""The bulk SQLite writer replaces a table whole: a refresh leaves only the new rows, and a write that
fails part-way leaves the old table as it was (no half-written population, no scratch table)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data.feature_store import bulk
from data.feature_store.sqlite_layout import is_clustered, leads_primary_key

DDL = ('CREATE TABLE "p_v" (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, vector_value BLOB, '
       "event_ts timestamp, created_ts timestamp,  PRIMARY KEY(entity_key, feature_name))")


def _rows(n: int, scale: float) -> pa.Table:
    return pa.table({
        "uscc": [f"91330900MA{i:08d}" for i in range(n)],
        "event_timestamp": pa.array([datetime(2023, 12, 31)] * n, pa.timestamp("us")),
        "created_ts": pa.array([datetime(2024, 1, 2)] * n, pa.timestamp("us")),
        "x": pa.array([None if i % 4 == 0 else i * scale for i in range(n)], pa.float64()),
        "name": pa.array([f"公司{i}" if i % 3 else "" for i in range(n)], pa.string()),
    })


def _write(path, rows: pa.Table) -> int:
    with ThreadPoolExecutor(max_workers=1) as pool:
        return bulk.write_sqlite(str(path), "p_v", ["name", "x"], bulk.sqlite_chunks(rows, ["name", "x"], pool))


def _table(path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        names = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        assert names == ["p_v"], names                       # no scratch table left behind
        return con.execute("select entity_key, feature_name, value, value_text from p_v order by 1, 2").fetchall()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(bulk, "SQLITE_CHUNK_FIRMS", 3)      # several chunks per view
    path = tmp_path / "online.db"
    with sqlite3.connect(path) as con:
        con.execute(DDL)
        con.execute('CREATE INDEX "p_v_ek" ON "p_v" (entity_key)')
    return path


def test_refresh_replaces_every_row(store):
    assert _write(store, _rows(10, 1.0)) == 20
    assert _write(store, _rows(7, 2.5)) == 14
    rows = _table(store)
    assert len(rows) == 14
    texts = {(k, f): t for k, f, _, t in rows}
    key = bulk.entity_keys(["91330900MA00000005"])[0]
    assert texts[(key, "x")] == "12.5" and texts[(key, "name")] == "公司5"
    assert texts[(bulk.entity_keys(["91330900MA00000003"])[0], "name")] == ""
    assert texts[(bulk.entity_keys(["91330900MA00000004"])[0], "x")] is None


def test_failed_write_leaves_the_old_table(store, monkeypatch):
    _write(store, _rows(10, 1.0))
    before = _table(store)
    real = bulk.sqlite_rows
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("chunk 3 could not be built")
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "sqlite_rows", failing)
    with pytest.raises(ValueError, match="chunk 3"):
        _write(store, _rows(10, 9.0))
    assert _table(store) == before


def _plan(con) -> str:
    return " ".join(r[3] for r in con.execute(      # Feast's online_read query (feast 0.67 sqlite.py)
        "explain query plan select entity_key, feature_name, value, event_ts from p_v "
        "where entity_key in (?, ?) order by entity_key", (b"a", b"b")))


def _ddl(con) -> str:
    return con.execute("select sql from sqlite_master where type = 'table' and name = 'p_v'").fetchone()[0]


def test_the_refreshed_table_is_clustered_and_an_index_the_key_leads_is_left_out(store):
    with sqlite3.connect(store) as con:
        con.execute('CREATE INDEX "p_v_ts" ON "p_v" (event_ts)')             # not implied by the key: kept
    _write(store, _rows(10, 1.0))
    with sqlite3.connect(store) as con:
        names = {r[0] for r in con.execute("select name from sqlite_master where type = 'index' and sql is not null")}
        assert names == {"p_v_ts"}
        assert is_clustered(_ddl(con))
        plan = _plan(con)
    assert "USING PRIMARY KEY (entity_key=?)" in plan and "TEMP B-TREE" not in plan


def test_a_refresh_without_clustering_keeps_a_rowid_table(store):
    with ThreadPoolExecutor(max_workers=1) as pool:
        bulk.write_sqlite(str(store), "p_v", ["name", "x"], bulk.sqlite_chunks(_rows(5, 1.0), ["name", "x"], pool),
                          cluster=False)
    with sqlite3.connect(store) as con:
        assert not is_clustered(_ddl(con))
        assert "USING INDEX sqlite_autoindex_p_v_1 (entity_key=?)" in _plan(con)
    assert len(_table(store)) == 10


@pytest.mark.parametrize(("columns", "leads"), [
    ("entity_key", True), ("entity_key, feature_name", True), ("feature_name", False),
    ("entity_key, value", False), ("feature_name, entity_key", False),
])
def test_leads_primary_key(tmp_path, columns, leads):
    with sqlite3.connect(tmp_path / "t.db") as con:
        con.execute(DDL)
        con.execute(f'CREATE INDEX "i" ON "p_v" ({columns})')
        assert leads_primary_key(con, "p_v", "i") is leads


@given(st.integers(0, 5000), st.integers(1, 300), st.integers(1, 3000))
def test_chunk_bounds_cover_every_firm_once_in_growing_chunks(n, first, most):
    bounds = bulk.chunk_bounds(n, first, most)
    assert [a for a, _ in bounds] == [0, *[b for _, b in bounds[:-1]]][:len(bounds)]   # contiguous, in order
    assert (bounds[-1][1] if bounds else 0) == n
    sizes = [b - a for a, b in bounds]
    assert all(0 < s <= max(1, min(first, most)) * 2 ** k and s <= most for k, s in enumerate(sizes))
    assert sizes[:-1] == sorted(sizes[:-1])                                 # growing (the last may be short)
