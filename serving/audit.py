"""The audit log: every call to the service, one hash-chained, append-only row per firm answered.

Row n stores sha256(prev_hash + canonical JSON of its content); changing, removing or reordering any row
breaks every later link, so `verify_chain` names the first row that does not check. The export for the
provincial platform ends with the head hash, which anchors the chain outside this database.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from serving.operational import audit_log, utc_now

GENESIS = "0" * 64
CONTENT = ("seq", "receipt_id", "request_id", "time", "institution_id", "key_id", "route", "purpose", "uscc",
           "status", "consent_id", "model", "model_version", "features", "answer")


def canonical(value: Any) -> str | None:
    """Canonical JSON (sorted keys, no spaces, NaN -> null) so a row hashes the same everywhere."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    body = json.dumps([row.get(k) for k in CONTENT], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def new_receipt_id() -> str:
    return "RC_" + secrets.token_hex(10).upper()


@dataclass(frozen=True)
class Entry:
    """One firm's answer (or refusal) to be logged; JSON fields are already canonical strings."""

    request_id: str
    route: str
    status: int
    institution_id: str | None = None
    key_id: str | None = None
    purpose: str | None = None
    uscc: str | None = None
    consent_id: str | None = None
    model: str | None = None
    model_version: str | None = None
    features: str | None = None
    answer: str | None = None


AUDIT_LOCK = 20261206          # PostgreSQL advisory-lock key that serialises appends to the chain


_HEAD = sa.select(audit_log.c.seq, audit_log.c.row_hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT = audit_log.insert()


class _FileChainLock:
    """Appends to a SQLite chain queue on an OS file lock beside the database, taken before SQLite's own
    write lock: the kernel hands the lock to the next waiting worker the moment it is free, where SQLite's
    busy handler sleeps and polls (1, 2, 5, 10 ... ms between tries). A thread lock orders the process's
    own threads first (an flock belongs to the open file, which every thread of the process shares)."""

    def __init__(self, database: str) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(f"{database}.chain-lock", os.O_RDWR | os.O_CREAT, 0o600)
        weakref.finalize(self, os.close, self._fd)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


_FILE_LOCKS: weakref.WeakKeyDictionary[sa.Engine, _FileChainLock] = weakref.WeakKeyDictionary()
_FILE_LOCKS_GUARD = threading.Lock()


def _queue(engine: sa.Engine) -> AbstractContextManager[None]:
    """Where this engine's appends wait their turn: the file lock for SQLite on disk; PostgreSQL queues
    on its advisory lock inside the transaction (`_lock_chain`)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.get(engine)
        if lock is None:
            lock = _FILE_LOCKS[engine] = _FileChainLock(database)
    return lock


def _lock_chain(con: sa.Connection) -> None:
    """Take the chain's write lock for this transaction: appends from every worker queue up here."""
    if con.dialect.name == "sqlite":
        con.exec_driver_sql("BEGIN IMMEDIATE")        # the write lock now, before the head is read
    else:
        con.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})


def append(engine: sa.Engine, entry: Entry, receipt_id: str | None = None, retries: int = 50) -> str:
    """Append one row at the chain's head and return its receipt id.

    One transaction: take the chain's lock, read the head, insert the next row, commit. Writers from
    several workers queue on the lock, so the chain never forks; should a writer still lose the race for
    the next `seq` (the primary key, e.g. a tool appending without the lock), it rereads the head and retries.
    """
    receipt = receipt_id or new_receipt_id()
    for _ in range(retries):
        try:
            with _queue(engine), engine.connect() as con:
                _lock_chain(con)
                head = con.execute(_HEAD).first()
                seq, prev = (head.seq + 1, head.row_hash) if head else (1, GENESIS)
                row = {"seq": seq, "receipt_id": receipt, "time": utc_now(), **entry.__dict__}
                row["row_hash"], row["prev_hash"] = row_hash(prev, row), prev
                con.execute(_INSERT, row)
                con.commit()
            return receipt
        except IntegrityError:
            continue
    raise RuntimeError(f"audit append lost {retries} races in a row; receipt {receipt} not written")


@dataclass(frozen=True)
class ChainReport:
    rows: int
    ok: bool
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(engine: sa.Engine, batch: int = 5000) -> ChainReport:
    """Recompute every link in order; the first row whose hash or link does not check is reported."""
    prev, expected_seq, n = GENESIS, 1, 0
    for row in _rows(engine, batch):
        if row["seq"] != expected_seq:
            return ChainReport(n, False, prev, expected_seq, f"row {expected_seq} is missing (next is {row['seq']})")
        if row["prev_hash"] != prev:
            return ChainReport(n, False, prev, row["seq"], "link to the previous row is broken")
        if row_hash(prev, row) != row["row_hash"]:
            return ChainReport(n, False, prev, row["seq"], "content does not match its hash (row altered)")
        prev, expected_seq, n = row["row_hash"], expected_seq + 1, n + 1
    return ChainReport(n, True, prev)


def _rows(engine: sa.Engine, batch: int, where: Any = None) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        q = sa.select(audit_log).where(audit_log.c.seq > last)
        if where is not None:
            q = q.where(where)
        with engine.connect() as con:
            rows = con.execute(q.order_by(audit_log.c.seq).limit(batch)).mappings().all()
        if not rows:
            return
        for r in rows:
            yield dict(r)
        last = rows[-1]["seq"]


def query(engine: sa.Engine, uscc: str | None = None, institution_id: str | None = None,
          since: str | None = None, until: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows by firm, institution and time range (ISO dates or timestamps, UTC), oldest first."""
    conds = []
    if uscc:
        conds.append(audit_log.c.uscc == uscc)
    if institution_id:
        conds.append(audit_log.c.institution_id == institution_id)
    if since:
        conds.append(audit_log.c.time >= since)
    if until:
        conds.append(audit_log.c.time < until)
    q = sa.select(audit_log).where(*conds).order_by(audit_log.c.seq)
    if limit:
        q = q.limit(limit)
    with engine.connect() as con:
        return [dict(r) for r in con.execute(q).mappings().all()]


def receipt(engine: sa.Engine, receipt_id: str) -> dict[str, Any] | None:
    with engine.connect() as con:
        row = con.execute(sa.select(audit_log).where(audit_log.c.receipt_id == receipt_id)).mappings().first()
    return dict(row) if row else None


def export_jsonl(engine: sa.Engine, path: Path, since: str | None = None, until: str | None = None) -> dict:
    """Write the (filtered) log as JSON lines for the provincial platform, then a trailer with the head hash.

    Written to a temporary name and renamed, so a reader never sees half an export.
    """
    report = verify_chain(engine)
    tmp = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    conds = [c for c in (audit_log.c.time >= since if since else None,
                         audit_log.c.time < until if until else None) if c is not None]
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in _rows(engine, 5000, sa.and_(*conds) if conds else None):
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
        trailer = {"trailer": True, "rows": n, "chain_rows": report.rows, "chain_ok": report.ok,
                   "head_hash": report.head_hash, "exported_at": utc_now()}
        fh.write(json.dumps(trailer) + "\n")
    tmp.replace(path)
    return trailer
