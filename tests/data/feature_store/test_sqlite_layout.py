"""Online tables clustered by their key: the DDL rewrite, and what `feast apply`'s tables become."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data.feature_store.sqlite_layout import cluster_online_tables, clustered, is_clustered

FEAST_DDL = ('CREATE TABLE "{t}" (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, vector_value BLOB, '
             "event_ts timestamp, created_ts timestamp,  PRIMARY KEY(entity_key, feature_name))")


@given(st.sampled_from(["", ";", " ;", "\n", "  "]), st.sampled_from(["p_v", "p_mart_x", "a b"]))
def test_clustered_appends_without_rowid_once(tail, table):
    ddl = FEAST_DDL.format(t=table) + tail
    out = clustered(ddl)
    assert is_clustered(out) and not is_clustered(ddl)
    assert clustered(out) == out
    with sqlite3.connect(":memory:") as con:           # what comes out is a statement SQLite accepts
        con.execute(out)
        assert con.execute(f'select count(*) from "{table}"').fetchone() == (0,)


def test_a_table_without_a_primary_key_cannot_be_clustered():
    with pytest.raises(ValueError, match="needs a primary key"):
        clustered('CREATE TABLE "t" (a BLOB, b TEXT)')


def _state(con, table):
    ddl = con.execute("select sql from sqlite_master where type = 'table' and name = ?", (table,)).fetchone()[0]
    idx = {r[0] for r in con.execute("select name from sqlite_master where type = 'index' and tbl_name = ? "
                                     "and sql is not null", (table,))}
    return is_clustered(ddl), idx


def test_apply_clusters_empty_tables_and_drops_redundant_indexes_only(tmp_path):
    path = tmp_path / "online.db"
    with sqlite3.connect(path) as con:
        for t in ("p_empty", "p_full", "other_v"):
            con.execute(FEAST_DDL.format(t=t))
            con.execute(f'CREATE INDEX "{t}_ek" ON "{t}" (entity_key)')
        con.execute('CREATE INDEX "p_empty_ts" ON "p_empty" (event_ts)')
        con.execute("insert into p_full (entity_key, feature_name, value) values (x'01', 'f', x'2900')")
    assert cluster_online_tables(path, "p") == ["p_empty"]
    with sqlite3.connect(path) as con:
        assert _state(con, "p_empty") == (True, {"p_empty_ts"})
        assert _state(con, "p_full") == (False, set())                 # rows kept, layout kept, index dropped
        assert con.execute("select entity_key, feature_name, value from p_full").fetchall() == [(b"\x01", "f", b")\x00")]
        assert _state(con, "other_v") == (False, {"other_v_ek"})       # another project's table: untouched
    assert cluster_online_tables(path, "p") == []                     # idempotent
