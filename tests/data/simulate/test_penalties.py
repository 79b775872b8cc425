"""S23 admin_penalties (simulation.md §7.8) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import add_months, date_to_month
from data.simulate.harness import run_small_world
from data.simulate.observe.penalties import PenaltiesModule
from kernel.catalog import load_catalog

PROBE_MONTH = 2019 * 12 + 5     # 2019-06, more than 12 months after the first emitted month


class BoardProbe:
    """Records the penalty board keys and the alive mask each month (steps after the module)."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.alive_by_year: dict[int, np.ndarray] = {}
        self.seen: dict[str, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        a = self.alive_by_year.setdefault(ctx.year, np.zeros(ctx.ent.n_max, dtype=bool))
        a |= ctx.alive
        if ctx.t == PROBE_MONTH:
            self.seen = {k: ctx.board[k].copy() for k in ("penalties_12m", "serious_penalty_now")}


@pytest.fixture(scope="module")
def world():
    probe = BoardProbe()
    sim, sink = run_small_world([PenaltiesModule(), probe], enterprises=2000, start="2018-01", end="2020-12",
                                seed=11)
    f = sink.frame("admin_penalties")
    return sim, f, probe


def first_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f[f["credit_repair_date"].isna()]


def test_fields_follow_the_catalog(world):
    _, f, _ = world
    spec = load_catalog().sub_item("admin_penalties")
    assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names)
    for fs in spec.fields:
        col = f[fs.name]
        if fs.dtype == "category":
            assert set(col.dropna().unique()) <= set(fs.allowed), fs.name
        elif fs.dtype == "date":
            assert pd.api.types.is_datetime64_any_dtype(col), fs.name
        elif fs.dtype == "float":
            assert col.dtype == np.float64 and (col >= 0).all(), fs.name
    assert f["uscc"].str.len().eq(18).all()
    assert f["decision_id"].str.fullmatch(r"A_[0-9a-f]{16}").all()
    assert f["decision_date"].notna().all() and f["publicity_end_date"].notna().all()


def test_decisions_published_within_ten_days(world):
    sim, f, _ = world
    d = first_rows(f)
    lag = (d["_available_date"] - d["decision_date"]).dt.days
    assert lag.between(1, 10).all()
    assert not d["decision_id"].duplicated().any()
    assert d["decision_date"].min() >= pd.Timestamp("2015-01-01")
    # only firms alive in the decision month are penalised
    months = date_to_month(d["decision_date"].to_numpy().astype("datetime64[D]"))
    assert (months >= sim.ent.birth_month[d["_ent"].to_numpy()]).all()


def test_annual_penalty_rates(world):
    sim, f, probe = world
    d = first_rows(f)
    names = sim.params.sector_names
    fishery = sim.ent.sector == names.index("marine_fishery")
    never = sim.latent.state.tau < 0
    year = d["decision_date"].dt.year.to_numpy()
    rates, fish_rates = [], []
    for y in (2017, 2018, 2019):
        alive = probe.alive_by_year[y]
        hit = np.zeros(sim.ent.n_max, dtype=bool)
        hit[d["_ent"].to_numpy()[year == y]] = True
        rates.append((hit & alive & never & ~fishery).sum() / (alive & never & ~fishery).sum())
        fish_rates.append((hit & alive & never & fishery).sum() / (alive & never & fishery).sum())
    # catalog: ~3.5% of firms a year (fishery ~12%); the spec's stress loading adds to the base hazard
    assert 0.015 <= np.mean(rates) <= 0.07
    assert 0.08 <= np.mean(fish_rates) <= 0.35
    assert np.mean(fish_rates) > 2.5 * np.mean(rates)


def test_fishery_moratorium_peak(world):
    sim, f, _ = world
    d = first_rows(f)
    fishery = sim.ent.sector[d["_ent"].to_numpy()] == sim.params.sector_names.index("marine_fishery")
    never = sim.latent.state.tau[d["_ent"].to_numpy()] < 0
    month = d.loc[fishery & never, "decision_date"].dt.month
    in_moratorium = month.between(5, 9).sum() / 5
    outside = (~month.between(5, 9)).sum() / 7
    assert 1.8 <= in_moratorium / outside <= 4.5
    assert (d.loc[fishery, "authority_category"] == "ocean_fishery").all()


def test_authority_type_fine_and_severity(world):
    sim, f, _ = world
    d = first_rows(f)
    names = np.array(sim.params.sector_names, dtype=object)
    sector = names[sim.ent.sector[d["_ent"].to_numpy()]]
    ship = d.loc[sector == "shipping_port_logistics", "authority_category"]
    assert set(ship.unique()) <= {"maritime", "transport_port"}
    oil = d.loc[np.isin(sector, ("oil_gas_storage", "petrochemical", "oil_trading_bunkering")), "authority_category"]
    assert set(oil.unique()) <= {"emergency_management", "ecology_environment", "market_supervision"}
    # base shares hold for unstressed firms (stress raises suspension and revocation)
    never = sim.latent.state.tau[d["_ent"].to_numpy()] < 0
    types = d.loc[never, "penalty_type"].value_counts(normalize=True)
    assert types.idxmax() == "fine" and types["fine"] >= 0.55
    assert (d.loc[d["penalty_type"] == "warning", "fine_amount"] == 0).all()
    assert (d.loc[d["penalty_type"] != "warning", "fine_amount"] > 0).all()
    fines = d.loc[(d["penalty_type"] != "warning") & ~np.isin(sector, ["marine_fishery"]), "fine_amount"]
    assert fines.median() == pytest.approx(0.5, rel=0.3)
    serious = (d.loc[never, "severity"] == "serious").mean()
    assert 0.04 <= serious <= 0.20


def test_publicity_periods(world):
    _, f, _ = world
    d = first_rows(f)
    dd = d["decision_date"].to_numpy().astype("datetime64[D]")
    end = d["publicity_end_date"].to_numpy().astype("datetime64[D]")
    serious = (d["severity"] == "serious").to_numpy()
    big = (d["fine_amount"] >= 1).to_numpy()
    expect = np.where(serious, add_months(dd, 36), np.where(big, add_months(dd, 12), add_months(dd, 3)))
    assert (end == expect).all()


def test_credit_repair_published_later_as_a_second_row(world):
    _, f, _ = world
    d = first_rows(f).set_index("decision_id")
    rep = f[f["credit_repair_date"].notna()]
    assert len(rep) > 0
    assert rep["decision_id"].isin(d.index).all()
    assert not rep["decision_id"].duplicated().any()
    orig = d.loc[rep["decision_id"]]
    for col in ("uscc", "decision_date", "penalty_type", "severity", "publicity_end_date"):
        assert (orig[col].to_numpy() == rep[col].to_numpy()).all(), col
    rd = rep["credit_repair_date"]
    assert (rd >= rep["decision_date"] + pd.DateOffset(months=3)).all()
    assert (rd < rep["publicity_end_date"]).all()
    assert (rep["_available_date"] > rd).all()
    serious = rep["severity"] == "serious"
    assert (rd[serious] >= rep.loc[serious, "decision_date"] + pd.DateOffset(months=12)).all()
    # general decisions with a 12-month publicity are repaired at about 0.3
    general_long = d[(d["severity"] == "general") & (d["fine_amount"] >= 1)
                     & (d["decision_date"] < pd.Timestamp("2019-06-01"))]
    share = general_long.index.isin(rep["decision_id"]).mean()
    assert 0.12 <= share <= 0.40


def test_board_keys(world):
    sim, f, probe = world
    d = first_rows(f)
    months = date_to_month(d["decision_date"].to_numpy().astype("datetime64[D]"))
    window = (months > PROBE_MONTH - 12) & (months <= PROBE_MONTH)
    expect = np.bincount(d["_ent"].to_numpy()[window], minlength=sim.ent.n_max)
    assert (probe.seen["penalties_12m"] == expect).all()
    now = d[(months == PROBE_MONTH) & (d["severity"] == "serious").to_numpy()]["_ent"].to_numpy()
    got = np.flatnonzero(probe.seen["serious_penalty_now"])
    assert set(got) == set(now)


def test_deterministic_for_a_seed():
    a = run_small_world([PenaltiesModule()], enterprises=300, start="2018-01", end="2018-12", seed=3)[1]
    b = run_small_world([PenaltiesModule()], enterprises=300, start="2018-01", end="2018-12", seed=3)[1]
    pd.testing.assert_frame_equal(a.frame("admin_penalties"), b.frame("admin_penalties"))
