"""Provincial public credit evaluation (simulation.md §7.8, S24 `public_credit_eval`).

A slow, coarse score: a 6-month moving average of health lagged one month plus deductions for the
list entries other departments hold (read from the board, written earlier in the month), evaluated
at each month end for ~98% of active firms. It steps last among the catalog modules. Board keys
that are absent (a module not run, e.g. in unit tests) count as no entry.
"""

from __future__ import annotations

import numpy as np

from data.simulate.context import MonthContext
from data.simulate.emit import Emitter
from data.simulate.latent import ACTIVE
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel

GRADES = np.array(["excellent", "good", "medium", "poor"], dtype=object)
CONTRACT_GRADES = np.array(["none", "A", "AA", "AAA"], dtype=object)
H_FLOOR = -10.0      # guards the moving average against runaway latent values


class Deductions(FrozenModel):
    dishonest: float
    serious_list: float
    abnormal_list: float
    tax_grade_cd: float
    per_penalty: float
    penalty_cap: int
    restriction: float


class ContractParams(FrozenModel):
    eval_month: int
    shares: tuple[float, float, float]
    aaa_min_age_months: int
    aaa_min_sales: float
    lost_below_h: float


class PublicCreditParams(FrozenModel):
    coverage: float
    target_median: float
    offset_learning_rate: float
    h_loading: float
    h_window: int
    noise_sd: float
    deduction: Deductions
    score_range: tuple[float, float]
    grade_cuts: tuple[float, float, float]
    red_list_noise: float
    contract: ContractParams


def board_flag(ctx: MonthContext, key: str) -> np.ndarray:
    """A boolean board array, or all False when no module wrote it."""
    v = ctx.board.get(key)
    if v is None:
        return np.zeros(ctx.ent.n_max, dtype=bool)
    return np.asarray(v).astype(bool)


def board_count(ctx: MonthContext, key: str) -> np.ndarray:
    v = ctx.board.get(key)
    if v is None:
        return np.zeros(ctx.ent.n_max, dtype=np.int64)
    return np.asarray(v, dtype=np.int64)


class PublicCreditModule:
    """S24 public_credit_eval."""

    name = "public_credit"
    sub_items = ("public_credit_eval",)

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        self.p = load_module_params(PublicCreditParams, "public_credit")
        self.lag = load_catalog().sub_item("public_credit_eval").lag_days
        n = ctx.ent.n_max
        self.covered = rng.random(n) < self.p.coverage
        self.h_hist = np.full((self.p.h_window, n), np.nan)
        self.h_pos = 0
        self.offset: float | None = None
        self.contract = np.zeros(n, dtype=np.int8)
        self._contracts_done = False

    # ---------------------------------------------------------------------------------------------
    def step(self, ctx: MonthContext, out: Emitter) -> None:
        p, rng = self.p, self.rng
        if not self._contracts_done or ctx.moy == p.contract.eval_month:
            self._evaluate_contracts(ctx)
        self.contract[ctx.h < p.contract.lost_below_h] = 0

        seen = np.isfinite(self.h_hist)
        months = seen.sum(axis=0)
        htilde = np.where(seen, self.h_hist, 0.0).sum(axis=0) / np.maximum(months, 1)
        idx = np.flatnonzero(self.covered & ctx.alive & (months > 0))
        self._push_h(ctx)
        k = idx.size
        if k == 0:
            return

        d = p.deduction
        dishonest = board_flag(ctx, "active_dishonest")[idx]
        restriction = board_flag(ctx, "active_restriction")[idx]
        serious = board_flag(ctx, "active_serious_list")[idx]
        abnormal = board_flag(ctx, "active_abnormal_list")[idx]
        major_tax = board_flag(ctx, "major_tax_violation_active")[idx]
        wage_black = board_flag(ctx, "wage_arrears_blacklist")[idx]
        customs_dishonest = board_flag(ctx, "customs_dishonest")[idx]
        customs_advanced = board_flag(ctx, "customs_advanced")[idx]
        penalties = board_count(ctx, "penalties_12m")[idx]
        grade = ctx.board.get("tax_grade")
        tax_grade = (np.asarray(grade, dtype=object)[idx] if grade is not None
                     else np.full(k, None, dtype=object))
        tax_cd = (tax_grade == "C") | (tax_grade == "D")
        tax_a = tax_grade == "A"

        raw = (p.h_loading * htilde[idx] - d.dishonest * dishonest - d.serious_list * serious
               - d.abnormal_list * abnormal - d.tax_grade_cd * tax_cd
               - d.per_penalty * np.minimum(d.penalty_cap, penalties) - d.restriction * restriction
               + rng.normal(0.0, p.noise_sd, k))
        med = float(np.median(raw))
        if self.offset is None:
            self.offset = p.target_median - med
        else:
            self.offset += p.offset_learning_rate * (p.target_median - (self.offset + med))
        score = np.round(np.clip(self.offset + raw, p.score_range[0], p.score_range[1]), 1)
        cuts = np.asarray(p.grade_cuts)
        public_grade = GRADES[(score[:, None] < cuts[None, :]).sum(axis=1)]
        contract = self.contract[idx]
        red = tax_a.astype(np.int64) + (contract > 0) + customs_advanced + rng.poisson(p.red_list_noise, k)
        black = (dishonest.astype(np.int64) + serious + major_tax + wage_black + customs_dishonest)

        if not ctx.emit_series:
            return
        eval_date = np.full(k, ctx.last_day)
        cols = {
            "uscc": ctx.ent.uscc[idx],
            "eval_date": eval_date,
            "public_credit_score": score,
            "public_credit_grade": public_grade,
            "red_list_count": red,
            "black_list_count": black,
            "contract_honoring_grade": CONTRACT_GRADES[contract],
        }
        available = eval_date + rng.integers(self.lag[0], self.lag[1] + 1, k).astype("timedelta64[D]")
        cause = np.where(black > 0, "stress", "background").astype(object)
        out.emit("public_credit_eval", cols, ent=idx, available=available, cause=cause, valid_from=eval_date)

    # ---------------------------------------------------------------------------------------------
    def _push_h(self, ctx: MonthContext) -> None:
        """Record this month's h for the next months' moving average (NaN where not alive)."""
        self.h_hist[self.h_pos] = np.where(ctx.alive, np.maximum(ctx.h, H_FLOOR), np.nan)
        self.h_pos = (self.h_pos + 1) % self.p.h_window

    def _evaluate_contracts(self, ctx: MonthContext) -> None:
        """Yearly 守合同重信用 grades by quality rank among active firms (AAA needs age and size)."""
        cp = self.p.contract
        self._contracts_done = True
        self.contract[:] = 0
        pool = np.flatnonzero(ctx.alive & (ctx.latent.status == ACTIVE) & (ctx.h >= cp.lost_below_h))
        active_n = int((ctx.alive & (ctx.latent.status == ACTIVE)).sum())
        if pool.size == 0:
            return
        order = pool[np.argsort(-ctx.mu[pool], kind="stable")]
        cum = np.round(np.cumsum(cp.shares) * active_n).astype(int)
        top_aaa, top_aa, top_a = order[: cum[0]], order[cum[0]: cum[1]], order[cum[1]: cum[2]]
        aaa_ok = ((ctx.age_months[top_aaa] >= cp.aaa_min_age_months)
                  & (ctx.ent.sales[top_aaa] >= cp.aaa_min_sales))
        self.contract[top_a] = 1
        self.contract[top_aa] = 2
        self.contract[top_aaa] = np.where(aaa_ok, 3, 2)
