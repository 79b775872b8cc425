"""Ground truth: written by the simulator, read only by evaluation code (DESIGN.md, simulation.md §1).

`read_truth` refuses callers outside the evaluation allow-list; a test also scans the source tree
for code that reaches into truth/ by path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data.simulate.calendar import month_label
from data.simulate.context import MonthContext
from data.simulate.networks import HOLDER_TYPES, Networks
from data.simulate.oracle import oracle_pd12_approx, oracle_pd12_monte_carlo
from data.simulate.world import Enterprises, module_rng
from kernel.errors import TruthAccessError
from kernel.workspace import truth_dir

# module-name prefixes allowed to read truth/: the simulator itself, its calibration report, and
# evaluation code of later stages (model evaluation against the oracle, signal back-tests)
TRUTH_READERS = ("data.simulate", "data.warehouse.evaluation", "training.evaluation", "monitoring.backtest", "tests.", "benchmarks.")


def read_truth(name: str, root: Path | None = None) -> pd.DataFrame:
    """Read one truth table; only evaluation code may call this."""
    caller = inspect.stack()[1]
    module = caller.frame.f_globals.get("__name__", "")
    path = Path(caller.filename)
    in_tests = "tests" in path.parts or "benchmarks" in path.parts
    if not (module.startswith(TRUTH_READERS) or in_tests):
        raise TruthAccessError(f"module {module!r} may not read ground truth ({name}); only evaluation code may")
    base = root or truth_dir()
    target = base / f"{name}.parquet"
    if target.is_file():
        return pd.read_parquet(target)
    folder = base / name
    if folder.is_dir():
        return pd.read_parquet(folder)
    raise FileNotFoundError(f"no truth table {name!r} under {base}")


@dataclass
class TruthRecorder:
    """Month hook: records the latent panel and the oracle; writes truth/ at the end."""

    root: Path
    hazard_a: float
    links_getter: Callable[[], object]
    seed: int
    monte_carlo: bool = True
    _panel: list[pd.DataFrame] = field(default_factory=list)
    _oracle: list[pd.DataFrame] = field(default_factory=list)
    _prev_h: np.ndarray | None = None
    _year: int | None = None

    def __call__(self, ctx: MonthContext) -> None:
        p, s, ent = ctx.params, ctx.latent, ctx.ent
        if self._prev_h is None:
            self._prev_h = np.zeros(ent.n_max)
        if ctx.t >= p.t_events:
            idx = np.flatnonzero(s.born & ((s.status_change_month < 0) | (s.status_change_month >= ctx.t - 1)
                                           | s.alive))
            idx = idx[s.alive[idx] | (s.status_change_month[idx] == ctx.t)]
            approx = oracle_pd12_approx(p, ctx.t, ctx.mu[idx], s.x[idx], s.macro, s.sector_f, ent.sector[idx],
                                        ent.birth_month[idx], self.hazard_a)
            approx = np.where(s.performing[idx], approx, np.nan)
            frame = pd.DataFrame({
                "uscc": ent.uscc[idx], "slot": idx, "month": month_label(ctx.t), "h": s.h[idx], "mu": ctx.mu[idx],
                "x": s.x[idx], "M": s.macro, "F_s": s.sector_f[ent.sector[idx]], "lambda": s.lam[idx],
                "performing": s.performing[idx], "defaulted_now": s.defaulted_now[idx], "tau": s.tau[idx],
                "last_default": s.last_default[idx], "status": s.status[idx], "oracle_pd12_approx": approx})
            self._panel.append(frame)
            if month_label(ctx.t) in p.oracle.evaluation_months:
                self._oracle.append(self._oracle_frame(ctx, idx, approx))
        if ctx.t % 12 == 11 and self._panel:
            self._flush_panel(ctx.year)
        self._prev_h = s.h.copy()

    def _oracle_frame(self, ctx: MonthContext, idx: np.ndarray, approx: np.ndarray) -> pd.DataFrame:
        p, s, ent = ctx.params, ctx.latent, ctx.ent
        if self.monte_carlo:
            mc = oracle_pd12_monte_carlo(p, ctx.t, ctx.mu, s.x, s.macro, s.sector_f, ent.sector, ent.birth_month,
                                         s.alive, s.performing, self._prev_h if self._prev_h is not None else s.h,
                                         self.links_getter(), self.hazard_a,  # type: ignore[arg-type]
                                         module_rng(self.seed, f"oracle.{ctx.t}"))[idx]
        else:
            mc = np.full(idx.size, np.nan)
        return pd.DataFrame({"uscc": ent.uscc[idx], "slot": idx, "as_of": month_label(ctx.t),
                             "oracle_pd12": np.where(s.performing[idx], mc, np.nan), "oracle_pd12_approx": approx})

    def _flush_panel(self, year: int) -> None:
        frame = pd.concat(self._panel, ignore_index=True)
        self._panel.clear()
        path = self.root / "truth_enterprise_month" / f"year={year}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)

    def finish(self, ent: Enterprises, net: Networks, latent_mu: np.ndarray, sector_names: tuple[str, ...]) -> None:
        if self._panel:
            last = self._panel[-1]["month"].iloc[0]
            self._flush_panel(int(str(last)[:4]))
        self.root.mkdir(parents=True, exist_ok=True)
        if self._oracle:
            pd.concat(self._oracle, ignore_index=True).to_parquet(self.root / "truth_oracle_pd.parquet", index=False)
        born = ent.birth_month < Enterprises.NOT_BORN
        pd.DataFrame({
            "slot": np.flatnonzero(born), "uscc": ent.uscc[born], "sector": np.array(sector_names, dtype=object)[ent.sector[born]],
            "frag": ent.frag[born], "shell": ent.shell[born], "ring_id": net.ring_id[born], "group_id": net.group_id[born],
            "z_size": ent.z_size[born], "S": ent.sales[born], "E": ent.employees[born], "g": ent.growth[born],
            "need": ent.need[born], "mu_initial": ent.mu[born], "mu_final": latent_mu[born],
            "birth_month": ent.birth_month[born], "legal_rep_kind": net.legal_rep_kind[born],
        }).to_parquet(self.root / "truth_enterprise.parquet", index=False)
        edges_frame(ent, net).to_parquet(self.root / "truth_edges.parquet", index=False)


def edges_frame(ent: Enterprises, net: Networks) -> pd.DataFrame:
    """Every edge of the world, observable or hidden, with its weight and disclosure flag."""
    h, g = net.holdings, net.guarantees
    own = pd.DataFrame({"edge_type": "ownership", "source": h.holder_id, "target": ent.uscc[h.target],
                        "weight": h.share, "disclosed": True,
                        "detail": np.array(HOLDER_TYPES, dtype=object)[h.holder_kind]})
    debtor = np.where(g.debtor >= 0, ent.uscc[np.maximum(g.debtor, 0)], net.persons.person_id[np.maximum(g.debtor_person, 0)])
    guar = pd.DataFrame({"edge_type": "guarantee", "source": ent.uscc[g.guarantor], "target": debtor,
                         "weight": g.principal, "disclosed": g.disclosed, "detail": g.mode})
    trade = pd.DataFrame({"edge_type": "trade", "source": ent.uscc[net.trade_supplier],
                          "target": ent.uscc[net.trade_customer], "weight": 1.0, "disclosed": False,
                          "detail": "supplier_to_customer"})
    ctrl = pd.DataFrame({"edge_type": "control", "source": net.persons.person_id[net.controller],
                         "target": ent.uscc, "weight": 1.0, "disclosed": False, "detail": "actual_controller"})
    return pd.concat([own, guar, trade, ctrl], ignore_index=True)
