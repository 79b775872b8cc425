"""Online tables clustered by their key: the DDL rewrite, and what `feast apply`'s tables become."""

from __future__ import annotations

import sqlite3
from datetime import UTC
from pathlib import Path

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


def test_feasts_own_update_reads_writes_and_drops_a_clustered_table(tmp_path):
    """Feast's SQLite store, not ours, on a table `cluster_online_tables` re-declared: its `CREATE ... IF NOT
    EXISTS` keeps the clustered table, its write and read round-trip a value, its delete drops the table."""
    from datetime import datetime

    from feast import FeatureView, Field, FileSource
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.types import Float64

    from data.feature_store.definitions import enterprise_entity
    from data.feature_store.store import repo_config
    from kernel.profile import load_profile

    config = repo_config(load_profile("local"), tmp_path)
    path = Path(config.online_store.path)
    table = f"{config.project}_v"
    firm = enterprise_entity()
    view = FeatureView(name="v", entities=[firm], schema=[Field(name="x", dtype=Float64)],
                       source=FileSource(path=str(tmp_path / "v.parquet"), timestamp_field="ts"))
    online = SqliteOnlineStore()
    online.update(config, tables_to_delete=[], tables_to_keep=[view], entities_to_delete=[],
                  entities_to_keep=[firm], partial=False)
    assert cluster_online_tables(path, config.project) == [table]
    online.update(config, tables_to_delete=[], tables_to_keep=[view], entities_to_delete=[],
                  entities_to_keep=[firm], partial=False)           # a later `feast apply`
    key = EntityKey(join_keys=["uscc"], entity_values=[Value(string_val="91330900MA0000001X")])
    now = datetime(2023, 12, 31, tzinfo=UTC)
    online.online_write_batch(config, view, [(key, {"x": Value(double_val=0.25)}, now, now)], progress=None)
    (_, got), = online.online_read(config, view, [key], ["x"])
    assert got["x"].double_val == 0.25
    with sqlite3.connect(path) as con:
        assert _state(con, table) == (True, {f"{table}_ek"})             # still clustered; apply's index is back
    online.update(config, tables_to_delete=[view], tables_to_keep=[], entities_to_delete=[],
                  entities_to_keep=[], partial=False)
    with sqlite3.connect(path) as con:
        assert con.execute("select count(*) from sqlite_master where tbl_name = ?", (table,)).fetchone() == (0,)
