"""How the platform stores Feast's SQLite online tables: Feast's columns and key, clustered by that key.

Feast declares each table as a rowid table with PRIMARY KEY (entity_key, feature_name) and an index on
entity_key: three B-trees, and a value sits apart from its key. Declared WITHOUT ROWID, the same table is
one B-tree in key order with the values inline: same columns, same key, so Feast's reads, its upsert
(`INSERT ... ON CONFLICT(entity_key, feature_name) DO UPDATE`) and its drop run unchanged, and the
entity_key index is redundant (the key's first column serves every lookup it would). On the default
world the bulk write took 25.3-26.9 -> 20.9-22.2 s and the database 3.21 -> 1.84 GB.
Not for a store with Feast's vector search: its sqlite-vec tables join on the rowid.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

_WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*;?\s*$", re.IGNORECASE)


def is_clustered(ddl: str) -> bool:
    """Whether a CREATE TABLE statement declares a WITHOUT ROWID table."""
    return bool(_WITHOUT_ROWID.search(ddl))


def clustered(ddl: str) -> str:
    """Feast's CREATE TABLE as a WITHOUT ROWID table (unchanged if it already is one). A table without a
    primary key cannot be one: that is an error, not a silent rowid table."""
    if is_clustered(ddl):
        return ddl
    if "PRIMARY KEY" not in ddl.upper():
        raise ValueError(f"a WITHOUT ROWID table needs a primary key: {ddl}")
    return f"{ddl.rstrip().rstrip(';').rstrip()} WITHOUT ROWID"


def leads_primary_key(con: sqlite3.Connection, table: str, index: str) -> bool:
    """Whether `index` covers the leading columns of `table`'s primary key, and nothing else: every
    lookup it serves, the primary key serves in the same order. Feast gives each online table one
    (`<table>_ek` on entity_key); keeping it up cost a fifth of the widest view's insert."""
    info = con.execute(f'pragma table_info("{table}")').fetchall()
    primary = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    columns = [r[2] for r in con.execute(f'pragma index_info("{index}")')]
    return bool(columns) and columns == primary[:len(columns)]


def table_ddl(con: sqlite3.Connection, table: str) -> tuple[str, list[tuple[str, str]]]:
    """A table's CREATE statement and its explicit indexes (name, CREATE INDEX statement)."""
    ddl = con.execute("select sql from sqlite_master where type = 'table' and name = ?", (table,)).fetchone()
    if ddl is None:
        raise RuntimeError(f"online table {table} missing: apply the feature definitions first")
    idx = con.execute("select name, sql from sqlite_master where type = 'index' and tbl_name = ? "
                      "and sql is not null", (table,)).fetchall()
    return ddl[0], idx


def cluster_online_tables(path: Path, project: str) -> list[str]:
    """After `feast apply`: re-declare the project's empty rowid tables WITHOUT ROWID and drop the
    indexes their primary key makes redundant (on any table). A populated rowid table keeps its rows and
    layout until the next bulk refresh rebuilds it clustered. Returns the tables re-declared."""
    con = sqlite3.connect(path, isolation_level=None)
    changed = []
    try:
        con.execute("begin")
        tables = [name for (name,) in con.execute("select name from sqlite_master where type = 'table'")
                  if name.startswith(f"{project}_")]
        for table in tables:
            ddl, idx = table_ddl(con, table)
            redundant = [name for name, _ in idx if leads_primary_key(con, table, name)]
            for name in redundant:
                con.execute(f'drop index "{name}"')
            empty = con.execute(f'select not exists (select 1 from "{table}")').fetchone()[0]
            if empty and not is_clustered(ddl) and "PRIMARY KEY" in ddl.upper():
                con.execute(f'drop table "{table}"')
                con.execute(clustered(ddl))
                for name, sql in idx:
                    if name not in redundant:
                        con.execute(sql)
                changed.append(table)
        con.execute("commit")
        return changed
    except BaseException:
        if con.in_transaction:
            con.execute("rollback")
        raise
    finally:
        con.close()
