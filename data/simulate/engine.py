"""The simulation loop: world, latent process, observation modules and the month-by-month flush."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from data.simulate.context import MonthContext, ObservationModule
from data.simulate.emit import BatchSink, Emitter
from data.simulate.latent import LatentProcess, calibrate_hazard_intercept
from data.simulate.networks import Networks, build_networks
from data.simulate.params import WorldParams
from data.simulate.world import Enterprises, draw_enterprises, module_rng
from kernel.catalog import Catalog, load_catalog

MonthHook = Callable[[MonthContext], None]


@dataclass
class Simulation:
    """One world. `run()` steps every month from the burn-in start to `params.end`."""

    params: WorldParams
    modules: Sequence[ObservationModule]
    sink: BatchSink
    catalog: Catalog = field(default_factory=load_catalog)
    calibrate: bool | None = None
    month_hooks: list[MonthHook] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.params
        self.ent: Enterprises = draw_enterprises(p, module_rng(p.seed, "world"))
        self.net: Networks = build_networks(p, self.ent, module_rng(p.seed, "networks"))
        do_cal = p.hazard.calibrate if self.calibrate is None else self.calibrate
        self.hazard_a = (calibrate_hazard_intercept(p, self.ent, self.net.links, seed=p.seed)
                         if do_cal else p.hazard.a)
        self.latent = LatentProcess(p, self.ent, self.net.links, module_rng(p.seed, "latent"), self.hazard_a)
        self.emitter = Emitter(self.catalog, self.sink)
        self.board: dict[str, np.ndarray] = {}
        self.ctx: MonthContext | None = None

    def months(self) -> range:
        return range(self.params.t_first, self.params.t_end + 1)

    def run(self, progress: Callable[[int], None] | None = None) -> Simulation:
        for t in self.months():
            self.step(t)
            if progress:
                progress(t)
        self.emitter.flush_all()
        return self

    def step(self, t: int) -> MonthContext:
        state = self.latent.step(t)
        self.emitter.current_month = t
        ctx = MonthContext(t=t, params=self.params, ent=self.ent, net=self.net, latent=state,
                           mu=self.latent.current_mu, board=self.board)
        if t == self.params.t_first:
            for m in self.modules:
                m.setup(ctx, module_rng(self.params.seed, m.name))
        for m in self.modules:
            m.step(ctx, self.emitter)
        for hook in self.month_hooks:
            hook(ctx)
        self.emitter.flush_month(t)
        self.ctx = ctx
        return ctx
