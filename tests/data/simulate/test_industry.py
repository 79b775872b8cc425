"""S20 mu_efficiency, S21 customs_monthly, S22 env_credit (simulation.md §7.7, §7.8) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month, month_end
from data.simulate.harness import run_small_world
from data.simulate.observe.industry import IndustryModule
from data.simulate.params import OIL_CHAIN
from kernel.catalog import load_catalog


class BoardProbe:
    """Records the customs board keys in one month (steps after the industry module)."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self, month: str) -> None:
        y, m = month.split("-")
        self.t = int(y) * 12 + int(m) - 1
        self.seen: dict[str, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        if ctx.t == self.t:
            self.seen = {k: ctx.board[k].copy() for k in ("customs_dishonest", "customs_advanced")}
            self.seen["alive"] = ctx.alive.copy()


@pytest.fixture(scope="module")
def world():
    probe = BoardProbe("2019-06")
    sim, sink = run_small_world([IndustryModule(), probe], enterprises=2000, start="2018-01", end="2020-12", seed=7)
    return sim, sink, probe


def check_catalog_frame(frame: pd.DataFrame, code: str) -> None:
    """Exactly the catalog fields, with the catalog dtype, allowed values and numeric bounds."""
    spec = load_catalog().sub_item(code)
    assert len(frame) > 0
    assert [c for c in frame.columns if not c.startswith("_")] == list(spec.field_names)
    for f in spec.fields:
        col = frame[f.name]
        if f.dtype == "category":
            assert set(col.dropna().unique()) <= set(f.allowed), f.name
        elif f.dtype == "date":
            assert pd.api.types.is_datetime64_any_dtype(col), f.name
        elif f.dtype == "int":
            assert str(col.dtype) == "Int64", f.name
        elif f.dtype == "float":
            assert col.dtype == np.float64, f.name
        elif f.dtype == "bool":
            assert str(col.dtype) == "boolean", f.name
        if f.dtype in ("int", "float"):
            v = col.dropna().astype(float)
            if f.min is not None:
                assert (v >= f.min).all(), f.name
            if f.max is not None:
                assert (v <= f.max).all(), f.name
    if spec.fields[0].name == "uscc":
        assert frame["uscc"].str.len().eq(18).all()


@pytest.mark.parametrize("code", ["mu_efficiency", "customs_monthly", "env_credit"])
def test_fields_follow_the_catalog(world, code):
    _, sink, _ = world
    check_catalog_frame(sink.frame(code), code)


# --- S20 --------------------------------------------------------------------------------------------
def test_mu_efficiency_coverage_and_publication(world):
    sim, sink, _ = world
    f = sink.frame("mu_efficiency")
    assert not f.duplicated(["uscc", "eval_year"]).any()
    codes = sim.ent.industry_code[f["_ent"].to_numpy()]
    assert all(str(c).startswith("C") for c in codes)
    # published 120-180 days after the end of the evaluated year
    year_end = pd.to_datetime(f["eval_year"].astype(int).astype(str) + "-12-31")
    lag = (f["_available_date"] - year_end).dt.days
    assert lag.between(120, 180).all()
    # coverage ~6% of alive firms (catalog), ~25% of manufacturing
    names = sim.params.sector_names
    rows_2019 = f[f["eval_year"] == 2019]
    alive = sim.latent.state.born & (sim.ent.birth_month <= 2019 * 12)
    share = len(rows_2019) / alive.sum()
    assert 0.03 <= share <= 0.10, share
    manuf = sim.ent.sector == names.index("manufacturing_other")
    manuf_share = np.isin(np.flatnonzero(manuf), rows_2019["_ent"]).sum() / (alive & manuf).sum()
    assert 0.12 <= manuf_share <= 0.40, manuf_share


def test_mu_efficiency_values_and_classes(world):
    _, sink, _ = world
    f = sink.frame("mu_efficiency")
    assert f["land_area_mu"].median() == pytest.approx(18, rel=0.35)
    assert f["tax_per_mu"].median() == pytest.approx(8, rel=0.6)
    assert 0.005 <= f["rd_expense_ratio"].median() <= 0.02
    shares = f["eval_class"].value_counts(normalize=True)
    for cls, target in {"A": 0.20, "B": 0.50, "C": 0.25, "D": 0.05}.items():
        assert shares.get(cls, 0.0) == pytest.approx(target, abs=0.05), cls
    # classes rank the composite: A firms pay more tax per mu than D firms
    med = f.groupby("eval_class")["tax_per_mu"].median()
    assert med["A"] > med["B"] > med["D"]


# --- S21 --------------------------------------------------------------------------------------------
def test_customs_rows_only_for_traders_from_registration(world):
    sim, sink, _ = world
    f = sink.frame("customs_monthly")
    ent = f["_ent"].to_numpy()
    assert sim.ent.is_customs[ent].all()
    assert not f.duplicated(["uscc", "period_month"]).any()
    months = date_to_month(f["period_month"].to_numpy().astype("datetime64[D]"))
    assert months.min() == sim.params.t_series
    assert (months >= sim.ent.birth_month[ent]).all()
    lag = (f["_available_date"].to_numpy().astype("datetime64[D]") - month_end(months)).astype(int)
    assert ((lag >= 10) & (lag <= 20)).all()
    # an entrant that is a customs trader has a row in its birth month
    born_in = sim.ent.is_customs & (sim.ent.birth_month >= sim.params.t_series) & (sim.ent.birth_month < sim.params.t_end)
    first = f.groupby("_ent")["period_month"].min()
    e = np.flatnonzero(born_in)
    assert len(e) > 0
    got = date_to_month(first.loc[e].to_numpy().astype("datetime64[D]"))
    assert (got == sim.ent.birth_month[e]).all()


def test_customs_trade_values(world):
    sim, sink, _ = world
    f = sink.frame("customs_monthly")
    trade = f["import_value"] + f["export_value"]
    assert 0.25 <= (trade == 0).mean() <= 0.65
    assert ((f["declaration_count"] == 0) == (trade == 0)).all()
    assert f.loc[trade > 0, "declaration_count"].median() >= 1
    names = np.array(sim.params.sector_names, dtype=object)
    sector = names[sim.ent.sector[f["_ent"].to_numpy()]]
    oil = np.isin(sector, OIL_CHAIN) & (trade > 0).to_numpy()
    assert f.loc[oil, "hs27_share"].between(0.85, 1.0).all()
    other = ~np.isin(sector, OIL_CHAIN) & (trade > 0).to_numpy()
    assert (f.loc[other, "hs27_share"] == 0).mean() > 0.85
    bunker = (sector == "oil_trading_bunkering") & (trade > 0).to_numpy()
    assert f.loc[bunker, "bonded_trade_share"].between(0.7, 0.95).all()
    # import share by sector: oil traders import 80% of their trade
    sel = bunker
    ratio = f.loc[sel, "import_value"].sum() / trade[sel].sum()
    assert ratio == pytest.approx(0.8, abs=0.01)


def test_customs_credit_grades(world):
    sim, sink, probe = world
    f = sink.frame("customs_monthly")
    shares = f["customs_credit_grade"].value_counts(normalize=True)
    assert shares["general"] >= 0.80
    assert 0.003 <= shares.get("advanced_certified", 0.0) <= 0.06
    adv = f["customs_credit_grade"] == "advanced_certified"
    assert (sim.ent.sales[f.loc[adv, "_ent"].to_numpy()] >= 5000).all()
    # dishonest listings come from stress: never-defaulted firms are rarely listed
    never = sim.latent.state.tau[f["_ent"].to_numpy()] < 0
    assert (f.loc[never, "customs_credit_grade"] == "dishonest").mean() < 0.04
    # ... and firms of low permanent quality (more often stressed) more than firms of high quality
    mu = sim.latent.current_mu[f["_ent"].to_numpy()]
    low, high = mu < np.quantile(mu, 0.25), mu > np.quantile(mu, 0.75)
    assert (f.loc[low, "customs_credit_grade"] == "dishonest").mean() > (
        f.loc[high, "customs_credit_grade"] == "dishonest").mean()
    # advanced certification, once lost, is not regained
    g = f.sort_values("period_month").groupby("_ent")["customs_credit_grade"]
    for _, s in g:
        a = (s == "advanced_certified").to_numpy()
        if a.any():
            first, last = np.argmax(a), len(a) - 1 - np.argmax(a[::-1])
            assert a[first:last + 1].all()
    # the board carries the same state as the rows of that month
    june = f[f["period_month"] == pd.Timestamp("2019-06-01")]
    ent = june["_ent"].to_numpy()
    assert (probe.seen["customs_dishonest"][ent] == (june["customs_credit_grade"] == "dishonest").to_numpy()).all()
    assert (probe.seen["customs_advanced"][ent]
            == (june["customs_credit_grade"] == "advanced_certified").to_numpy()).all()
    assert not probe.seen["customs_dishonest"][~sim.ent.is_customs].any()


# --- S22 --------------------------------------------------------------------------------------------
def test_env_credit_coverage_and_rules(world):
    sim, sink, _ = world
    f = sink.frame("env_credit")
    assert not f.duplicated(["uscc", "eval_year"]).any()
    year_end = pd.to_datetime(f["eval_year"].astype(int).astype(str) + "-12-31")
    assert (f["_available_date"] - year_end).dt.days.between(110, 130).all()
    alive = sim.latent.state.born & (sim.ent.birth_month <= 2019 * 12)
    share = (f["eval_year"] == 2019).sum() / alive.sum()
    assert 0.06 <= share <= 0.14, share
    names = np.array(sim.params.sector_names, dtype=object)
    sector = names[sim.ent.sector[f["_ent"].to_numpy()]]
    assert (f.loc[sector == "petrochemical", "discharge_permit_type"] == "key").all()
    assert (f.loc[sector == "aquatic_processing", "discharge_permit_type"] == "simplified").all()
    assert (f.loc[sector == "services_other", "discharge_permit_type"] == "registration").all()
    key = f["key_pollutant_unit"].astype(bool)
    assert (key | (f["online_monitoring_exceedances"] == 0)).all()
    assert (~key | (f["discharge_permit_type"] == "key") | (sector == "shipbuilding_repair")).all()
    assert (f["online_monitoring_exceedances"] == 0).mean() > 0.7


def test_env_credit_colours_follow_quality(world):
    sim, sink, _ = world
    f = sink.frame("env_credit")
    shares = f["env_credit_color"].value_counts(normalize=True)
    assert shares.idxmax() == "blue"
    assert shares["green"] + shares["blue"] >= 0.6
    mu = sim.latent.mu[f["_ent"].to_numpy()]
    by = pd.Series(mu).groupby(f["env_credit_color"].to_numpy()).mean()
    assert by["green"] > by["blue"] > by["yellow"]


def test_deterministic_for_a_seed():
    a = run_small_world([IndustryModule()], enterprises=300, start="2018-01", end="2018-12", seed=3)[1]
    b = run_small_world([IndustryModule()], enterprises=300, start="2018-01", end="2018-12", seed=3)[1]
    for code in ("mu_efficiency", "customs_monthly", "env_credit"):
        pd.testing.assert_frame_equal(a.frame(code), b.frame(code))
