"""What the service does for a call, apart from HTTP: authenticate, check consent, read, answer, audit.

Kept free of BentoML so the rules can be read (and replayed) in one place; the BentoML class in
serving/service.py only parses requests and turns `Outcome`s into responses. Every call writes audit
rows before it answers, so nothing is returned that was not logged.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from data.feature_store.profile_blocks import expand_blocks
from kernel.profile import Profile
from serving import audit
from serving.config import ServingConfig
from serving.consent import live_consent
from serving.families import Family, champion_ref, load_family
from serving.keys import Caller, authenticate
from serving.online import OnlineFeatures
from serving.operational import checkpoint, open_operational
from serving.overrides import live_overrides

log = logging.getLogger("zhouxin.serving")
NOT_PERMITTED = ("no live authorisation of institution {inst} for this enterprise, purpose {purpose!r} "
                 "and scope {scope!r}")


@dataclass
class Outcome:
    status: int
    body: dict[str, Any]
    receipts: list[str] = field(default_factory=list)


def plain(value: Any) -> Any:
    """A JSON-ready value: datetimes as ISO strings, numpy scalars as Python numbers, NaN as None."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _not_found(uscc: str) -> dict[str, Any]:
    return {"uscc": uscc, "error": "not_found", "detail": "the platform holds no data on this enterprise"}


def new_request_id() -> str:
    return "RQ_" + secrets.token_hex(8).upper()


class Gateway:
    """One per worker process: the operational engine, the online store and the loaded champions."""

    def __init__(self, ws: Path, profile: Profile, cfg: ServingConfig, watch: bool = True) -> None:
        import mlflow

        self.ws, self.prof, self.cfg = ws, profile, cfg
        tracking, _ = profile.mlflow.resolved(ws)
        mlflow.set_tracking_uri(tracking)
        self.engine: sa.Engine = open_operational(profile.operational.resolved(ws), background_checkpoints=True)
        self.features = OnlineFeatures(ws, profile, cfg.online_reader)
        self._view_fields = self.features.view_fields()
        self._view_types = self.features.view_types()
        self.blocks = expand_blocks(self._view_fields)
        self.data_as_of: datetime | None = self.features.data_as_of()
        self.families: dict[str, Family] = {}
        self._refs_cache: dict[tuple[str, str], list[str]] = {}
        for spec in cfg.families:
            ref = champion_ref(spec)
            if ref is not None:
                self.families[spec.name] = load_family(spec, ref.version, self._view_fields, self._view_types)
        self._stop = threading.Event()
        if watch:
            threading.Thread(target=self._watch, name="champion-watch", daemon=True).start()
        threading.Thread(target=self._checkpoints, name="audit-checkpoint", daemon=True).start()

    # ---- hot swap -------------------------------------------------------------------------------
    def reload(self) -> dict[str, str]:
        """Load any family whose alias moved; swap it in whole (a request sees the old or the new one)."""
        changed = {}
        self.features.refresh()
        self.data_as_of = self.features.data_as_of()
        for spec in self.cfg.families:
            ref = champion_ref(spec)
            current = self.families.get(spec.name)
            if ref is not None and (current is None or current.version != ref.version):
                self.families[spec.name] = load_family(spec, ref.version, self._view_fields, self._view_types)
                changed[spec.name] = ref.version
                log.info("family %s now serves %s version %s", spec.name, spec.registered_model, ref.version)
        return changed

    def _watch(self) -> None:
        while not self._stop.wait(self.cfg.reload_interval_s):
            try:
                self.reload()
            except Exception:                       # keep serving the loaded champion; say why
                log.exception("champion reload failed; still serving the loaded versions")

    def _checkpoints(self) -> None:
        """Fold the audit log's write-ahead log into the database every `audit_checkpoint_interval_s`, outside any request
        (SQLite releases the GIL while it copies and syncs)."""
        interval = self.cfg.audit_checkpoint_interval_s
        while not self._stop.wait(interval):
            try:
                checkpoint(self.engine)
            except Exception:                       # a busy database is retried on the next tick
                log.warning("audit checkpoint failed; retrying in %s s", interval, exc_info=True)

    def close(self) -> None:
        self._stop.set()
        checkpoint(self.engine)
        self.engine.dispose()

    # ---- readiness --------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        if "credit_rating" not in self.families:
            return False, "no credit-rating champion is registered"
        if self.data_as_of is None:
            return False, "the online store was never materialized"
        return True, "ok"

    # ---- the rules ----------------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Caller | None:
        return authenticate(self.engine, token)

    def refuse_unauthenticated(self, route: str, request_id: str) -> Outcome:
        receipt = audit.append(self.engine, audit.Entry(request_id=request_id, route=route, status=401))
        return Outcome(401, {"error": "unauthenticated",
                             "detail": "a valid API key is required: 'Authorization: Bearer <key>' or 'X-API-Key'",
                             "receipt_id": receipt}, [receipt])

    def _consent(self, caller: Caller, route: str, uscc: str, purpose: str) -> str | None:
        return live_consent(self.engine, caller.institution_id, uscc, purpose, self.cfg.route_scopes[route])

    def _forbidden(self, caller: Caller, route: str, uscc: str, purpose: str, request_id: str) -> dict[str, Any]:
        """Log the refusal; the body is the same whether or not the firm exists."""
        rc = audit.append(self.engine, audit.Entry(
            request_id=request_id, route=route, status=403, institution_id=caller.institution_id,
            key_id=caller.key_id, purpose=purpose, uscc=uscc))
        return {"error": "forbidden", "receipt_id": rc, "detail": NOT_PERMITTED.format(
            inst=caller.institution_id, purpose=purpose, scope=self.cfg.route_scopes[route])}

    def _log_answer(self, caller: Caller, route: str, uscc: str, purpose: str, request_id: str, consent: str,
                    fam: Family, status: int, values: dict[str, Any] | None, body: dict[str, Any]) -> str:
        """The audit row of an answered firm: the feature values used and the answer, before it is sent."""
        return audit.append(self.engine, audit.Entry(
            request_id=request_id, route=route, status=status, institution_id=caller.institution_id,
            key_id=caller.key_id, purpose=purpose, uscc=uscc, consent_id=consent, model=fam.registered_model,
            model_version=fam.version,
            features=(audit.canonical({"as_of": self.data_as_of.isoformat(), "values": values})
                      if values is not None else None),
            answer=audit.canonical(body)))

    def model_answer(self, uscc: str) -> tuple[Family, dict[str, Any]]:
        """The champion's own answer for a firm (no consent, no audit row): for analysts setting an
        override, which records itself. Unknown firms raise LookupError."""
        fam = self._family("credit_rating")
        vec = {k: plain(v) for k, v in self.features.read([uscc], fam.feature_refs)[0].items()}
        if all(v is None for v in vec.values()):
            raise LookupError(f"the platform holds no data on {uscc}")
        return fam, fam.answer([vec], self.data_as_of)[0]

    def _overrides(self, fam: Family, usccs: list[str]) -> dict[str, Any]:
        """Analysts' live overrides (§1.3) of these firms for the loaded version, in one query; none for a
        family that has no overrides."""
        if getattr(fam, "apply_override", None) is None:
            return {}
        return live_overrides(self.engine, usccs, fam.registered_model, fam.version)

    def _overridden(self, fam: Family, answer: dict[str, Any], found: Any) -> dict[str, Any]:
        """The answer under an override, if any; a firm in default stays D whatever was overridden."""
        if found is None or answer.get("in_default"):
            return answer
        return fam.apply_override(answer, found)  # type: ignore[attr-defined]

    def _profile_refs(self, fam: Family) -> list[str]:
        """The profile blocks' refs plus the family's, computed once per loaded version."""
        key = (fam.registered_model, fam.version)
        refs = self._refs_cache.get(key)
        if refs is None:
            block_refs = [r for refs_ in self.blocks.values() for r in refs_]
            refs = self._refs_cache[key] = sorted(set(block_refs) | set(fam.feature_refs))
        return refs

    def _family(self, name: str) -> Family:
        fam = self.families.get(name)
        if fam is None:
            raise LookupError(f"no champion of {name} is loaded")
        return fam

    def score(self, caller: Caller, usccs: list[str], purpose: str, route: str,
              request_id: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
        """Per firm: (status, body). Refused firms get 403 bodies that say nothing about the firm."""
        fam = self._family("credit_rating")
        results: list[tuple[int, dict[str, Any]] | None] = [None] * len(usccs)
        receipts: list[str] = []
        allowed: list[tuple[int, str, str]] = []
        for i, u in enumerate(usccs):
            consent = self._consent(caller, route, u, purpose)
            if consent is None:
                body = {"uscc": u, **self._forbidden(caller, route, u, purpose, request_id)}
                results[i] = (403, body)
                receipts.append(body["receipt_id"])
            else:
                allowed.append((i, u, consent))
        if allowed:
            as_of = self.data_as_of
            vectors = [{k: plain(v) for k, v in vec.items()}
                       for vec in self.features.read([u for _, u, _ in allowed], fam.feature_refs)]
            answers = fam.answer(vectors, as_of)
            overrides = self._overrides(fam, [u for _, u, _ in allowed])
            for (i, u, consent), vec, ans in zip(allowed, vectors, answers, strict=True):
                if all(v is None for v in vec.values()):
                    status, body = 404, _not_found(u)
                else:
                    status, body = 200, {"uscc": u, "purpose": purpose, "data_as_of": as_of.isoformat(),
                                         "model": {"name": fam.registered_model, "version": fam.version},
                                         **self._overridden(fam, ans, overrides.get(u))}
                rc = self._log_answer(caller, route, u, purpose, request_id, consent, fam, status, vec, body)
                body["receipt_id"] = rc
                results[i] = (status, body)
                receipts.append(rc)
        return [r for r in results if r is not None], receipts

    def profile(self, caller: Caller, uscc: str, purpose: str, request_id: str) -> Outcome:
        """The firm's file: registration, ownership, credit index and indicators, rating with reasons."""
        route = "profile"
        consent = self._consent(caller, route, uscc, purpose)
        if consent is None:
            body = self._forbidden(caller, route, uscc, purpose, request_id)
            return Outcome(403, body, [body["receipt_id"]])
        fam = self._family("credit_rating")
        vec = {k: plain(v) for k, v in self.features.read([uscc], self._profile_refs(fam))[0].items()}
        as_of = self.data_as_of
        if all(v is None for v in vec.values()):
            status, body = 404, _not_found(uscc)
            model_vec = None
        else:
            model_vec = {k: vec.get(k) for k in (r.replace(":", "__", 1) for r in fam.feature_refs)}
            rating = self._overridden(fam, fam.answer([model_vec], as_of)[0],
                                      self._overrides(fam, [uscc]).get(uscc))
            body = {"uscc": uscc, "purpose": purpose, "data_as_of": as_of.isoformat(),
                    "model": {"name": fam.registered_model, "version": fam.version}}
            for block, brefs in self.blocks.items():
                body[block] = {r.split(":", 1)[1]: vec.get(r.replace(":", "__", 1)) for r in brefs}
            body["rating"] = rating
            status = 200
        rc = self._log_answer(caller, route, uscc, purpose, request_id, consent, fam, status,
                              vec if model_vec else None, body)
        body["receipt_id"] = rc
        return Outcome(status, body, [rc])
