"""Replay a decision receipt: reload the exact model version it names and recompute the answer from the
feature values the audit row stored, then compare with what the bank was told."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kernel.errors import ZhouxinError
from kernel.profile import Profile
from serving import audit
from serving.config import load_serving_config
from serving.families import load_family
from serving.online import OnlineFeatures
from serving.operational import open_operational

ENVELOPE = ("uscc", "purpose", "data_as_of", "model", "receipt_id")


@dataclass(frozen=True)
class Replay:
    receipt_id: str
    route: str
    status: int
    model: str | None
    version: str | None
    stored: dict[str, Any] | None
    recomputed: dict[str, Any] | None
    matches: bool
    row_intact: bool
    note: str


def replay_receipt(ws: Path, profile: Profile, receipt_id: str) -> Replay:
    """Recompute one receipt's answer. Refusals (401/403) and not-found replay as themselves."""
    import mlflow

    engine = open_operational(profile.operational.resolved(ws))
    row = audit.receipt(engine, receipt_id)
    if row is None:
        raise ZhouxinError(f"receipt {receipt_id!r} is not in the audit log")
    intact = audit.row_hash(row["prev_hash"], row) == row["row_hash"]
    stored = json.loads(row["answer"]) if row["answer"] else None
    if row["status"] != 200 or row["features"] is None:
        return Replay(receipt_id, row["route"], row["status"], row["model"], row["model_version"], stored, None,
                      True, intact, f"status {row['status']}: no model answer to recompute")
    spec = next((f for f in load_serving_config().families if f.registered_model == row["model"]), None)
    if spec is None:
        raise ZhouxinError(f"receipt {receipt_id}: model {row['model']!r} is not a served family")
    mlflow.set_tracking_uri(profile.mlflow.resolved(ws)[0])
    online = OnlineFeatures(ws, profile)
    family = load_family(spec, row["model_version"], online.view_fields(), online.view_types())
    used = json.loads(row["features"])
    as_of = datetime.fromisoformat(used["as_of"])
    values = used["values"]
    model_values = {k: values.get(k) for k in (r.replace(":", "__", 1) for r in family.feature_refs)}
    again = family.answer([model_values], as_of)[0]
    if row["route"] == "profile":
        told = stored.get("rating") if stored else None
    else:
        told = {k: v for k, v in (stored or {}).items() if k not in ENVELOPE}
    same = audit.canonical(told) == audit.canonical(again)
    note = "recomputed answer equals the stored answer" if same else "recomputed answer DIFFERS from the stored one"
    return Replay(receipt_id, row["route"], row["status"], row["model"], row["model_version"], told, again, same,
                  intact, note)
