"""The platform's operational tables: API keys, consents, rating overrides and the append-only audit log.

SQLite in the `local` profile, PostgreSQL in `production` (the profile's `operational.url`); SQLAlchemy
Core so one definition serves both. The audit table refuses UPDATE and DELETE by trigger in both
databases; the hash chain (serving/audit.py) detects tampering by anyone who drops the trigger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from kernel.errors import ZhouxinError
from kernel.profile import Profile, load_profile

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),          # public part of the key, shown in logs
    sa.Column("institution_id", sa.String(16), nullable=False, index=True),
    sa.Column("key_sha256", sa.String(64), nullable=False),        # the secret is never stored
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32)),                        # set on rotation (grace period)
    sa.Column("revoked_at", sa.String(32)),
)

consents = sa.Table(
    "consents", metadata,
    sa.Column("consent_id", sa.String(40), primary_key=True),
    sa.Column("uscc", sa.String(18), nullable=False),
    sa.Column("institution_id", sa.String(16), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(200), nullable=False),            # comma-separated scopes (§6)
    sa.Column("granted_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32)),
    sa.Column("signature_method", sa.String(16), nullable=False),
    sa.Index("ix_consents_lookup", "institution_id", "uscc", "purpose"),
)

rating_overrides = sa.Table(                                        # ratings_and_signals §1.3 expert overrides
    "rating_overrides", metadata,
    sa.Column("override_id", sa.String(40), primary_key=True),
    sa.Column("uscc", sa.String(18), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(16), nullable=False),     # lapses when the champion changes
    sa.Column("grade", sa.String(8), nullable=False),
    sa.Column("model_grade", sa.String(8), nullable=False),        # what the model said when it was set
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("analyst", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32)),
    sa.Index("ix_rating_overrides_lookup", "uscc", "model", "model_version"),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("receipt_id", sa.String(40), nullable=False, unique=True),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("time", sa.String(32), nullable=False, index=True),
    sa.Column("institution_id", sa.String(16), index=True),
    sa.Column("key_id", sa.String(16)),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(32)),
    sa.Column("uscc", sa.String(18), index=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("consent_id", sa.String(40)),
    sa.Column("model", sa.String(64)),
    sa.Column("model_version", sa.String(16)),
    sa.Column("features", sa.Text),                                # canonical JSON of the values used
    sa.Column("answer", sa.Text),                                  # canonical JSON of what was returned
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
)

_SQLITE_GUARDS = [
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]
_PG_GUARDS = [
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]


def utc_now() -> str:
    """Timestamps are ISO-8601 UTC strings: ordered as text and hashed identically in every database."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")          # readers never block the audit writer
    cur.execute("PRAGMA synchronous=NORMAL")        # durable at checkpoints; WAL keeps commits atomic
    cur.execute("PRAGMA busy_timeout=5000")         # two workers append to one chain
    cur.close()


def operational_url(ws: Path, profile: Profile | None = None) -> str:
    return (profile or load_profile()).operational.resolved(ws)


def _no_autocheckpoint(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA wal_autocheckpoint=0")      # the owner checkpoints off the request path
    cur.execute("PRAGMA journal_size_limit=67108864")  # and a restarted log is cut back to 64 MiB
    cur.close()


def open_operational(url: str, background_checkpoints: bool = False) -> sa.Engine:
    """An engine on the operational database with every table and the append-only guards in place.

    SQLite checkpoints its write-ahead log inside whichever commit crosses 1,000 pages: with audit rows of
    ~10 pages that is one request in a hundred, stalled 10-30 ms. `background_checkpoints=True` turns that
    off for this engine's connections; its owner must then call `checkpoint` regularly (the gateway does,
    from a thread)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        if background_checkpoints:
            event.listen(engine, "connect", _no_autocheckpoint)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    create_tables(engine)
    return engine


def revoke(engine: sa.Engine, table: sa.Table, id_column: str, row_id: str, what: str) -> None:
    """Stamp `revoked_at` on one live row (keys, consents, overrides); an unknown or already revoked id is
    an error naming it."""
    with engine.begin() as con:
        n = con.execute(table.update().where(table.c[id_column] == row_id, table.c.revoked_at.is_(None))
                        .values(revoked_at=utc_now())).rowcount
    if n == 0:
        raise ZhouxinError(f"no live {what} with id {row_id!r}")


def checkpoint(engine: sa.Engine) -> tuple[int, int, int] | None:
    """Copy the SQLite write-ahead log into the database without waiting on anyone (PASSIVE); returns
    SQLite's (busy, frames in the log, frames copied), None on PostgreSQL.

    The row is read to the end: a PRAGMA statement left unfinished keeps its read lock, and then no writer
    can ever restart the log from its beginning (it grows without bound)."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as con:
        busy, frames, copied = con.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(busy), int(frames), int(copied)


def create_tables(engine: sa.Engine) -> None:
    guards = _SQLITE_GUARDS if engine.dialect.name == "sqlite" else _PG_GUARDS
    with engine.begin() as con:
        if engine.dialect.name != "sqlite":
            con.execute(sa.text("SELECT pg_advisory_xact_lock(20261205)"))   # concurrent workers start together
        metadata.create_all(con)
        for stmt in guards:
            con.execute(sa.text(stmt))
