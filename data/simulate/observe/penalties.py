"""Administrative penalties, 'double publicity' (simulation.md §7.8, S23 `admin_penalties`).

Decisions arrive by a sector hazard that rises with stress (fishery x3 during the moratorium).
The decision row is published within days; a later credit repair (信用修复) is published as a second
row with the same decision_id and `credit_repair_date` set, at the repair date (it is not known at
decision time). The module writes `penalties_12m` and `serious_penalty_now` to the board.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data.simulate.calendar import add_days, add_months, date_to_month, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import sigmoid
from data.simulate.networks import hex_ids
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel

PENALTY_TYPES = ("warning", "fine", "confiscation", "suspension", "license_revocation", "other")
STRESS_CAP = 10.0     # st beyond this carries no extra information (guards runaway latent values)


class PenaltiesParams(FrozenModel):
    alpha: dict[str, float]
    alpha_default: float
    beta: float
    moratorium_sector: str
    moratorium_months: tuple[int, ...]
    moratorium_multiplier: float
    authority: dict[str, dict[str, float]]
    penalty_type: dict[str, float]
    stress_scaled_types: tuple[str, ...]
    fine: tuple[float, float]
    fine_fishery: tuple[float, float]
    serious_base: float
    serious_stress: float
    serious_stress_cap: float
    publicity_short_months: int
    publicity_long_months: int
    publicity_fine_threshold: float
    publicity_serious_months: int
    repair_general_prob: float
    repair_general_months: tuple[int, int]
    repair_serious_prob: float
    repair_serious_months: tuple[int, int]


class PenaltiesModule:
    """S23 admin_penalties."""

    name = "penalties"
    sub_items = ("admin_penalties",)

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        p = self.p = load_module_params(PenaltiesParams, "penalties")
        self.lag = load_catalog().sub_item("admin_penalties").lag_days
        ent = ctx.ent
        n = ent.n_max
        sector_name = np.array(ctx.params.sector_names, dtype=object)[ent.sector]
        self.alpha = np.array([p.alpha.get(s, p.alpha_default) for s in sector_name])
        self.fishery = sector_name == p.moratorium_sector
        # authority lookup per sector: categories and cumulative weights
        self.sector_name = sector_name
        self.authority: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in set(ctx.params.sector_names) | {"default"}:
            w = p.authority.get(s, p.authority["default"])
            cats = np.array(list(w), dtype=object)
            cum = np.cumsum(np.array(list(w.values()), dtype=np.float64))
            self.authority[s] = (cats, cum / cum[-1])
        self.type_weights = np.array([p.penalty_type[k] for k in PENALTY_TYPES])
        self.stress_scaled = np.isin(np.array(PENALTY_TYPES), p.stress_scaled_types)
        self.ring = np.zeros((12, n), dtype=np.int16)
        self.count_12m = np.zeros(n, dtype=np.int64)
        self.repairs: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
        ctx.board["penalties_12m"] = np.zeros(n, dtype=np.int64)
        ctx.board["serious_penalty_now"] = np.zeros(n, dtype=bool)

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        p, rng, t = self.p, self.rng, ctx.t
        n = ctx.ent.n_max
        st = np.minimum(ctx.stress, STRESS_CAP)
        mult = np.where(self.fishery & (ctx.moy in p.moratorium_months), p.moratorium_multiplier, 1.0)
        base = sigmoid(self.alpha) * mult
        prob = np.minimum(1.0, sigmoid(self.alpha + p.beta * st) * mult)
        hit = ctx.alive & (rng.random(n) < prob)
        slot = t % 12
        self.count_12m -= self.ring[slot]
        self.ring[slot] = hit
        self.count_12m += hit
        ctx.board["penalties_12m"] = self.count_12m.copy()

        idx = np.flatnonzero(hit)
        serious_now = np.zeros(n, dtype=bool)
        if idx.size:
            rows = self._decisions(ctx, idx, st[idx], base[idx] / prob[idx])
            serious_now[idx] = rows["severity"] == "serious"
            if ctx.emit_events:
                self._emit(ctx, out, idx, rows)
        ctx.board["serious_penalty_now"] = serious_now
        self._emit_repairs(ctx, out)

    # ---------------------------------------------------------------------------------------------
    def _decisions(self, ctx: MonthContext, idx: np.ndarray, st: np.ndarray,
                   base_share: np.ndarray) -> dict[str, np.ndarray]:
        """Attributes of this month's decisions (drawn even before emission, for a stable stream)."""
        p, rng = self.p, self.rng
        k = idx.size
        date = random_day_in_month(rng, ctx.t, size=k)
        authority = np.empty(k, dtype=object)
        u = rng.random(k)
        sectors = self.sector_name[idx]
        for s in np.unique(sectors):
            sel = sectors == s
            cats, cum = self.authority[s]
            authority[sel] = cats[np.minimum(np.searchsorted(cum, u[sel], side="right"), len(cats) - 1)]
        w = self.type_weights[None, :] * np.where(self.stress_scaled[None, :], 1.0 + st[:, None], 1.0)
        cum = np.cumsum(w, axis=1)
        ptype_i = (rng.random(k)[:, None] * cum[:, -1:] >= cum).sum(axis=1)
        ptype = np.array(PENALTY_TYPES, dtype=object)[ptype_i]
        fishery = self.fishery[idx]
        med = np.where(fishery, p.fine_fishery[0], p.fine[0])
        sd = np.where(fishery, p.fine_fishery[1], p.fine[1])
        fine = np.where(ptype == "warning", 0.0,
                        np.maximum(0.01, np.round(med * np.exp(sd * rng.standard_normal(k)), 2)))
        serious = rng.random(k) < p.serious_base + p.serious_stress * np.minimum(p.serious_stress_cap, st)
        months = np.where(serious, p.publicity_serious_months,
                          np.where(fine >= p.publicity_fine_threshold, p.publicity_long_months,
                                   p.publicity_short_months))
        publicity_end = add_months(date, months)
        # credit repair: general w.p. 0.3 at +U{3..11} months if still before the publicity end;
        # serious w.p. 0.1 after >= 12 months
        g_lo, g_hi = p.repair_general_months
        s_lo, s_hi = p.repair_serious_months
        offset = np.where(serious, rng.integers(s_lo, s_hi + 1, k), rng.integers(g_lo, g_hi + 1, k))
        repair = rng.random(k) < np.where(serious, p.repair_serious_prob, p.repair_general_prob)
        repair_date = add_days(add_months(date, offset), rng.integers(0, 28, k))
        repair &= repair_date < publicity_end
        stress_cause = rng.random(k) >= base_share
        return {
            "decision_id": hex_ids(rng, "A_", k),
            "decision_date": date,
            "authority_category": authority,
            "penalty_type": ptype,
            "fine_amount": fine,
            "severity": np.where(serious, "serious", "general").astype(object),
            "publicity_end_date": publicity_end,
            "_repair": repair,
            "_repair_date": repair_date,
            "_cause": np.where(stress_cause, "stress", "background").astype(object),
        }

    def _emit(self, ctx: MonthContext, out: Emitter, idx: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        k = idx.size
        cols = {key: v for key, v in rows.items() if not key.startswith("_")}
        cols["uscc"] = ctx.ent.uscc[idx]
        cols["credit_repair_date"] = np.full(k, np.datetime64("NaT"), dtype="datetime64[D]")
        available = add_days(rows["decision_date"], self.rng.integers(self.lag[0], self.lag[1] + 1, k))
        out.emit("admin_penalties", cols, ent=idx, available=available, cause=rows["_cause"])
        rep = np.flatnonzero(rows["_repair"])
        if rep.size == 0:
            return
        months = date_to_month(rows["_repair_date"][rep])
        for m in np.unique(months):
            sel = rep[months == m]
            later = {key: v[sel] for key, v in cols.items()}
            later["credit_repair_date"] = rows["_repair_date"][sel]
            later["_ent"] = idx[sel]
            self.repairs[int(m)].append(later)

    def _emit_repairs(self, ctx: MonthContext, out: Emitter) -> None:
        """Re-publish repaired decisions in the repair month (firms deregistered since are dropped)."""
        due = self.repairs.pop(ctx.t, [])
        if not due:
            return
        batch = {key: np.concatenate([b[key] for b in due]) for key in due[0]}
        ent = batch.pop("_ent")
        keep = ctx.alive[ent]
        k = int(keep.sum())
        if k == 0:
            return
        cols = {key: v[keep] for key, v in batch.items()}
        available = add_days(cols["credit_repair_date"], self.rng.integers(self.lag[0], self.lag[1] + 1, k))
        out.emit("admin_penalties", cols, ent=ent[keep], available=available, cause="background")
