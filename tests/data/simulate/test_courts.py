"""Courts module (S12-S16): catalog conformity, calibration targets, the post-default cascade, guarantor
co-defendants, the enforcement -> dishonest / restriction chain, board keys and determinism."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month, month_end
from data.simulate.context import MonthContext
from data.simulate.emit import Emitter, MemorySink
from data.simulate.engine import Simulation
from data.simulate.harness import run_small_world
from data.simulate.latent import ACTIVE
from data.simulate.observe.courts import CourtsModule
from data.simulate.params import load_world_params
from kernel.catalog import load_catalog

SUB_ITEMS = CourtsModule.sub_items
KEYS = {"litigation_cases": ["uscc", "case_id"], "enforcement_cases": ["uscc", "case_id"],
        "dishonest_debtors": ["uscc", "case_id"], "consumption_restrictions": ["uscc", "case_id"],
        "judicial_freezes": ["uscc", "holder_id", "freeze_start_date"]}
YEARS = (2018, 2019, 2020)


@dataclass
class World:
    sim: Simulation
    sink: MemorySink
    module: CourtsModule
    active: dict[int, np.ndarray]          # month -> active firms (alive, status active)
    board: dict[int, dict[str, np.ndarray]]

    def frame(self, sub_item: str) -> pd.DataFrame:
        return self.sink.frame(sub_item)

    def latest(self, sub_item: str) -> pd.DataFrame:
        """The last available version of every key."""
        f = self.frame(sub_item).sort_values("_available_date", kind="stable")
        return f.drop_duplicates(KEYS[sub_item], keep="last")

    def first(self, sub_item: str) -> pd.DataFrame:
        f = self.frame(sub_item).sort_values("_available_date", kind="stable")
        return f.drop_duplicates(KEYS[sub_item], keep="first")


def _run(enterprises: int, end: str, seed: int, extra: list | None = None, start: str = "2018-01") -> World:
    params = load_world_params(enterprises=enterprises, start=start, end=end, seed=seed)
    module = CourtsModule()
    sink = MemorySink()
    sim = Simulation(params=params, modules=[*(extra or []), module], sink=sink, calibrate=True)
    active: dict[int, np.ndarray] = {}
    board: dict[int, dict[str, np.ndarray]] = {}

    def hook(ctx: MonthContext) -> None:
        active[ctx.t] = ctx.alive & (ctx.latent.status == ACTIVE)
        board[ctx.t] = {k: ctx.board[k].copy() for k in ("active_dishonest", "active_restriction",
                                                         "enforcement_terminated_24m", "in_litigation")}

    sim.month_hooks.append(hook)
    sim.run()
    return World(sim, sink, module, active, board)


@pytest.fixture(scope="module")
def world() -> World:
    return _run(1500, "2020-12", seed=7)


@pytest.fixture(scope="module")
def big_world() -> World:
    """More firms over a shorter span (events from 2013): enough guarantee pairs; a stub exposes ring 0."""
    return _run(3000, "2017-12", seed=3, extra=[_ring_stub("2014-03")], start="2016-01")


# --------------------------------------------------------------------------------------------------
def test_fields_dtypes_and_categories(world: World) -> None:
    catalog = load_catalog()
    for code in SUB_ITEMS:
        f = world.frame(code)
        assert len(f) > 20, code
        spec = catalog.sub_item(code)
        assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names)
        for fs in spec.fields:
            col = f[fs.name]
            if fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), (code, fs.name)
            elif fs.dtype == "float":
                assert pd.api.types.is_float_dtype(col), (code, fs.name)
            elif fs.dtype == "category":
                assert set(col.dropna()) <= set(fs.allowed), (code, fs.name)
        assert set(f["_cause"]) <= {"background", "stress", "cascade", "contagion", "ring"}
        assert (f["uscc"] == world.sim.ent.uscc[f["_ent"].to_numpy()]).all()
    lit, enf = world.frame("litigation_cases"), world.frame("enforcement_cases")
    assert lit["case_id"].str.fullmatch(r"C_[0-9a-f]{16}").all()
    assert enf["case_id"].str.fullmatch(r"E_[0-9a-f]{16}").all()
    assert world.frame("dishonest_debtors")["legal_rep_person_id"].str.fullmatch(r"P_[0-9a-f]{16}").all()
    # every row is available after its business date, and nothing is published before the event window
    assert (lit["_available_date"] >= lit["filing_date"] + pd.Timedelta(days=7)).all()
    assert (lit["filing_date"] >= "2015-01-01").all()
    assert (enf["_available_date"] >= enf["filing_date"] + pd.Timedelta(days=7)).all()


def test_litigation_lifecycle_versions(world: World) -> None:
    """Filing row pending with no dates; judgment row later with the outcome; availability lags."""
    lit = world.frame("litigation_cases").sort_values("_available_date", kind="stable")
    first = lit.drop_duplicates(["uscc", "case_id"], keep="first")
    assert (first["outcome"] == "pending").all() and first["judgment_date"].isna().all()
    assert first["hearing_date"].isna().all()
    judged = lit[lit["judgment_date"].notna()]
    assert len(judged) > 200
    assert (judged["outcome"] != "pending").all()
    assert (judged["judgment_date"] > judged["filing_date"]).all()
    lag = (judged["_available_date"] - judged["judgment_date"]).dt.days
    assert lag.between(30, 90).mean() > 0.97          # judgment documents 30-90 days (causal rule aside)
    notice = lit[lit["hearing_date"].notna() & lit["judgment_date"].isna()]
    assert ((notice["hearing_date"] - notice["filing_date"]).dt.days.between(30, 120)).all()
    last = world.latest("litigation_cases")
    assert last["hearing_date"].isna().mean() == pytest.approx(0.2, abs=0.08)
    closed = last[last["outcome"] != "pending"]
    assert (closed["hearing_date"].isna() | (closed["hearing_date"] <= closed["judgment_date"])).all()
    # a case with two platform parties: same case_id, same filing date, different firms and roles
    multi = first.groupby("case_id").filter(lambda g: len(g) > 1)
    assert multi["case_id"].nunique() > 20
    assert (multi.groupby("case_id")["filing_date"].nunique() == 1).all()
    assert (multi.groupby("case_id")["uscc"].nunique() == multi.groupby("case_id").size()).all()
    shares = first["case_type"].value_counts(normalize=True)
    assert shares["civil"] > 0.92 and 0.01 < shares["administrative"] < 0.06 and 0.002 < shares["criminal"] < 0.03


def test_versions_become_available_in_lifecycle_order(world: World) -> None:
    """Rows of one key are versions: strictly increasing availability, and the state only moves forward."""
    stage = {
        "litigation_cases": lambda f: np.where(f["judgment_date"].notna(), 2, np.where(f["hearing_date"].notna(), 1, 0)),
        "enforcement_cases": lambda f: (f["status"] != "in_progress").astype(int),
        "dishonest_debtors": lambda f: f["removal_date"].notna().astype(int),
        "consumption_restrictions": lambda f: f["removal_date"].notna().astype(int),
        "judicial_freezes": lambda f: f["status"].isin(["unfrozen", "invalid"]).astype(int),
    }
    for code, rank in stage.items():
        f = world.frame(code).sort_values("_available_date", kind="stable").reset_index(drop=True)
        f["_stage"] = rank(f)
        g = f.groupby(KEYS[code], sort=False)
        assert (g["_available_date"].diff().dropna() > pd.Timedelta(0)).all(), code
        assert (g["_stage"].diff().dropna() >= 0).all(), code
        if code == "judicial_freezes":
            closed = f[f["status"].isin(["unfrozen", "invalid"])]
            assert not closed.duplicated(KEYS[code]).any()          # a closed freeze does not change again
    assert world.frame("litigation_cases").duplicated(KEYS["litigation_cases"]).sum() > 500   # real versions


def test_new_civil_case_rates(world: World) -> None:
    """§11: firms with a new civil case per year ~12% (+-2pp), as defendant ~6% (+-2pp)."""
    first = world.first("litigation_cases")
    civil = first[first["case_type"] == "civil"]
    year = pd.to_datetime(civil["filing_date"]).dt.year
    any_rate, def_rate = [], []
    for y in YEARS:
        active = np.flatnonzero(world.active[y * 12])
        rows = civil[year == y]
        any_rate.append(np.isin(active, rows["_ent"]).mean())
        def_rate.append(np.isin(active, rows.loc[rows["party_role"] == "defendant", "_ent"]).mean())
    assert np.mean(any_rate) == pytest.approx(0.12, abs=0.02)
    assert np.mean(def_rate) == pytest.approx(0.06, abs=0.02)


def test_active_dishonest_share_and_board(world: World) -> None:
    """§11: ~0.6% (+-0.3pp) of active firms carry an active listing; the board agrees with the data."""
    months = [t for t in world.active if YEARS[0] * 12 <= t < (YEARS[-1] + 1) * 12]
    share = np.mean([(world.board[t]["active_dishonest"] & world.active[t]).sum() / world.active[t].sum()
                     for t in months])
    assert share == pytest.approx(0.006, abs=0.003)
    # reconstruct 'active at month end' from the published rows, as a reader of the data would
    t = 2019 * 12 + 5
    as_of = month_end(t)[()]
    rows = world.frame("dishonest_debtors")
    rows = rows[rows["_available_date"] <= as_of].sort_values("_available_date", kind="stable")
    state = rows.drop_duplicates(["uscc", "case_id"], keep="last")
    live = state[(state["publish_date"] <= as_of) & (state["removal_date"].isna() | (state["removal_date"] > as_of))]
    assert set(live["_ent"]) == set(np.flatnonzero(world.board[t]["active_dishonest"]))
    for key in ("active_dishonest", "active_restriction", "enforcement_terminated_24m", "in_litigation"):
        b = world.sim.board[key]
        assert b.dtype == bool and b.shape == (world.sim.ent.n_max,)
    assert world.board[t]["in_litigation"].sum() > 0 and world.board[t]["active_restriction"].sum() > 0


def _single_defaulters(world: World, lo: str, hi: str) -> np.ndarray:
    s = world.sim.latent.state
    lo_t, hi_t = (int(date_to_month(np.datetime64(d, "D"))) for d in (lo, hi))
    return np.flatnonzero((s.tau >= lo_t) & (s.tau <= hi_t) & (s.last_default == s.tau))


def test_cascade_follows_default_with_spec_lags(world: World) -> None:
    """E3 (bank suit) w.p. 0.65 at Gamma(2, 1.5) months after tau; E5 bankruptcy rare; E2/E4 later."""
    tau = world.sim.latent.state.tau
    firms = _single_defaulters(world, "2015-06-01", "2019-06-30")
    assert firms.size > 20
    lit = world.first("litigation_cases")
    casc = lit[(lit["_cause"] == "cascade") & lit["_ent"].isin(firms)]
    e3 = casc[(casc["cause_category"] == "financial_loan") & (casc["party_role"] == "defendant")
              & casc["counterparty_type"].isin(["bank", "non_bank_fi"])]
    # ~2 binomial standard errors at this world's few dozen defaulters
    assert e3["_ent"].nunique() / firms.size == pytest.approx(0.65, abs=2 * np.sqrt(0.65 * 0.35 / firms.size) + 0.02)
    lag = date_to_month(e3["filing_date"].to_numpy().astype("datetime64[D]")) - tau[e3["_ent"].to_numpy()]
    assert lag.min() >= 0 and np.mean(lag) == pytest.approx(3.0, abs=0.7)
    # every cascade record of a single defaulter is filed no earlier than tau - 4 months and, under the
    # causal rule, is available no earlier than the default month
    f_month = date_to_month(casc["filing_date"].to_numpy().astype("datetime64[D]"))
    a_month = date_to_month(casc["_available_date"].to_numpy().astype("datetime64[D]"))
    k = tau[casc["_ent"].to_numpy()]
    assert (f_month >= k - 4).all() and (a_month >= k).all()
    early = casc[f_month < k]
    assert set(early["cause_category"]) <= {"private_lending", "sales_contract"} and len(early) > 0
    bk = casc[casc["case_type"] == "bankruptcy"]
    assert (bk["party_role"] == "defendant").all() and bk["_ent"].nunique() / firms.size < 0.12
    # E2: dishonest listings of defaulted firms come after tau; share of defaulters listed ~ 0.40 x P(enf)
    dis = world.first("dishonest_debtors")
    d = dis[dis["_ent"].isin(firms) & (dis["_cause"] == "cascade")]
    listed = d["_ent"].nunique() / firms.size
    assert 0.15 < listed < 0.5
    pub_lag = date_to_month(d["publish_date"].to_numpy().astype("datetime64[D]")) - tau[d["_ent"].to_numpy()]
    assert pub_lag.min() >= 2 and 6 <= np.median(pub_lag) <= 20
    # E4: terminated without assets 6-12 months after the enforcement filing
    enf = world.latest("enforcement_cases")
    term = enf[(enf["status"] == "terminated_no_assets") & enf["_ent"].isin(firms)]
    assert len(term) > 10
    months = (term["close_date"] - term["filing_date"]).dt.days / 30.44
    assert months.between(5.5, 12.6).all()
    assert (term["unfulfilled_amount"] == term["execution_target_amount"]).all()


def test_guarantors_join_the_debtors_bank_case(big_world: World) -> None:
    """§6.2: guarantors of a defaulted debtor are co-defendants in its financial_loan case w.p. 0.7."""
    world = big_world
    sim = world.sim
    s = sim.latent.state
    g = sim.net.guarantees
    lit = world.first("litigation_cases")
    fl = lit[(lit["_cause"] == "cascade") & (lit["cause_category"] == "financial_loan")]
    first_case = fl.sort_values("filing_date").drop_duplicates("_ent")
    cases_of = fl.groupby("_ent")["case_id"].apply(set).to_dict()
    rows_by_case = lit.groupby("case_id")["_ent"].apply(set).to_dict()
    hits = pairs = 0
    for debtor in first_case["_ent"].to_numpy():
        t = s.tau[debtor]
        if s.last_default[debtor] != t:
            continue
        for gi in g.guarantor[g.debtor == debtor]:
            alive_then = s.born[gi] and sim.ent.birth_month[gi] < t and (
                s.status[gi] <= 1 or s.status_change_month[gi] > t + 12)
            if not alive_then or gi == debtor:
                continue
            pairs += 1
            hits += any(gi in rows_by_case[c] for c in cases_of[debtor])
    assert pairs > 5
    assert hits / pairs == pytest.approx(0.7, abs=0.2)
    co = lit[lit["_cause"] == "contagion"]
    co_def = co[co["cause_category"] == "financial_loan"]
    assert len(co_def) > 0
    assert (co_def["party_role"] == "defendant").all()
    assert co_def["counterparty_type"].isin(["bank", "non_bank_fi"]).all()
    # supplier plaintiffs of defaulted firms share the sales-contract case with the debtor
    sup = co[(co["cause_category"] == "sales_contract") & (co["party_role"] == "plaintiff")]
    assert len(sup) > 0 and sup["case_id"].isin(lit.loc[lit["_cause"] == "cascade", "case_id"]).all()


def test_enforcement_dishonest_restriction_chain(world: World) -> None:
    """S14 and S15 rows point at S13 enforcement cases of the same firm, with ordered dates."""
    enf = world.latest("enforcement_cases")
    e = enf.set_index("case_id")
    assert (enf["unfulfilled_amount"] <= enf["execution_target_amount"] + 1e-9).all()
    closed = enf[enf["close_date"].notna()]
    assert (closed["close_date"] > closed["filing_date"]).all()
    assert (enf.loc[enf["status"] == "in_progress", "close_date"].isna()).all()
    assert (enf.loc[enf["status"] == "concluded", "unfulfilled_amount"] == 0).all()

    dis = world.latest("dishonest_debtors")
    dis = dis[dis["filing_date"] >= "2015-01-01"]             # their enforcement rows are in the window
    assert dis["case_id"].isin(e.index).all()
    ref = e.loc[dis["case_id"]]
    assert (ref["uscc"].to_numpy() == dis["uscc"].to_numpy()).all()
    assert (ref["filing_date"].to_numpy() == dis["filing_date"].to_numpy()).all()
    assert ((dis["publish_date"] - dis["filing_date"]).dt.days >= 30).all()
    gone = dis[dis["removal_date"].notna()]
    assert len(gone) > 0 and (gone["removal_date"] > gone["publish_date"]).all()
    assert ((gone["removal_date"] - gone["publish_date"]).dt.days <= 732).all()
    assert (world.frame("dishonest_debtors")["_available_date"]
            == world.frame("dishonest_debtors")[["publish_date", "removal_date"]].max(axis=1)).all()
    # a listing is never lifted early when its case ended without assets
    term = dis[ref["status"].to_numpy() == "terminated_no_assets"]
    early = term[term["removal_date"].notna() & ((term["removal_date"] - term["publish_date"]).dt.days < 720)]
    assert early.empty

    res = world.latest("consumption_restrictions")
    res = res[res["issue_date"] >= "2015-03-01"]
    assert res["case_id"].isin(e.index).all()
    ref = e.loc[res["case_id"]]
    assert (ref["uscc"].to_numpy() == res["uscc"].to_numpy()).all()
    assert ((res["issue_date"] - ref["filing_date"].to_numpy()).dt.days.between(20, 60)).all()
    lifted = res["removal_date"].notna()
    assert lifted.any() and (~lifted).any()
    assert set(ref["status"].to_numpy()[lifted.to_numpy()]) <= {"concluded", "withdrawn_or_settled"}
    assert (res.loc[lifted, "removal_date"].to_numpy() == ref["close_date"].to_numpy()[lifted.to_numpy()]).all()
    assert res["restricted_role"].value_counts(normalize=True)["legal_rep"] == pytest.approx(0.7, abs=0.1)

    frz = world.frame("judicial_freezes")
    first = frz.sort_values("_available_date", kind="stable").drop_duplicates(KEYS["judicial_freezes"])
    assert (first["status"] == "frozen").all()
    assert (first["freeze_end_date"] == first["freeze_start_date"] + pd.DateOffset(months=36)).all()
    assert (frz["frozen_equity_amount"] > 0).all()
    assert frz["holder_id"].str.startswith("P_").mean() > 0.5


def _ring_stub(month: str) -> object:
    """A stand-in tax module that exposes ring 0 in one month and pins the legal representative."""

    class Stub:
        name = "stub_tax"
        sub_items: tuple[str, ...] = ()

        def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
            self.t = int(date_to_month(np.datetime64(month + "-01", "D")))

        def step(self, ctx: MonthContext, out: Emitter) -> None:
            ctx.board["ring_exposed_now"] = (ctx.net.ring_id == 0) if ctx.t == self.t else np.zeros(
                ctx.ent.n_max, dtype=bool)
            ctx.board["legal_rep"] = ctx.net.controller

    return Stub()


def test_ring_exposure_and_legal_rep_from_the_board(big_world: World) -> None:
    w = big_world
    lit = w.first("litigation_cases")
    ring = lit[lit["_cause"] == "ring"]
    members = np.flatnonzero(w.sim.net.ring_id == 0)
    assert members.size >= 5
    assert len(ring) > 0 and set(ring["_ent"]) <= set(members)
    assert (ring["case_type"] == "criminal").all() and (ring["party_role"] == "defendant").all()
    assert (ring["filing_date"].dt.strftime("%Y-%m") == "2014-03").all()
    assert ring["cause_category"].eq("not_applicable").all() and ring["claim_amount"].isna().all()
    dis = w.first("dishonest_debtors")
    assert len(dis) > 0
    assert (dis["legal_rep_person_id"].to_numpy()
            == w.sim.net.persons.person_id[w.sim.net.controller[dis["_ent"].to_numpy()]]).all()


def test_deterministic_for_a_seed() -> None:
    def rows(seed: int) -> dict[str, pd.DataFrame]:
        _, sink = run_small_world([CourtsModule()], enterprises=300, start="2016-01", end="2016-12", seed=seed)
        return {s: sink.frame(s) for s in SUB_ITEMS}

    a, b, c = rows(5), rows(5), rows(6)
    for s in SUB_ITEMS:
        pd.testing.assert_frame_equal(a[s], b[s])
    assert not a["litigation_cases"].equals(c["litigation_cases"])
