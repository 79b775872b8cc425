"""Entry point of the simulate stage: build one world into the workspace, atomically.

Everything is written into a temporary folder beside the workspace's `raw/`, `truth/` and `platform/`
and swapped in at the end, so an interrupted run never leaves a half-written world behind.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.simulate.calendar import month_label
from data.simulate.context import ObservationModule
from data.simulate.deliver import FileSink
from data.simulate.dirty import DirtyInjector
from data.simulate.engine import Simulation
from data.simulate.modules import default_modules
from data.simulate.params import WorldParams
from data.simulate.truth import TruthRecorder
from kernel.catalog import load_catalog
from kernel.config import configs_dir, file_sha256
from kernel.resources import peak_rss_mb

WORLD_FOLDERS = ("raw", "truth", "platform")


@dataclass(frozen=True)
class SimulationSummary:
    enterprises: int
    slots_used: int
    start: str
    end: str
    months: int
    hazard_a: float
    rows_by_sub_item: dict[str, int]
    total_rows: int
    files: int
    seconds: float
    peak_rss_mb: float
    workspace: str

    @property
    def records_per_second(self) -> float:
        return self.total_rows / max(self.seconds, 1e-9)


def simulate_world(params: WorldParams, workspace: Path, modules: Sequence[ObservationModule] | None = None,
                   monte_carlo: bool = True, dirty: bool = True,
                   progress: Callable[[int, int], None] | None = None) -> SimulationSummary:
    """Simulate the world of `params` into `workspace` (raw/, truth/, platform/ and world.json)."""
    t0 = time.perf_counter()
    catalog = load_catalog()
    workspace.mkdir(parents=True, exist_ok=True)
    staging = workspace / ".simulate-staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    dirt = DirtyInjector(catalog, params.seed) if dirty else None
    sink = FileSink(root=staging, catalog=catalog, dirt=dirt)
    sim = Simulation(params=params, modules=list(modules) if modules is not None else default_modules(), sink=sink,
                     catalog=catalog)
    if dirt is not None:
        dirt.uscc_pool = sim.ent.uscc     # mislinks point at other enterprises of the same world
    recorder = TruthRecorder(root=staging / "truth", hazard_a=sim.hazard_a, links_getter=lambda: sim.net.links,
                             seed=params.seed, monte_carlo=monte_carlo)
    sim.month_hooks.append(recorder)
    months = list(sim.months())
    for i, t in enumerate(months):
        sim.step(t)
        if progress:
            progress(i + 1, len(months))
    sim.emitter.flush_all()
    recorder.finish(sim.ent, sim.net, sim.latent.current_mu, params.sector_names)
    peak = peak_rss_mb()
    seconds = time.perf_counter() - t0
    summary = SimulationSummary(
        enterprises=params.enterprises, slots_used=int(sim.latent.state.born.sum()), start=month_label(params.t_first),
        end=params.end, months=len(months), hazard_a=sim.hazard_a, rows_by_sub_item=dict(sorted(sink.rows_written.items())),
        total_rows=int(sum(sink.rows_written.values())), files=len(sink.files), seconds=seconds, peak_rss_mb=peak,
        workspace=str(workspace))
    world = {"params": params.model_dump(mode="json", by_alias=True), "hazard_a": sim.hazard_a,
             "config_sha256": {p.name: file_sha256(p) for p in sorted((configs_dir() / "simulation").glob("*.yaml"))},
             "catalog_sha256": file_sha256(configs_dir() / "catalog.yaml"),
             "summary": {k: v for k, v in summary.__dict__.items() if k != "rows_by_sub_item"}
             | {"rows_by_sub_item": summary.rows_by_sub_item}}
    (staging / "world.json").write_text(json.dumps(world, indent=1, ensure_ascii=False), encoding="utf-8")
    _swap_in(staging, workspace)
    return summary


def _swap_in(staging: Path, workspace: Path) -> None:
    """Replace the workspace's world folders by the staged ones (rename is atomic per folder)."""
    trash = workspace / ".simulate-old"
    if trash.exists():
        shutil.rmtree(trash)
    trash.mkdir()
    for name in (*WORLD_FOLDERS, "world.json"):
        if (workspace / name).exists():
            (workspace / name).rename(trash / name)
    for name in (*WORLD_FOLDERS, "world.json"):
        if (staging / name).exists():
            (staging / name).rename(workspace / name)
    shutil.rmtree(trash)
    shutil.rmtree(staging)
