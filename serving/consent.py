"""Consent (授权, products_and_demands.md §6): an enterprise authorises an institution for a purpose.

A bank sees a firm only under a live consent: granted, not expired, not revoked, for the calling
institution and the stated purpose, with a scope covering the route (`full_profile` covers every scope).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from kernel.errors import ZhouxinError
from kernel.uscc import normalise_uscc, uscc_problem
from serving.operational import consents, iso_utc, revoke, utc_now

SCOPES = ("basic_profile", "tax_data", "social_insurance_data", "utility_data", "judicial_data", "full_profile")
SIGNATURES = ("e_seal", "e_signature")


def grant_consent(engine: sa.Engine, uscc: str, institution_id: str, purpose: str, scopes: list[str],
                  days: int, purposes: tuple[str, ...], signature_method: str = "e_seal",
                  starts: datetime | None = None) -> str:
    """Record an authorisation; every argument is checked and named in the error if wrong."""
    from serving.keys import known_institutions

    uscc = normalise_uscc(uscc)
    if (problem := uscc_problem(uscc)) is not None:
        raise ZhouxinError(f"uscc {uscc!r}: {problem}")
    if institution_id not in known_institutions():
        raise ZhouxinError(f"institution {institution_id!r} is not on the roster (configs/products.yaml)")
    if purpose not in purposes:
        raise ZhouxinError(f"purpose {purpose!r} unknown; one of {', '.join(purposes)}")
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ZhouxinError(f"scope {bad or scopes!r} unknown; choose from {', '.join(SCOPES)}")
    if signature_method not in SIGNATURES:
        raise ZhouxinError(f"signature method {signature_method!r} unknown; one of {', '.join(SIGNATURES)}")
    if days <= 0:
        raise ZhouxinError(f"consent duration must be positive, got {days} days")
    start = starts or datetime.now(UTC)
    consent_id = "CS_" + secrets.token_hex(8).upper()
    with engine.begin() as con:
        con.execute(consents.insert().values(
            consent_id=consent_id, uscc=uscc, institution_id=institution_id, purpose=purpose,
            scope=",".join(sorted(set(scopes))), granted_at=iso_utc(start),
            expires_at=iso_utc(start + timedelta(days=days)), signature_method=signature_method))
    return consent_id


def revoke_consent(engine: sa.Engine, consent_id: str) -> None:
    revoke(engine, consents, "consent_id", consent_id, "consent")


# built once: a per-call statement costs more to construct than to run (bench_serving)
_LIVE = (sa.select(consents.c.consent_id, consents.c.scope)
         .where(consents.c.institution_id == sa.bindparam("inst"), consents.c.uscc == sa.bindparam("uscc"),
                consents.c.purpose == sa.bindparam("purpose"), consents.c.granted_at <= sa.bindparam("at"),
                consents.c.expires_at > sa.bindparam("at"),
                sa.or_(consents.c.revoked_at.is_(None), consents.c.revoked_at > sa.bindparam("at")))
         .order_by(consents.c.expires_at.desc()))


def live_consent(engine: sa.Engine, institution_id: str, uscc: str, purpose: str, scope: str,
                 at: str | None = None) -> str | None:
    """The id of a consent covering (institution, firm, purpose, scope) at `at` (default now), or None."""
    at = at or utc_now()
    with engine.connect() as con:
        rows = con.execute(_LIVE, {"inst": institution_id, "uscc": uscc, "purpose": purpose, "at": at}).all()
    for consent_id, scopes in rows:
        granted = scopes.split(",")
        if scope in granted or "full_profile" in granted:
            return consent_id
    return None


def list_consents(engine: sa.Engine, uscc: str | None = None, institution_id: str | None = None) -> list[dict]:
    q = sa.select(consents)
    if uscc:
        q = q.where(consents.c.uscc == normalise_uscc(uscc))
    if institution_id:
        q = q.where(consents.c.institution_id == institution_id)
    with engine.connect() as con:
        return [dict(r) for r in con.execute(q.order_by(consents.c.granted_at)).mappings().all()]
