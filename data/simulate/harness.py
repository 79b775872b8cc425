"""Run a small world with a chosen subset of modules, keeping every row in memory (for tests)."""

from __future__ import annotations

from collections.abc import Sequence

from data.simulate.context import ObservationModule
from data.simulate.emit import MemorySink
from data.simulate.engine import Simulation
from data.simulate.params import load_world_params


def run_small_world(modules: Sequence[ObservationModule], enterprises: int = 400, start: str = "2018-01",
                    end: str = "2020-12", seed: int = 7, calibrate: bool = False) -> tuple[Simulation, MemorySink]:
    """Simulate `enterprises` firms from the burn-in to `end` with only `modules`; rows stay in memory."""
    params = load_world_params(enterprises=enterprises, start=start, end=end, seed=seed)
    sink = MemorySink()
    sim = Simulation(params=params, modules=list(modules), sink=sink, calibrate=calibrate)
    sim.run()
    return sim, sink
