"""features/ is a valid Feast repo: every generated object is bound to a module-level name."""

from __future__ import annotations

import runpy
from pathlib import Path

from feast import FeatureService, FeatureView

REPO = Path(__file__).resolve().parents[3] / "features"


def test_definitions_module_binds_every_view_and_service(small_feature_store, monkeypatch):
    ws, store, _ = small_feature_store
    monkeypatch.setenv("ZHOUXIN_WORKSPACE", str(ws))
    names = runpy.run_path(str(REPO / "definitions.py"))
    views = {v.name for v in names.values() if isinstance(v, FeatureView)}
    services = {s.name for s in names.values() if isinstance(s, FeatureService)}
    assert views == {v.name for v in store.list_feature_views()}
    assert services == {s.name for s in store.list_feature_services()}
