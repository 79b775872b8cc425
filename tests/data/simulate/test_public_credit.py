"""S24 public_credit_eval (simulation.md §7.8, §11) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from data.simulate.calendar import date_to_month, month_end
from data.simulate.harness import run_small_world
from data.simulate.observe.public_credit import PublicCreditModule
from kernel.catalog import load_catalog

PROBE_MONTH = 2019 * 12 + 5      # 2019-06


class ListsStub:
    """Stands in for the list-writing modules: fixed random sets of firms carry one entry each."""

    name = "lists_stub"
    sub_items: tuple[str, ...] = ()
    keys = ("active_dishonest", "wage_arrears_blacklist", "customs_advanced")

    def setup(self, ctx, rng) -> None:
        u = rng.random(ctx.ent.n_max)
        self.sets = {"active_dishonest": u < 0.05, "wage_arrears_blacklist": (u >= 0.05) & (u < 0.10),
                     "customs_advanced": (u >= 0.10) & (u < 0.15)}

    def step(self, ctx, out) -> None:
        for k, v in self.sets.items():
            ctx.board[k] = v & ctx.alive


class Probe:
    """Records h each month (after the latent step) for the moving-average check."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.h: dict[int, np.ndarray] = {}
        self.alive: dict[int, np.ndarray] = {}
        self.status: dict[int, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        if PROBE_MONTH - 7 <= ctx.t <= PROBE_MONTH:
            self.h[ctx.t] = ctx.h.copy()
            self.alive[ctx.t] = ctx.alive.copy()


@pytest.fixture(scope="module")
def world():
    stub, probe = ListsStub(), Probe()
    sim, sink = run_small_world([stub, PublicCreditModule(), probe], enterprises=2000, start="2018-01",
                                end="2020-06", seed=5)
    return sim, sink.frame("public_credit_eval"), stub, probe


@pytest.fixture(scope="module")
def alone():
    sim, sink = run_small_world([PublicCreditModule()], enterprises=1000, start="2018-01", end="2019-12", seed=9)
    return sim, sink.frame("public_credit_eval")


def test_fields_follow_the_catalog(world):
    _, f, _, _ = world
    spec = load_catalog().sub_item("public_credit_eval")
    assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names)
    for fs in spec.fields:
        col = f[fs.name]
        assert col.notna().all(), fs.name
        if fs.dtype == "category":
            assert set(col.unique()) <= set(fs.allowed), fs.name
        elif fs.dtype == "int":
            assert str(col.dtype) == "Int64" and (col >= 0).all(), fs.name
    assert f["public_credit_score"].between(0, 1000).all()
    assert f["uscc"].str.len().eq(18).all()
    assert not f.duplicated(["uscc", "eval_date"]).any()


def test_monthly_coverage_and_timing(world):
    sim, f, _, probe = world
    months = date_to_month(f["eval_date"].to_numpy().astype("datetime64[D]"))
    assert months.min() == sim.params.t_series
    assert (f["eval_date"].to_numpy().astype("datetime64[D]") == month_end(months)).all()
    lag = (f["_available_date"] - f["eval_date"]).dt.days
    assert lag.between(3, 7).all()
    # ~98% of alive firms each month (firms born this month are evaluated from the next)
    alive = probe.alive[PROBE_MONTH] & (sim.ent.birth_month < PROBE_MONTH)
    got = f.loc[months == PROBE_MONTH, "_ent"].to_numpy()
    assert alive[got].all()
    assert len(got) / alive.sum() == pytest.approx(0.98, abs=0.015)


def test_score_level_and_grades(alone):
    _, f = alone
    assert f["public_credit_score"].median() == pytest.approx(820, abs=12)
    by_month = f.groupby("eval_date")["public_credit_score"].median()
    assert by_month.between(790, 850).all()
    good = f["public_credit_grade"].isin(["excellent", "good"]).mean()
    assert good >= 0.90                                                # §11
    cuts = np.select([f["public_credit_score"] >= 850, f["public_credit_score"] >= 700,
                      f["public_credit_score"] >= 600], ["excellent", "good", "medium"], "poor")
    assert (cuts == f["public_credit_grade"].to_numpy()).all()
    # with no list-writing modules the black list is empty
    assert (f["black_list_count"] == 0).all()


def test_score_follows_lagged_moving_average_of_h(world):
    _, f, _, probe = world
    rows = f[date_to_month(f["eval_date"].to_numpy().astype("datetime64[D]")) == PROBE_MONTH]
    ent = rows["_ent"].to_numpy()
    hist = np.stack([np.where(probe.alive[m], probe.h[m], np.nan) for m in range(PROBE_MONTH - 6, PROBE_MONTH)])
    htilde = np.nanmean(hist[:, ent], axis=0)
    clean = ~rows[["black_list_count"]].to_numpy().ravel().astype(bool)
    rho = spearmanr(htilde[clean], rows["public_credit_score"].to_numpy()[clean]).statistic
    assert rho > 0.8
    # slope ~55 points per unit of htilde
    slope = np.polyfit(htilde[clean & (htilde > -3)], rows["public_credit_score"].to_numpy()[clean & (htilde > -3)], 1)[0]
    assert slope == pytest.approx(55, rel=0.2)
    # the current month's h is not used: the lag-0 value correlates less than the lagged average
    rho_now = spearmanr(probe.h[PROBE_MONTH][ent][clean], rows["public_credit_score"].to_numpy()[clean]).statistic
    assert rho_now < rho


def test_board_entries_deduct_and_count(world):
    _, f, stub, _ = world
    ent = f["_ent"].to_numpy()
    dishonest = stub.sets["active_dishonest"][ent]
    wage = stub.sets["wage_arrears_blacklist"][ent]
    advanced = stub.sets["customs_advanced"][ent]
    plain = ~(dishonest | wage | advanced)
    score = f["public_credit_score"].to_numpy()
    gap = np.median(score[plain]) - np.median(score[dishonest])
    assert gap == pytest.approx(150, abs=25)
    # the wage-arrears black list counts but is not a score deduction in the spec
    assert abs(np.median(score[plain]) - np.median(score[wage])) < 20
    black = f["black_list_count"].to_numpy()
    assert (black[dishonest | wage] >= 1).all() and (black[plain] == 0).all()
    red = f["red_list_count"].to_numpy()
    assert (red[advanced] >= 1).all()
    assert np.mean(red[plain] == 0) > 0.7


def test_contract_honoring_grades(world):
    sim, f, _, _ = world
    shares = f["contract_honoring_grade"].value_counts(normalize=True)
    assert shares["none"] == pytest.approx(0.90, abs=0.04)
    assert 0.02 <= shares.get("A", 0.0) <= 0.08
    assert 0.0 < shares.get("AAA", 0.0) <= 0.03
    aaa = f["contract_honoring_grade"] == "AAA"
    assert (sim.ent.sales[f.loc[aaa, "_ent"].to_numpy()] >= 2000).all()
    # graded firms are high-quality firms
    mu = sim.latent.mu[f["_ent"].to_numpy()]
    graded = (f["contract_honoring_grade"] != "none").to_numpy()
    assert mu[graded].mean() > mu[~graded].mean() + 0.5


def test_deterministic_for_a_seed():
    a = run_small_world([PublicCreditModule()], enterprises=300, start="2018-01", end="2018-06", seed=3)[1]
    b = run_small_world([PublicCreditModule()], enterprises=300, start="2018-01", end="2018-06", seed=3)[1]
    pd.testing.assert_frame_equal(a.frame("public_credit_eval"), b.frame("public_credit_eval"))
