"""API keys per institution: issued once, stored hashed, rotatable with a grace period, revocable.

A key reads `zx_<key_id>_<secret>`: the key id is public (it appears in the audit log), the secret is 32
random bytes. Because the secret is high-entropy, one SHA-256 is enough (no password-style stretching
is needed) and keeps verification under a millisecond.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from kernel.errors import ZhouxinError
from serving.operational import api_keys, iso_utc, revoke, utc_now

PREFIX = "zx"


@dataclass(frozen=True)
class Caller:
    institution_id: str
    key_id: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def known_institutions() -> set[str]:
    """Institution ids of configs/products.yaml (the platform's roster)."""
    import yaml

    from kernel.config import configs_dir

    raw = yaml.safe_load((configs_dir() / "products.yaml").read_text(encoding="utf-8"))
    return {i["id"] for i in raw["institutions"]}


def issue_key(engine: sa.Engine, institution_id: str) -> str:
    """A new key for an institution on the roster; the plain key is returned once and never stored."""
    if institution_id not in known_institutions():
        raise ZhouxinError(f"institution {institution_id!r} is not on the roster (configs/products.yaml)")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with engine.begin() as con:
        con.execute(api_keys.insert().values(key_id=key_id, institution_id=institution_id,
                                             key_sha256=_hash(secret), created_at=utc_now()))
    return f"{PREFIX}_{key_id}_{secret}"


def rotate_key(engine: sa.Engine, institution_id: str, grace_days: int) -> str:
    """Issue a new key; the institution's live keys keep working for `grace_days`, then expire."""
    until = iso_utc(datetime.now(UTC) + timedelta(days=grace_days))
    new = issue_key(engine, institution_id)
    new_id = new.split("_")[1]
    with engine.begin() as con:
        con.execute(api_keys.update()
                    .where(api_keys.c.institution_id == institution_id, api_keys.c.key_id != new_id,
                           api_keys.c.revoked_at.is_(None),
                           sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > until))
                    .values(expires_at=until))
    return new


def revoke_key(engine: sa.Engine, key_id: str) -> None:
    revoke(engine, api_keys, "key_id", key_id, "key")


_BY_ID = sa.select(api_keys.c.institution_id, api_keys.c.key_sha256, api_keys.c.expires_at,
                   api_keys.c.revoked_at).where(api_keys.c.key_id == sa.bindparam("key_id"))


def authenticate(engine: sa.Engine, presented: str | None) -> Caller | None:
    """The caller a presented key belongs to, or None (unknown, malformed, revoked or expired)."""
    if not presented or not presented.startswith(f"{PREFIX}_") or presented.count("_") < 2:
        return None
    _, key_id, secret = presented.split("_", 2)
    with engine.connect() as con:
        row = con.execute(_BY_ID, {"key_id": key_id}).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utc_now():
        return None
    if not hmac.compare_digest(row.key_sha256, _hash(secret)):
        return None
    return Caller(row.institution_id, key_id)


def list_keys(engine: sa.Engine) -> list[dict]:
    """Every key's metadata (never the secret)."""
    with engine.connect() as con:
        rows = con.execute(sa.select(api_keys.c.key_id, api_keys.c.institution_id, api_keys.c.created_at,
                                     api_keys.c.expires_at, api_keys.c.revoked_at)
                           .order_by(api_keys.c.institution_id, api_keys.c.created_at)).mappings().all()
    return [dict(r) for r in rows]
