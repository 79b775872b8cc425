"""Credit rating: PD, score, grade and reasons from the champion, plus the firm's credit index.

The registered artefact (CreditRatingModel, shipped in the MLflow model's code) carries calibration,
master scale, reason mapping and feature service; this module only fetches what it needs and shapes it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from data.feature_store.profile_blocks import expand_blocks
from serving.config import FamilySpec

TIMESTAMP_TYPES = ("UnixTimestamp",)
IN_DEFAULT = "mart_credit_events__in_default"
DEFAULT_REASON = "serious_credit_event"


def _days_before(as_of: datetime, value: Any) -> float | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None and as_of.tzinfo is not None:
        moment = moment.replace(tzinfo=as_of.tzinfo)
    elif moment.tzinfo is not None and as_of.tzinfo is None:
        moment = moment.replace(tzinfo=None)
    return (as_of - moment).total_seconds() / 86400.0


def _number(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


class CreditRatingFamily:
    name = "credit_rating"

    def __init__(self, spec: FamilySpec, version: str, model: Any, view_fields: dict[str, list[str]],
                 view_types: dict[str, dict[str, str]]) -> None:
        self.registered_model, self.version, self.model = spec.registered_model, version, model
        used = model.used_columns()
        blocks = expand_blocks(view_fields)
        index_refs, event_refs = blocks["credit_index"], blocks["credit_events"]
        self.index_columns = [r.replace(":", "__", 1) for r in index_refs]
        self.cap_column = getattr(model, "cap_column", None)
        cap_refs = {self.cap_column.replace("__", ":", 1)} if self.cap_column else set()
        self.feature_refs = sorted({c.replace("__", ":", 1) for c in used} | set(index_refs) | set(event_refs)
                                   | cap_refs)
        self.date_columns = {c for c in used
                             if view_types.get(c.split("__", 1)[0], {}).get(c.split("__", 1)[1]) in TIMESTAMP_TYPES}

    def answer(self, vectors: list[dict[str, Any]], as_of: datetime) -> list[dict[str, Any]]:
        """PD/score/grade/reasons from the champion; a firm in default (§0) is grade D and not scored."""
        rows = [{c: (_days_before(as_of, v) if c in self.date_columns else v) for c, v in vec.items()}
                for vec in vectors]
        x = self.model.encode(rows)
        model_pd = self.model.pd12(x)
        if hasattr(self.model, "apply_caps"):
            p, caps = self.model.apply_caps(model_pd, [vec.get(self.cap_column) if self.cap_column else None
                                                       for vec in vectors])
        else:                                  # a version registered before the §1.3 caps existed
            p, caps = model_pd, [None] * len(vectors)
        scores, grades = self.model.score(p), self.model.grade(p)
        reasons = self.model.reasons(x)
        out = []
        for i, vec in enumerate(vectors):
            idx = {c.split("__", 1)[1]: vec.get(c) for c in self.index_columns}
            in_default = vec.get(IN_DEFAULT) is True
            codes = [DEFAULT_REASON] if in_default else \
                [c for c in [caps[i], *reasons.iloc[i].tolist()] if c is not None]
            out.append({
                "pd12": 1.0 if in_default else round(float(p[i]), 6),
                "score": None if in_default else int(scores[i]),
                "grade": "D" if in_default else str(grades[i]),
                "in_default": in_default,
                "model_pd12": None if in_default else round(float(model_pd[i]), 6),
                "rating_cap": None if in_default else caps[i],
                "reasons": [{"code": c, "zh": self.model.reason_texts(c)[0], "en": self.model.reason_texts(c)[1]}
                            for c in codes],
                "credit_index": {"cci": _number(idx.get("cci")), "tier": idx.get("cci_tier"),
                                 "cap": _number(idx.get("cci_cap")),
                                 "sub_indices": {k.removeprefix("idx_"): _number(v) for k, v in idx.items()
                                                 if k.startswith("idx_")}},
            })
        return out

    def apply_override(self, answer: dict[str, Any], override: Any) -> dict[str, Any]:
        """An analyst's grade replaces the model's: the PD moves into the grade's band (the nearest point
        to the model's PD), the score follows it, and the override travels with the answer."""
        names, uppers = list(self.model.grade_names), list(self.model.grade_uppers)
        i = names.index(override.grade)
        lower, upper = (uppers[i - 1] if i else 0.0), min(uppers[i], 1.0)
        p = round(min(max(answer["pd12"], lower), upper - 1e-6), 6)
        return answer | {"pd12": p, "score": int(self.model.score(np.array([p]))[0]), "grade": override.grade,
                         "override": {"override_id": override.override_id, "grade": override.grade,
                                      "model_grade": override.model_grade, "reason": override.reason,
                                      "analyst": override.analyst}}


def load(spec: FamilySpec, version: str, view_fields: dict[str, list[str]],
         view_types: dict[str, dict[str, str]]) -> CreditRatingFamily:
    """Load one registered version's artefact from the MLflow registry (tracking URI already set)."""
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{spec.registered_model}/{version}").unwrap_python_model()
    return CreditRatingFamily(spec, version, model, view_fields, view_types)
