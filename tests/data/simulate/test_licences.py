"""S32 oil_trade_license and S33 safety_production (simulation.md §7.12) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month, month_end
from data.simulate.harness import run_small_world
from data.simulate.observe.licences import LicencesModule
from kernel.catalog import load_catalog

LIC_KEY = ["uscc", "license_type", "issue_date"]
END = 2021 * 12 + 11


class Probe:
    """Records monthly accidents with their expected probability, and the board in the last month."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self, module: LicencesModule) -> None:
        self.module = module
        self.accidents: dict[int, np.ndarray] = {}
        self.expected = 0.0
        self.board: dict[str, np.ndarray] = {}
        self.alive_end: np.ndarray | None = None
        self.covered_share: list[float] = []
        self.h: dict[int, np.ndarray] = {}
        self.alive: dict[int, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        m = self.module
        cov = m.covered & ctx.alive
        self.accidents[ctx.t] = ctx.board["safety_accident_now"].copy()
        self.expected += float((m.p.safety.accident_base * (1 + ctx.stress) * m.acc_factor)[cov].sum())
        self.covered_share.append(cov.sum() / ctx.alive.sum())
        self.h[ctx.t] = np.where(m.holder, ctx.h, np.nan)
        self.alive[ctx.t] = ctx.alive & m.holder
        if ctx.t == END:
            self.board = {k: ctx.board[k].copy() for k in ("oil_license_active", "safety_accident_now")}
            self.alive_end = ctx.alive.copy()


@pytest.fixture(scope="module")
def world():
    module = LicencesModule()
    probe = Probe(module)
    sim, sink = run_small_world([module, probe], enterprises=4000, start="2018-01", end="2021-12", seed=7)
    return sim, sink.frame("oil_trade_license"), sink.frame("safety_production"), probe


def sector_of(sim, ent: pd.Series) -> np.ndarray:
    return np.array(sim.params.sector_names, dtype=object)[sim.ent.sector[ent.to_numpy()]]


def test_fields_follow_the_catalog(world):
    _, ol, sp, _ = world
    cat = load_catalog()
    for frame, code in ((ol, "oil_trade_license"), (sp, "safety_production")):
        spec = cat.sub_item(code)
        assert len(frame) > 20, code
        assert [c for c in frame.columns if not c.startswith("_")] == list(spec.field_names)
        for fs in spec.fields:
            col = frame[fs.name]
            if fs.dtype == "category":
                assert col.notna().all() and set(col.unique()) <= set(fs.allowed), fs.name
            elif fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), fs.name
            elif fs.dtype == "float":
                assert col.dtype == np.float64 and (col.dropna() >= 0).all(), fs.name
            elif fs.dtype == "int":
                assert pd.api.types.is_integer_dtype(col) and col.notna().all() and (col >= 0).all(), fs.name
        assert frame["uscc"].str.len().eq(18).all()
    assert ol["issue_date"].notna().all() and ol["expiry_date"].notna().all()


def test_licence_holders_and_types(world):
    sim, ol, _, _ = world
    lic = ol.drop_duplicates(LIC_KEY)
    sector = sector_of(sim, lic["_ent"])
    code = sim.ent.industry_code[lic["_ent"].to_numpy()]
    assert not sim.ent.shell[lic["_ent"].to_numpy()].any()
    assert ((lic["license_type"] == "refined_oil_retail").to_numpy() == (code == "F5265")).all()
    trader = lic["license_type"].isin(["bonded_fuel_bunkering", "refined_oil_export"]).to_numpy()
    assert (sector[trader] == "oil_trading_bunkering").all()
    crude = (lic["license_type"] == "crude_oil_import_nonstate").to_numpy()
    assert np.isin(sector[crude], ["oil_gas_storage", "petrochemical"]).all()
    assert lic.groupby("_ent").size().max() == 1
    # every retail station born before its issue window closes gets a licence
    born = sim.latent.state.born
    retail = np.flatnonzero(born & (sim.ent.industry_code == "F5265") & ~sim.ent.shell)
    assert np.isin(retail, lic["_ent"].to_numpy()).mean() > 0.6
    storage = np.flatnonzero(born & (sim.ent.sector == sim.params.sector_id("oil_gas_storage")))
    assert np.isin(storage, lic["_ent"].to_numpy()).mean() == pytest.approx(0.3, abs=0.2)


def test_licence_dates_capacity_and_quota(world):
    sim, ol, _, _ = world
    est = sim.ent.establish_date[ol["_ent"].to_numpy()]
    issue = ol["issue_date"].to_numpy().astype("datetime64[D]")
    assert (issue >= np.maximum(est, np.datetime64("2012-01-01"))).all()
    assert (issue <= np.datetime64("2023-12-31")).all()
    assert (ol.loc[ol["license_type"] == "refined_oil_export", "issue_date"] >= pd.Timestamp("2020-01-01")).all()
    years = np.where(ol["license_type"] == "refined_oil_retail", 5, 3)
    months = date_to_month(ol["expiry_date"].to_numpy().astype("datetime64[D]")) - date_to_month(issue)
    assert ((months % (12 * years) == 0) & (months > 0)).all()
    retail = ol["license_type"] == "refined_oil_retail"
    assert ol.loc[retail, "storage_capacity_m3"].between(20, 2000).all()
    quota = ol["license_type"].isin(["crude_oil_import_nonstate", "refined_oil_export"])
    assert ol.loc[quota, "annual_quota_tonnes"].notna().all() and ol.loc[~quota, "annual_quota_tonnes"].isna().all()
    sector = sector_of(sim, ol["_ent"])
    big = (sector == "oil_gas_storage") | (ol["license_type"] == "bonded_fuel_bunkering").to_numpy()
    assert ol.loc[big, "storage_capacity_m3"].notna().all()
    assert ol.loc[~big & ~retail.to_numpy(), "storage_capacity_m3"].isna().all()


def test_licence_versions_and_terminal_states(world):
    _, ol, _, probe = world
    assert (ol["_available_date"] >= ol["issue_date"] + pd.Timedelta(days=1)).all()
    first = ol.sort_values("_available_date", kind="stable").drop_duplicates(LIC_KEY)
    new = first[first["issue_date"] >= pd.Timestamp("2015-01-01")]
    assert (new["_available_date"] - new["issue_date"]).dt.days.between(1, 7).all()
    for _, g in ol.sort_values("_available_date", kind="stable").groupby(LIC_KEY):
        st = g["status"].tolist()
        for terminal in ("expired", "revoked"):
            if terminal in st:
                assert st[st.index(terminal):] == [terminal] * (len(st) - st.index(terminal))
        assert g["expiry_date"].is_monotonic_increasing
    # board: active = last version valid
    last = ol.sort_values("_available_date", kind="stable").drop_duplicates(LIC_KEY, keep="last")
    ent = last["_ent"].to_numpy()
    alive = probe.alive_end[ent]
    assert (probe.board["oil_license_active"][ent][alive] == (last["status"] == "valid").to_numpy()[alive]).all()
    holders = np.zeros_like(probe.board["oil_license_active"])
    holders[ent] = True
    assert not probe.board["oil_license_active"][~holders].any()
    shares = last[alive]["status"].value_counts(normalize=True)
    assert shares["valid"] > 0.75


def test_safety_coverage_and_static_fields(world):
    sim, _, sp, probe = world
    assert np.mean(probe.covered_share) == pytest.approx(0.15, abs=0.04)
    last = sp.drop_duplicates("_ent", keep="last")
    sector = sector_of(sim, last["_ent"])
    hz = last["hazchem_license_type"].to_numpy()
    assert (hz[sector == "oil_gas_storage"] == "hazchem_business").all()
    assert (hz[sector == "petrochemical"] == "hazchem_safety_production").all()
    assert (sector[hz == "hazchem_use"] == "manufacturing_other").all()
    assert np.isin(sector[hz == "hazchem_business"], ["oil_gas_storage", "oil_trading_bunkering"]).all()
    manuf = sector == "manufacturing_other"
    assert (hz[manuf] == "hazchem_use").mean() == pytest.approx(0.2 / 0.6, abs=0.1)
    assert last["license_expiry_date"].isna().to_numpy().tolist() == (hz == "none").tolist()
    grade = last["safety_standardization_grade"].value_counts(normalize=True)
    assert grade.get("level_1", 0) <= 0.06
    assert grade["level_3"] == pytest.approx(0.5, abs=0.08)
    src = last["major_hazard_sources"].to_numpy()
    assert (src[sector == "oil_gas_storage"] >= 1).all() and (src[sector == "petrochemical"] >= 2).all()
    assert (src[~np.isin(sector, ["oil_gas_storage", "petrochemical"])] == 0).all()
    # one static profile per firm
    assert (sp.groupby("_ent")[["hazchem_license_type", "safety_standardization_grade",
                                "major_hazard_sources"]].nunique() == 1).all().all()


def test_safety_snapshots_are_monthly_versions_with_rolling_accidents(world):
    sim, _, sp, probe = world
    month = date_to_month(sp["_available_date"].to_numpy().astype("datetime64[D]")) - 1
    assert month.min() == sim.params.t_series
    lag = (sp["_available_date"].to_numpy().astype("datetime64[D]") - month_end(month)).astype(int)
    assert ((lag >= 10) & (lag <= 20)).all()
    # first emission month: every covered alive firm
    first = sp[month == sim.params.t_series]
    assert first["_ent"].is_unique and len(first) > 200
    # accidents_12m = accidents in the trailing 12 months (board history)
    acc = np.stack([probe.accidents[t] for t in sorted(probe.accidents)])
    t0 = min(probe.accidents)
    for ent, m, a12 in zip(sp["_ent"], month, sp["accidents_12m"], strict=True):
        assert acc[m - 11 - t0: m + 1 - t0, ent].sum() == a12
    # a new version only when something changed
    cols = ["license_expiry_date", "accidents_12m", "overdue_hazard_rectifications"]
    for _, g in sp.groupby("_ent"):
        if len(g) > 1:
            v = g[cols].astype(str)
            assert (v.iloc[1:].to_numpy() != v.iloc[:-1].to_numpy()).any(axis=1).all()


def test_accident_and_rectification_rates(world):
    _sim, _, sp, probe = world
    total = sum(int(a.sum()) for a in probe.accidents.values())
    assert total == pytest.approx(probe.expected, rel=0.3)
    assert sp["overdue_hazard_rectifications"].max() <= 5
    # hazchem licences renew on a 3-year cycle; some lapse while the firm operates
    exp = sp[sp["hazchem_license_type"] != "none"]
    end = pd.Timestamp("2021-12-31")
    last = exp.drop_duplicates("_ent", keep="last")
    alive = probe.alive_end[last["_ent"].to_numpy()]
    assert (last.loc[alive, "license_expiry_date"] < end).mean() < 0.15


class Stub:
    """Writes board keys the penalties and tax modules would write (steps before the licences module)."""

    name = "stub"
    sub_items: tuple[str, ...] = ()

    def __init__(self, penalty_month: int, violation_month: int) -> None:
        self.penalty_month = penalty_month
        self.violation_month = violation_month

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        n = ctx.ent.n_max
        ctx.board["serious_penalty_now"] = ctx.alive.copy() if ctx.t == self.penalty_month else np.zeros(n, bool)
        ctx.board["major_tax_violation_active"] = np.full(n, ctx.t >= self.violation_month)


def test_suspension_after_serious_penalty_and_revocation_after_tax_violation():
    pen, vio = 2018 * 12 + 2, 2019 * 12 + 5
    module = LicencesModule()
    _sim, sink = run_small_world([Stub(pen, vio), module], enterprises=3000, start="2018-01", end="2019-12", seed=5)
    ol = sink.frame("oil_trade_license")
    avail_month = date_to_month(ol["_available_date"].to_numpy().astype("datetime64[D]") - np.timedelta64(7, "D"))
    suspended = ol[(ol["status"] == "suspended") & (avail_month <= pen) & (ol["_available_date"]
                                                                             >= pd.Timestamp("2018-03-01"))]
    before = ol[ol["_available_date"] < pd.Timestamp("2018-03-01")].drop_duplicates(LIC_KEY, keep="last")
    valid_before = (before["status"] == "valid").sum()
    assert valid_before >= 15
    assert len(suspended) / valid_before == pytest.approx(0.5, abs=0.2)
    # suspended licences return to valid after 3-12 months, unless revoked first
    back = ol[(ol["status"] == "valid") & ol.set_index(LIC_KEY).index.isin(suspended.set_index(LIC_KEY).index)
              & (ol["_available_date"] > pd.Timestamp("2018-06-01"))]
    assert len(back) > 0
    revoked = ol[ol["status"] == "revoked"]
    assert len(revoked) > 10
    held_then = before.set_index(LIC_KEY).index
    assert date_to_month(revoked["_available_date"].to_numpy().astype("datetime64[D]")
                         - np.timedelta64(7, "D")).min() >= vio - 1
    last = ol.sort_values("_available_date", kind="stable").drop_duplicates(LIC_KEY, keep="last")
    assert (last.loc[last.set_index(LIC_KEY).index.isin(held_then), "status"] != "valid").all()


def test_renewal_follows_h_at_expiry(world):
    """Licences renew at expiry while h > -1.5, else lapse (expired, dated on the expiry day)."""
    _, ol, _, probe = world
    g = ol.sort_values("_available_date", kind="stable").reset_index(drop=True)
    prev_exp = g.groupby(LIC_KEY)["expiry_date"].shift()
    prev_status = g.groupby(LIC_KEY)["status"].shift()
    renewed = g[g["expiry_date"] > prev_exp]
    assert len(renewed) >= 3
    for ent, old in zip(renewed["_ent"], prev_exp[renewed.index], strict=True):
        m = int(date_to_month(np.datetime64(old.date(), "D")))
        if m in probe.h:
            assert probe.h[m][ent] > -1.5
    lapsed = g[(g["status"] == "expired") & (prev_status != "expired") & prev_status.notna()]
    for ent, exp in zip(lapsed["_ent"], lapsed["expiry_date"], strict=True):
        m = int(date_to_month(np.datetime64(exp.date(), "D")))
        if m in probe.alive and probe.alive[m][ent] and m < END:
            assert probe.h[m][ent] <= -1.5 or not probe.alive.get(m + 1, probe.alive[m])[ent]


def test_deterministic_for_a_seed():
    frames = []
    for _ in range(2):
        _, sink = run_small_world([LicencesModule()], enterprises=500, start="2017-01", end="2018-06", seed=3)
        frames.append((sink.frame("oil_trade_license"), sink.frame("safety_production")))
    for a, b in zip(frames[0], frames[1], strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert len(frames[0][1]) > 50
