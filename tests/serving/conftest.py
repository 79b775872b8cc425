"""Operational databases for serving tests: a SQLite file and a private schema on the real PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from serving.operational import open_operational

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request, tmp_path):
    """An operational engine on SQLite, or on PostgreSQL in a schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        eng = open_operational(f"sqlite:///{tmp_path}/operational.db")
        yield eng
        eng.dispose()
        return
    schema = f"zx_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG)
    with admin.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {schema}"))
    eng = open_operational(f"{PG}?options=-csearch_path%3D{schema}")
    yield eng
    eng.dispose()
    with admin.begin() as con:
        con.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
