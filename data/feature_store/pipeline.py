"""The features step of the main job: warehouse -> marts -> Feast sources -> registry -> online store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from data.feature_store.definitions import Definitions, MartView, build_definitions
from data.feature_store.sources import export_mart, export_mart_batches, export_sources, source_path
from data.marts.events import serious_credit_events
from data.marts.grid import connect_warehouse, month_ends
from data.marts.registry import MARTS, MartContext
from data.marts.spec import mart_view_name
from kernel.errors import ZhouxinError
from kernel.profile import Profile, load_profile
from kernel.workspace import features_dir, platform_dir, warehouse_db


@dataclass
class FeaturesSummary:
    """What the features step did, for the readable summary and for lineage."""

    profile: str
    months: tuple[str, str]
    source_rows: dict[str, int] = field(default_factory=dict)
    mart_rows: dict[str, int] = field(default_factory=dict)
    mart_columns: dict[str, int] = field(default_factory=dict)
    views: int = 0
    services: dict[str, int] = field(default_factory=dict)
    online_values: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def world_months(ws: Path) -> tuple[str, str]:
    """The modelling months of the simulated world in the workspace (world.json)."""
    path = ws / "world.json"
    if not path.is_file():
        raise ZhouxinError(f"no world.json in {ws}: simulate a world first (`zhouxin data simulate`)")
    params = json.loads(path.read_text(encoding="utf-8"))["params"]
    return params["start"], params["end"]


def sources_dir(ws: Path) -> Path:
    return features_dir(ws) / "sources"


def mart_views() -> list[MartView]:
    return [MartView(name=m.name, features=m.features()) for m in MARTS]


def build_marts(ws: Path, start: str, end: str, names: Sequence[str] | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Build the marts for every month end in [start, end] and write them as Feast sources."""
    con = connect_warehouse(warehouse_db(ws))
    try:
        ctx = MartContext(con=con, months=month_ends(start, end), ws=ws,
                          events=serious_credit_events(con, platform_dir(ws)))
        rows = {}
        for m in MARTS:
            if names is not None and m.name not in names:
                continue
            declared = [f.name for f in m.features()]
            out = source_path(sources_dir(ws), mart_view_name(m.name))
            if m.stream is not None:
                rows[m.name] = export_mart_batches((_checked(m.name, b, declared) for b in m.stream(ctx)),
                                                   ["uscc", "as_of", *declared], out)
            else:
                df = _checked(m.name, m.build(ctx), declared)
                ctx.built[m.name] = df
                rows[m.name] = export_mart(df[["uscc", "as_of", *declared]], out)
            if progress:
                progress(m.name)
        return rows
    finally:
        con.close()


def _checked(name: str, df, declared: list[str]):
    missing = [c for c in declared if c not in df.columns]
    if missing:
        raise ZhouxinError(f"mart {name} lacks declared columns {missing[:5]}")
    return df


def definitions(ws: Path) -> Definitions:
    """Every Feast object for this workspace (marts included only once their sources exist)."""
    marts = [MartView(name=m.name, features=m.features()) for m in MARTS
             if source_path(sources_dir(ws), mart_view_name(m.name)).exists()]
    return build_definitions(sources_dir(ws), marts)


def build_features(ws: Path, profile: Profile | None = None, start: str | None = None, end: str | None = None,
                   progress: Callable[[str], None] | None = None) -> FeaturesSummary:
    """Export sources, build marts, apply the definitions and bulk-materialize the online store."""
    from data.feature_store.bulk import bulk_materialize
    from data.feature_store.store import apply_definitions, open_store
    from data.feature_store.training_set import view_sources

    profile = profile or load_profile()
    w_start, w_end = world_months(ws)
    start, end = start or w_start, end or w_end
    s = FeaturesSummary(profile=profile.name, months=(start, end))
    t = time.perf_counter()
    s.source_rows = export_sources(warehouse_db(ws), sources_dir(ws))
    s.seconds["sources"] = time.perf_counter() - t
    if progress:
        progress("sources")
    t = time.perf_counter()
    s.mart_rows = build_marts(ws, start, end, progress=progress)
    s.mart_columns = {v.name: len(v.features) for v in mart_views()}
    s.seconds["marts"] = time.perf_counter() - t
    t = time.perf_counter()
    defs = definitions(ws)
    store = open_store(ws, profile)
    apply_definitions(store, defs)
    s.views = len(defs.views)
    s.services = {name: sum(len(p.features) for p in svc.feature_view_projections)
                  for name, svc in defs.services.items()}
    s.seconds["apply"] = time.perf_counter() - t
    t = time.perf_counter()
    end_ts = datetime.combine(month_ends(end, end)[0], datetime.max.time())
    results = bulk_materialize(store, view_sources(store, list(defs.views)), as_of=end_ts, progress=progress)
    s.online_values = sum(r.values for r in results)
    s.seconds["materialize"] = time.perf_counter() - t
    return s


def rebuild_marts(ws: Path, names: Sequence[str], profile: Profile | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Rebuild only the named marts (a new or changed mart), re-apply the definitions and materialize just
    their views online; the sources and the other marts stay as they are. Returns rows per mart."""
    from data.feature_store.bulk import bulk_materialize
    from data.feature_store.store import apply_definitions, open_store
    from data.feature_store.training_set import view_sources

    known = {m.name for m in mart_views()}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ZhouxinError(f"unknown mart(s) {unknown}; known: {sorted(known)}")
    profile = profile or load_profile()
    start, end = world_months(ws)
    rows = build_marts(ws, start, end, names=list(names), progress=progress)
    store = open_store(ws, profile)
    apply_definitions(store, definitions(ws))
    end_ts = datetime.combine(month_ends(end, end)[0], datetime.max.time())
    bulk_materialize(store, view_sources(store, [mart_view_name(n) for n in names]), as_of=end_ts, progress=progress)
    return rows
