"""S05 annual_report and S06 external_guarantees (simulation.md §7.2, §11) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import add_months
from data.simulate.harness import run_small_world
from data.simulate.latent import REVOKED
from data.simulate.observe.annual_report import AnnualReportModule
from kernel.catalog import load_catalog

PROBE_MONTH = 2019 * 12 + 6          # 2019-07: the 2018 reports are settled for on-time filers


class Probe:
    """Records h, the performing flag and the board at filing decisions (steps after the module)."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.board: dict[str, np.ndarray] = {}
        self.perf_may: dict[int, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        if ctx.moy == 5:
            self.perf_may[ctx.year] = ctx.latent.performing.copy()
        if ctx.t == PROBE_MONTH:
            self.board = {k: ctx.board[k].copy() for k in ("annual_report_filed", "owners_equity",
                                                           "annual_report_submit_date")}


@pytest.fixture(scope="module")
def world():
    probe = Probe()
    sim, sink = run_small_world([AnnualReportModule(), probe], enterprises=2000, start="2018-01", end="2021-12",
                                seed=7, calibrate=True)
    return sim, sink.frame("annual_report"), sink.frame("external_guarantees"), probe


def alive_at(sim, month: int) -> np.ndarray:
    """Registered (active or liquidating) at the end of `month`, from the final state's last transition."""
    s, ent = sim.latent.state, sim.ent
    gone = (s.status >= REVOKED) & (s.status_change_month <= month)
    return (ent.birth_month <= month) & ~gone


def filing_outcomes(sim, ar: pd.DataFrame, year: int) -> pd.Series:
    """on_time / late / missing (by 31 Dec y+1) for firms owing the year-y report and alive on 30 June y+1."""
    ent = sim.ent
    owe = np.flatnonzero(alive_at(sim, 12 * (year + 1) + 5) & (ent.birth_month <= 12 * year + 11))
    r = ar[ar["report_year"] == year].set_index("_ent")["submit_date"]
    d = r.reindex(owe)
    out = pd.Series("missing", index=owe)
    out[d <= pd.Timestamp(f"{year + 1}-06-30")] = "on_time"
    out[(d > pd.Timestamp(f"{year + 1}-06-30")) & (d <= pd.Timestamp(f"{year + 1}-12-31"))] = "late"
    return out


def test_fields_follow_the_catalog(world):
    _, ar, eg, _ = world
    cat = load_catalog()
    for frame, code in ((ar, "annual_report"), (eg, "external_guarantees")):
        spec = cat.sub_item(code)
        assert [c for c in frame.columns if not c.startswith("_")] == list(spec.field_names)
        for fs in spec.fields:
            col = frame[fs.name]
            assert col.notna().all(), (code, fs.name)
            if fs.dtype == "category":
                assert set(col.unique()) <= set(fs.allowed), fs.name
            elif fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), fs.name
            elif fs.dtype == "float":
                assert col.dtype == np.float64, fs.name
                assert (col.round(2) == col).all(), fs.name
            elif fs.dtype == "int":
                assert pd.api.types.is_integer_dtype(col), fs.name
            if fs.min is not None and fs.dtype in ("int", "float"):
                assert (col >= fs.min).all(), fs.name
        assert frame["uscc"].str.len().eq(18).all()
    # one row per firm and report year; available on the filing day
    assert not ar.duplicated(["uscc", "report_year"]).any()
    assert (ar["_available_date"] >= ar["submit_date"]).all()
    first = ar["_available_date"] == pd.Timestamp("2015-01-01")
    assert (ar.loc[~first, "_available_date"] == ar.loc[~first, "submit_date"]).all()
    assert (ar["submit_date"].dt.year > ar["report_year"]).all()


def test_filing_rates_match_section_11(world):
    """On time / late / missing 88 / 6 / 6 % +- 3 pp (pooled over report years 2016-2019)."""
    sim, ar, _, _ = world
    shares = pd.concat([filing_outcomes(sim, ar, y) for y in range(2016, 2020)]).value_counts(normalize=True)
    assert shares["on_time"] == pytest.approx(0.88, abs=0.03)
    assert shares["late"] == pytest.approx(0.06, abs=0.03)
    assert shares["missing"] == pytest.approx(0.06, abs=0.03)


def test_on_time_filings_peak_in_june(world):
    """On-time dates uniform over Jan-Jun with 40% in June."""
    _, ar, _, _ = world
    first_year = ar[ar["submit_date"].dt.year == ar["report_year"] + 1]
    on_time = first_year[first_year["submit_date"].dt.month <= 6]
    assert on_time["submit_date"].dt.month.eq(6).mean() == pytest.approx(0.40, abs=0.04)
    for m in range(1, 6):
        assert on_time["submit_date"].dt.month.eq(m).mean() == pytest.approx(0.12, abs=0.03)


def test_absorbed_firms_and_shells_file_less(world):
    sim, ar, _, probe = world
    frames = []
    for y in range(2016, 2020):
        o = filing_outcomes(sim, ar, y)
        perf = probe.perf_may[y + 1][o.index]
        frames.append(pd.DataFrame({"o": o.to_numpy(), "perf": perf, "shell": sim.ent.shell[o.index]}))
    d = pd.concat(frames)
    filed = d["o"] != "missing"
    assert filed[~d["perf"]].mean() == pytest.approx(0.3, abs=0.12)
    assert filed[d["perf"] & d["shell"]].mean() == pytest.approx(0.6, abs=0.12)
    assert filed[d["perf"] & ~d["shell"]].mean() > 0.95


def test_balance_sheet_and_profit_rules(world):
    _, ar, _, _ = world
    assert np.allclose(ar["owners_equity"], ar["total_assets"] - ar["total_liabilities"], atol=0.011)
    ratio = ar["total_liabilities"] / ar["total_assets"]
    assert ratio.mean() == pytest.approx(0.55, abs=0.07)
    assert ratio.std() == pytest.approx(0.2, abs=0.07)
    assert ar["total_assets"].median() == pytest.approx(600, rel=0.5)
    pos = ar["total_profit"] > 0
    net, tp = ar.loc[pos, "net_profit"], ar.loc[pos, "total_profit"]
    assert (((net - 0.8 * tp).abs() <= 0.006) | ((net - 0.95 * tp).abs() <= 0.006)).all()
    assert (ar.loc[~pos, "net_profit"] == ar.loc[~pos, "total_profit"]).all()
    margin = ar["total_profit"] / ar["operating_revenue"].where(ar["operating_revenue"] > 0)
    assert margin.median() == pytest.approx(0.03, abs=0.015)
    assert (ar["total_profit"] < 0).mean() == pytest.approx(0.22, abs=0.08)


def test_backfilled_reports_were_missing_and_come_with_a_later_filing(world):
    _, ar, _, _ = world
    late = ar[ar["submit_date"].dt.year >= ar["report_year"] + 2]
    assert len(late) > 0
    later = ar.merge(late[["_ent", "submit_date", "report_year"]], on=["_ent", "submit_date"],
                     suffixes=("", "_owed"))
    # every backfilled report is filed on the same day as a more recent report of the same firm
    assert (later.groupby(["_ent", "report_year_owed"])["report_year"].max()
            > later.groupby(["_ent", "report_year_owed"])["report_year_owed"].first()).all()


def test_guarantees_only_in_filed_reports_and_only_disclosed_edges(world):
    sim, ar, eg, _ = world
    assert len(eg) > 50
    keys = ar.set_index(["_ent", "report_year"])["submit_date"]
    joined = keys.reindex(pd.MultiIndex.from_frame(eg[["_ent", "report_year"]]))
    assert joined.notna().all()
    assert (eg["_available_date"].to_numpy() >= joined.to_numpy()).all()
    g, ent, persons = sim.net.guarantees, sim.ent, sim.net.persons
    debtor_id = np.where(g.debtor >= 0, ent.uscc[np.maximum(g.debtor, 0)],
                         persons.person_id[np.maximum(g.debtor_person, 0)])
    edges = pd.DataFrame({"_ent": g.guarantor, "debtor_id": debtor_id, "disclosed": g.disclosed})
    m = eg.merge(edges, on=["_ent", "debtor_id"], how="left")
    assert m["disclosed"].fillna(False).astype(bool).all()
    assert (eg["debt_start_date"].dt.year == eg["report_year"]).all()
    end = add_months(eg["debt_start_date"].to_numpy().astype("datetime64[D]"), 12)
    assert (eg["debt_end_date"].to_numpy().astype("datetime64[D]") == end).all()
    assert eg["debtor_id"].str.startswith("P_").mean() == pytest.approx(0.1, abs=0.06)
    assert eg["guarantee_mode"].eq("joint_and_several").mean() == pytest.approx(0.85, abs=0.08)


def test_board_keys(world):
    sim, ar, _, probe = world
    b = probe.board
    y = PROBE_MONTH // 12 - 1
    r = ar[(ar["report_year"] == y) & (ar["submit_date"] <= pd.Timestamp(f"{y + 1}-07-31"))]
    filed = np.zeros(sim.ent.n_max, dtype=bool)
    filed[r["_ent"].to_numpy()] = True
    assert (b["annual_report_filed"] == filed).all()
    assert (b["annual_report_submit_date"][r["_ent"].to_numpy()] == r["submit_date"].to_numpy()).all()
    # owners_equity: the latest filed report's value, NaN for firms that never filed
    latest = ar[ar["submit_date"] <= pd.Timestamp(f"{y + 1}-07-31")]
    latest = latest[latest["report_year"] == latest.groupby("_ent")["report_year"].transform("max")]
    eq = b["owners_equity"][latest["_ent"].to_numpy()]
    assert np.allclose(eq, latest["owners_equity"].to_numpy())
    born_later = np.flatnonzero(sim.ent.birth_month >= sim.params.t_events)
    never = np.setdiff1d(born_later, ar["_ent"].to_numpy())
    assert never.size > 0
    assert np.isnan(b["owners_equity"][never]).all()


def test_deterministic_for_a_seed():
    frames = []
    for _ in range(2):
        _, sink = run_small_world([AnnualReportModule()], enterprises=300, start="2016-01", end="2017-12", seed=3)
        frames.append(sink.frame("annual_report"))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert len(frames[0]) > 100
