"""Model families the service answers with; each module exposes `load(spec, features) -> Family`.

A family knows which online features its champion needs, how to turn a vector into an answer, and
nothing about HTTP, keys or consent: those belong to the service. Adding a family is one module here
and one entry in configs/serving.yaml.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from serving.config import FamilySpec


class Family(Protocol):
    """A loaded champion, ready to answer."""

    name: str
    registered_model: str
    version: str
    feature_refs: list[str]

    def answer(self, vectors: list[dict[str, Any]], as_of: datetime) -> list[dict[str, Any]]:
        """One answer per vector (plain JSON values); the same input always gives the same answer."""
        ...


@dataclass(frozen=True)
class ChampionRef:
    registered_model: str
    version: str
    run_id: str


def champion_ref(spec: FamilySpec) -> ChampionRef | None:
    """The version the family's alias points at now (None when nothing is registered yet)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        mv = MlflowClient().get_model_version_by_alias(spec.registered_model, spec.alias)
    except MlflowException:
        return None
    return ChampionRef(spec.registered_model, str(mv.version), mv.run_id)


def load_family(spec: FamilySpec, version: str, view_fields: dict[str, list[str]],
                view_types: dict[str, dict[str, str]]) -> Family:
    """Import the family's module and load the given registered version."""
    module = importlib.import_module(spec.module)
    return module.load(spec, version, view_fields, view_types)
