"""Expert overrides of a firm's grade (ratings_and_signals.md §1.3).

An analyst may set a firm's grade by hand, for a model version and a period: moving it more than one notch
from the model's grade needs a written reason; every override records the analyst, the model version and
the grade it replaced, and is logged in the audit chain of each answer it shapes. An override lapses when
the champion changes (a new model must be judged afresh) or when it expires or is revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from kernel.errors import ZhouxinError
from kernel.uscc import normalise_uscc, uscc_problem
from serving.operational import iso_utc, rating_overrides, revoke, utc_now

MIN_REASON_CHARS = 15


@dataclass(frozen=True)
class Override:
    override_id: str
    grade: str
    model_grade: str
    reason: str
    analyst: str


def notches(grades: list[str], a: str, b: str) -> int:
    return abs(grades.index(a) - grades.index(b))


def set_override(engine: sa.Engine, uscc: str, grade: str, model_grade: str, grades: list[str], analyst: str,
                 model: str, model_version: str, reason: str = "", days: int = 90) -> str:
    """Record an override; a move of more than one notch without a written reason is refused."""
    uscc = normalise_uscc(uscc)
    if (problem := uscc_problem(uscc)) is not None:
        raise ZhouxinError(f"uscc {uscc!r}: {problem}")
    for name, g in (("grade", grade), ("model grade", model_grade)):
        if g not in grades:
            raise ZhouxinError(f"{name} {g!r} is not on the master scale ({', '.join(grades)})")
    if grade == model_grade:
        raise ZhouxinError(f"the model already rates {uscc} {grade}: nothing to override")
    if not analyst.strip():
        raise ZhouxinError("an override names the analyst who made it")
    if notches(grades, grade, model_grade) > 1 and len(reason.strip()) < MIN_REASON_CHARS:
        raise ZhouxinError(f"moving {uscc} from {model_grade} to {grade} is {notches(grades, grade, model_grade)} "
                           f"notches: write the reason (at least {MIN_REASON_CHARS} characters)")
    if days <= 0:
        raise ZhouxinError(f"override duration must be positive, got {days} days")
    now = datetime.now(UTC)
    override_id = "OV_" + secrets.token_hex(8).upper()
    with engine.begin() as con:
        con.execute(rating_overrides.insert().values(
            override_id=override_id, uscc=uscc, model=model, model_version=str(model_version), grade=grade,
            model_grade=model_grade, reason=reason.strip(), analyst=analyst.strip(), created_at=iso_utc(now),
            expires_at=iso_utc(now + timedelta(days=days))))
    return override_id


_LIVE = (sa.select(rating_overrides.c.uscc, rating_overrides.c.override_id, rating_overrides.c.grade,
                   rating_overrides.c.model_grade, rating_overrides.c.reason, rating_overrides.c.analyst)
         .where(rating_overrides.c.uscc.in_(sa.bindparam("usccs", expanding=True)),
                rating_overrides.c.model == sa.bindparam("model"),
                rating_overrides.c.model_version == sa.bindparam("version"),
                rating_overrides.c.created_at <= sa.bindparam("at"), rating_overrides.c.expires_at > sa.bindparam("at"),
                rating_overrides.c.revoked_at.is_(None))
         .order_by(rating_overrides.c.created_at))


def live_overrides(engine: sa.Engine, usccs: list[str], model: str, model_version: str, at: str | None = None
                   ) -> dict[str, Override]:
    """The latest live override of each of these firms for this model version, in one query (a batch of
    firms costs one round trip, not one per firm); firms without one are absent."""
    if not usccs:
        return {}
    with engine.connect() as con:
        rows = con.execute(_LIVE, {"usccs": list(usccs), "model": model, "version": str(model_version),
                                   "at": at or utc_now()}).all()
    return {r[0]: Override(*r[1:]) for r in rows}      # ordered by creation: the latest one wins


def live_override(engine: sa.Engine, uscc: str, model: str, model_version: str, at: str | None = None
                  ) -> Override | None:
    """The latest live override of this firm for this model version, or None."""
    return live_overrides(engine, [uscc], model, model_version, at).get(uscc)


def revoke_override(engine: sa.Engine, override_id: str) -> None:
    revoke(engine, rating_overrides, "override_id", override_id, "override")


def list_overrides(engine: sa.Engine, uscc: str | None = None) -> list[dict]:
    q = sa.select(rating_overrides).order_by(rating_overrides.c.created_at)
    if uscc:
        q = q.where(rating_overrides.c.uscc == normalise_uscc(uscc))
    with engine.connect() as con:
        return [dict(r._mapping) for r in con.execute(q)]
