"""S25 real property, S26 IP, S27 movable collateral, S31 vessels (simulation.md §7.9, §7.11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month, month_end
from data.simulate.harness import run_small_world
from data.simulate.observe.assets import AssetsModule, vessel_value_estimate
from kernel.catalog import load_catalog

PROBE_MONTH = 2020 * 12 + 5          # 2020-06
AS_OF = month_end(PROBE_MONTH)[()]
SUB_ITEMS = ("real_property_rights", "ip_assets", "movable_collateral_registry", "vessels")


class Probe:
    """Steps after the assets module: keeps the alive/performing masks and board keys at the probe month."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.seen: dict[str, np.ndarray] = {}
        self.last: dict[str, object] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        if ctx.t == PROBE_MONTH:
            self.seen = {"alive": ctx.alive.copy(), "performing": ctx.latent.performing.copy(),
                         **{k: ctx.board[k].copy() for k in ("property_value", "free_property_value",
                                                               "sea_area_value", "vessel_value",
                                                               "vessel_value_est")}}
        self.last = {"t": ctx.t, "vessel_value": ctx.board["vessel_value"].copy(),
                     "shipping_f": float(ctx.latent.sector_f[ctx.params.sector_id("shipping_port_logistics")])}


class Litigation:
    """Stands in for the courts module: a pending case from default until 9 months after it."""

    name = "litigation_stub"
    sub_items: tuple[str, ...] = ()

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        k = ctx.months_since_default
        ctx.board["in_litigation"] = (k >= 0) & (k < 9)


def frames(sink) -> dict[str, pd.DataFrame]:
    """Rows per sub-item with _ent, _available_date, _valid_from and _cause, in emission order."""
    out: dict[str, list[pd.DataFrame]] = {c: [] for c in SUB_ITEMS}
    for b in sink.batches:
        if b.sub_item.code in out:
            f = b.frame.copy()
            f["_ent"], f["_available_date"], f["_valid_from"], f["_cause"] = b.ent, b.available, b.valid_from, b.cause
            out[b.sub_item.code].append(f)
    return {c: pd.concat(v, ignore_index=True) for c, v in out.items()}


def latest(f: pd.DataFrame, key: list[str], as_of: np.datetime64 = AS_OF) -> pd.DataFrame:
    g = f[f["_available_date"] <= as_of].sort_values("_available_date", kind="stable")
    return g.groupby(key).tail(1)


@pytest.fixture(scope="module")
def world():
    probe = Probe()
    sim, sink = run_small_world([AssetsModule(), probe], enterprises=2000, start="2018-01", end="2021-12", seed=11)
    return sim, frames(sink), probe


def test_fields_follow_the_catalog(world):
    _, fr, _ = world
    cat = load_catalog()
    for code in SUB_ITEMS:
        f, spec = fr[code], cat.sub_item(code)
        assert len(f) > 100, code
        assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names)
        for fs in spec.fields:
            col = f[fs.name]
            if fs.dtype == "category":
                assert set(col.dropna().unique()) <= set(fs.allowed), (code, fs.name)
            elif fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), (code, fs.name)
            elif fs.dtype in ("int", "float"):
                assert pd.api.types.is_numeric_dtype(col), (code, fs.name)
                if fs.min is not None:
                    assert (col.dropna() >= fs.min).all(), (code, fs.name)
            elif fs.dtype == "bool":
                assert pd.api.types.is_bool_dtype(col), (code, fs.name)
        assert f["uscc"].str.len().eq(18).all()
        assert f["_available_date"].notna().all()
    # availability = business date + the catalog lag (first rows of events after the 2015-01 load)
    for code, anchor in (("real_property_rights", "acquisition_date"), ("movable_collateral_registry",
                                                                        "registration_date")):
        f = fr[code]
        first = f[~f.duplicated(f.columns[1], keep="first") & (f[anchor] >= np.datetime64("2015-01-01"))]
        lo, hi = cat.sub_item(code).lag_days
        assert (first["_available_date"] - first[anchor]).dt.days.between(lo, hi).all(), code
    # list and snapshot rows carry business validity dates; the event list does not
    for code in ("real_property_rights", "ip_assets", "vessels"):
        assert fr[code]["_valid_from"].notna().all(), code


def test_property_coverage_and_attributes(world):
    sim, fr, probe = world
    alive = probe.seen["alive"]
    rights = latest(fr["real_property_rights"], ["uscc", "right_id"])
    holds = np.zeros(sim.ent.n_max, dtype=bool)
    holds[rights["_ent"].to_numpy()] = True
    share = (holds & alive).sum() / alive.sum()
    assert 0.22 < share < 0.34                                   # catalog: 28% hold >= 1 right
    names = np.array(sim.params.sector_names)[sim.ent.sector]
    by = lambda s: (holds & alive & (names == s)).sum() / (alive & (names == s)).sum()  # noqa: E731
    assert by("manufacturing_other") > 2 * by("wholesale_retail_other")
    assert rights.groupby("uscc").size().max() <= 3
    types = rights["right_type"].value_counts(normalize=True)
    assert 0.05 < types["sea_area_use"] < 0.15
    assert 0.35 < types["state_land_use"] < 0.55
    sea = rights[rights["right_type"] == "sea_area_use"]
    assert set(sea["land_use_purpose"]) <= {"aquaculture_sea", "port_wharf"}
    assert 0.45 < rights["mortgage_registered"].mean() < 0.68    # catalog 55%
    m = rights[rights["mortgage_registered"]]
    assert (m["mortgage_amount"] <= 0.7 * m["assessed_value"] + 0.02).all()
    assert (rights.loc[~rights["mortgage_registered"], "mortgage_amount"] == 0).all()
    term = (rights["expiry_date"] - rights["acquisition_date"]).dt.days / 365.25
    assert term.between(14.9, 70.1).all()
    land = rights[(rights["right_type"] == "state_land_use") & (rights["land_use_purpose"] == "industrial")]
    assert 450 < np.median(land["assessed_value"] * 1e4 / land["area_m2"]) < 900


def test_assessed_values_follow_the_price_index(world):
    """Versions of one right differ in value only by the index: +3%/year to 2021, -2%/year after."""
    _, fr, _ = world
    f = fr["real_property_rights"].copy()
    f["m"] = date_to_month(f["_valid_from"].to_numpy()).clip(min=2015 * 12)   # the 2015-01 load is valued then
    both = f.groupby("right_id").filter(lambda g: len(g) >= 2)
    assert len(both) > 20
    for _, g in list(both.groupby("right_id"))[:40]:
        a, b = g.iloc[0], g.iloc[-1]

        if a["assessed_value"] > 50:
            assert b["assessed_value"] / a["assessed_value"] == pytest.approx(_index(b["m"]) / _index(a["m"]), rel=2e-3)


def test_seizure_cascade_follows_default(world):
    sim, fr, _ = world
    st = sim.latent.state
    f = fr["real_property_rights"]
    seized = f[f["seizure_flag"] & (f["_cause"] == "cascade")]
    first = seized.groupby("_ent")["_valid_from"].min()
    slots = first.index.to_numpy()
    single = st.tau[slots] == st.last_default[slots]
    lag = date_to_month(first.to_numpy()) - st.tau[slots]
    assert single.sum() >= 10
    assert ((lag[single] >= 1) & (lag[single] <= 6)).all()           # U{1..6} months after tau
    # about half of the defaulted holders get a cascade seizure (pi = 0.5)
    holders = np.unique(f["_ent"])
    d = holders[(st.tau[holders] >= sim.params.t_events) & (st.tau[holders] <= sim.params.t_end - 6)]
    prior_stress = f[f["seizure_flag"] & (f["_cause"] == "stress")].groupby("_ent")["_valid_from"].min()
    before = np.isin(d, prior_stress.index) & (
        date_to_month(prior_stress.reindex(d).to_numpy()) <= st.tau[d])
    d = d[~before]
    assert d.size >= 30
    share = np.isin(d, slots).mean()
    assert 0.3 < share < 0.7


def test_seizures_are_versioned_and_cleared(world):
    _sim, fr, probe = world
    f = fr["real_property_rights"]
    assert f.duplicated(["right_id", "seizure_flag", "_valid_from"]).sum() == 0
    cleared = f[~f["seizure_flag"] & f["_cause"].isin(["cascade", "stress"])]
    assert len(cleared) > 5                                          # seizures are lifted again
    for rid, when in cleared.groupby("right_id")["_valid_from"].min().items():
        g = f[f["right_id"] == rid]
        assert g.loc[g["_valid_from"] < when, "seizure_flag"].iloc[-1]   # a clearance follows a seizure
    rights = latest(f, ["uscc", "right_id"])
    alive = probe.seen["alive"][rights["_ent"].to_numpy()]
    performing = probe.seen["performing"][rights["_ent"].to_numpy()]
    assert rights.loc[alive & performing, "seizure_flag"].mean() < 0.02   # catalog ~0.8% of rights


def _index(m: int) -> float:
    y = m / 12
    return 1.03 ** (min(y, 2022) - 2018) * 0.98 ** max(0.0, y - 2022)


def test_property_value_board_matches_unseized_rights(world):
    sim, fr, probe = world
    pv = probe.seen["property_value"]
    assert pv.shape == (sim.ent.n_max,)
    assert (pv[~sim.ent.has_property] == 0).all()
    f = fr["real_property_rights"].copy()
    f = f[f["_valid_from"] <= AS_OF].sort_values("_valid_from", kind="stable").groupby("right_id").tail(1)
    f = f[~f["seizure_flag"]]
    month = date_to_month(f["_valid_from"].to_numpy()).clip(min=2015 * 12)
    now = f["assessed_value"].to_numpy() * _index(PROBE_MONTH) / np.array([_index(m) for m in month])
    total = pd.Series(now).groupby(f["_ent"].to_numpy()).sum()
    # rebuilt from delivered versions; a right whose latest version straddles the probe month can differ,
    # so nearly all (not all) firms must match
    close = np.isclose(pv[total.index.to_numpy()], total.to_numpy(), rtol=2e-3)
    assert close.mean() >= 0.995
    # collateral capacity net of mortgages, split into buildings/land and sea areas
    free, sea = probe.seen["free_property_value"], probe.seen["sea_area_value"]
    assert (free + sea <= pv + 1e-6).all()
    assert ((free + sea) < pv - 1e-6).any() and (sea > 0).any()
    assert (probe.seen["vessel_value_est"] <= probe.seen["vessel_value"] + 1e-6).all()


def test_seizures_clear_when_litigation_ends():
    """With the courts' in_litigation on the board, a seizure lifts after the case ends (min hold 6)."""
    sim, sink = run_small_world([Litigation(), AssetsModule()], enterprises=1500, start="2018-01", end="2020-12",
                                seed=5)
    f = frames(sink)["real_property_rights"]
    st = sim.latent.state
    seized = f[f["seizure_flag"] & (f["_cause"] == "cascade")].groupby("right_id")["_valid_from"].min()
    clear = f[~f["seizure_flag"] & (f["_cause"] == "cascade")].groupby("right_id")["_valid_from"].min()
    both = seized.index.intersection(clear.index)
    assert len(both) >= 5
    held = date_to_month(clear[both].to_numpy()) - date_to_month(seized[both].to_numpy())
    assert (held >= 6).all()
    slot = f.drop_duplicates("right_id").set_index("right_id").loc[both, "_ent"].to_numpy()
    # the stub's case ends 9 months after default: no clearance while it is pending
    single = st.tau[slot] == st.last_default[slot]
    assert (date_to_month(clear[both].to_numpy())[single] - st.tau[slot][single] >= 9).all()


def test_ip_snapshot(world):
    sim, fr, probe = world
    f = fr["ip_assets"]
    alive = probe.seen["alive"]
    snap = latest(f, ["uscc"])
    covered = np.zeros(sim.ent.n_max, dtype=bool)
    covered[snap["_ent"].to_numpy()] = True
    assert (covered & alive).sum() / alive.sum() > 0.97          # coverage 100% of alive firms
    snap = snap[alive[snap["_ent"].to_numpy()]]
    # zero shares implied by §7.9's draws (catalog: 92 / 87 / 96 / 70 / 95 / 94 / 99 %)
    assert 0.8 < (snap["invention_patents_granted"] == 0).mean() < 0.93
    assert 0.72 < (snap["utility_model_patents"] == 0).mean() < 0.9
    assert 0.93 < (snap["design_patents"] == 0).mean() < 0.99
    assert 0.55 < (snap["trademarks_registered"] == 0).mean() < 0.75
    assert 0.9 < (snap["software_copyrights"] == 0).mean() < 0.98
    assert 0.85 < (snap["patent_applications_12m"] == 0).mean() < 0.97
    assert (snap["ip_pledge_count"] == 0).mean() > 0.98
    assert ((snap["ip_pledge_count"] > 0) == (snap["ip_pledge_amount"] > 0)).all()
    # versions only on change: consecutive rows of a firm differ in at least one count
    fields = list(load_catalog().sub_item("ip_assets").field_names)[1:]
    g = f.sort_values(["uscc", "_valid_from"], kind="stable")
    same_firm = g["uscc"].eq(g["uscc"].shift())
    unchanged = (g[fields] == g[fields].shift()).all(axis=1)
    assert not (same_firm & unchanged).any()
    # snapshots start at the first series month (2017-01)
    assert f["_valid_from"].min() == np.datetime64("2017-01-01")
    # granted counts grow through the firm's own applications
    inv = f.groupby("uscc")["invention_patents_granted"].agg(["first", "max"])
    assert (inv["max"] > inv["first"]).sum() > 10


def test_movable_collateral_registry(world):
    sim, fr, probe = world
    f = fr["movable_collateral_registry"]
    alive = probe.seen["alive"]
    regs = latest(f, ["uscc", "registration_id"])
    active = regs[regs["status"].isin(["active", "amended"])]
    has = np.zeros(sim.ent.n_max, dtype=bool)
    has[active["_ent"].to_numpy()] = True
    assert 0.05 < (has & alive).sum() / alive.sum() < 0.13       # catalog ~9%
    oil = np.array(sim.params.sector_names)[sim.ent.sector] == "oil_trading_bunkering"
    assert 0.2 < (has & alive & oil).sum() / (alive & oil).sum() < 0.45   # oil traders ~30%
    first = f.drop_duplicates("registration_id")
    assert first["registration_date"].min() >= np.datetime64("2014-01-01")
    assert np.median(first["secured_amount"]) == pytest.approx(250, rel=0.5)
    # every update reuses the key with a later status; a cancellation comes 6-24 months after registration
    upd = f[f.duplicated("registration_id", keep="first")]
    assert set(upd["status"]) <= {"amended", "cancelled", "expired"}
    assert len(upd) > 50
    c = f[f["status"] == "cancelled"]
    months = date_to_month(c["_available_date"].to_numpy()) - date_to_month(c["registration_date"].to_numpy())
    assert ((months >= 6) & (months <= 25)).all()
    assert f.groupby("registration_id")["status"].apply(lambda s: (s != "active").sum() <= 2).all()
    # leases name a leasing company; stressed registrants turn to factoring and enterprises
    assert (first.loc[first["registration_type"] == "financial_lease", "secured_party_type"] == "financial_leasing").all()
    bank = first.groupby(first["_cause"] == "stress")["secured_party_type"].apply(lambda s: (s == "bank").mean())
    assert bank[True] < bank[False]
    # defaulted firms do not cancel their registrations (they stay active until they expire)
    st = sim.latent.state
    slot = c["_ent"].to_numpy()
    event_month_min = date_to_month(c["_available_date"].to_numpy()) - 1
    assert not (st.dormant[slot] & (event_month_min >= st.last_default[slot])).any()


def test_vessels(world):
    sim, fr, probe = world
    f = fr["vessels"]
    alive = probe.seen["alive"]
    fleet = latest(f, ["uscc", "vessel_id"])
    has = np.zeros(sim.ent.n_max, dtype=bool)
    has[fleet["_ent"].to_numpy()] = True
    assert 0.08 < (has & alive).sum() / alive.sum() < 0.17        # catalog ~12%
    carrier = np.char.startswith(sim.ent.industry_code.astype(str), "G552")
    assert (has & alive & carrier).sum() / (alive & carrier).sum() > 0.85
    names = np.array(sim.params.sector_names)[sim.ent.sector]
    assert (has & alive & (names == "marine_fishery")).sum() / (alive & (names == "marine_fishery")).sum() > 0.78
    assert (has & (names == "wholesale_retail_other")).sum() == 0
    types = fleet["vessel_type"].value_counts(normalize=True)
    assert 0.35 < types["fishing_vessel"] < 0.6
    fish = fleet[fleet["vessel_type"] == "fishing_vessel"]
    assert 150 < fish["gross_tonnage"].median() < 600
    assert fleet["build_year"].between(1985, 2022).all()
    merchant = fleet[fleet["vessel_type"] != "fishing_vessel"]
    assert 0.28 < merchant["vessel_mortgage_registered"].mean() < 0.52
    assert (fleet.loc[~fleet["vessel_mortgage_registered"], "vessel_mortgage_amount"] == 0).all()
    assert (fleet["psc_detentions_24m"] == 0).mean() > 0.82
    assert 0.75 < (fleet["maritime_penalties_24m"] == 0).mean() < 0.97
    # a version is emitted whenever a counter changes, and only then
    g = f.sort_values(["vessel_id", "_available_date"], kind="stable")
    same = g["vessel_id"].eq(g["vessel_id"].shift())
    counters = ["psc_detentions_24m", "maritime_penalties_24m"]
    changed = (g[counters] != g[counters].shift()).any(axis=1)
    assert (same & changed).sum() > 50
    assert not (same & ~changed & (g["_valid_from"] >= np.datetime64("2015-02-01"))).any()
    step = (g[counters] - g[counters].shift()).abs().max(axis=1)
    assert (step[same] <= 2).all()
    # counters are rolling 24-month windows: a penalty drops out 24 months later
    assert (g.loc[same, "maritime_penalties_24m"] < g["maritime_penalties_24m"].shift()[same]).any()


def test_vessel_value_model_and_board(world):
    v = vessel_value_estimate(np.array(["oil_tanker", "fishing_vessel", "bulk_carrier"]),
                              np.array([3000.0, 300.0, 10000.0]), np.array([2010, 2010, 1990]), 2020.0,
                              shipping_factor=1.0)
    assert v[0] == pytest.approx(3000 * 1.0 * (1 - 0.45) * np.exp(0.3))
    assert v[1] == pytest.approx(300 * 2.0 * (1 - 0.45))               # no shipping cycle for fishing vessels
    assert v[2] == pytest.approx(10000 * 0.6 * 0.2 * np.exp(0.3))      # residual floor at 0.2
    _sim, fr, probe = world
    f = fr["vessels"]
    fleet = f.drop_duplicates("vessel_id", keep="last")
    t = probe.last["t"]
    value = vessel_value_estimate(fleet["vessel_type"].to_numpy(), fleet["gross_tonnage"].to_numpy(),
                                  fleet["build_year"].to_numpy(), t // 12 + (t % 12) / 12, probe.last["shipping_f"])
    total = pd.Series(value).groupby(fleet["_ent"].to_numpy()).sum()
    board = probe.last["vessel_value"]
    np.testing.assert_allclose(board[total.index.to_numpy()], total.to_numpy(), rtol=1e-9)
    mort = f.drop_duplicates("vessel_id")
    mort = mort[mort["vessel_mortgage_registered"]]
    assert mort["vessel_mortgage_amount"].gt(0).all()


def test_deterministic_for_a_seed():
    def run(seed: int) -> dict[str, pd.DataFrame]:
        _, sink = run_small_world([AssetsModule()], enterprises=300, start="2016-01", end="2017-06", seed=seed)
        return frames(sink)

    a, b, c = run(3), run(3), run(4)
    for code in SUB_ITEMS:
        pd.testing.assert_frame_equal(a[code], b[code])
    assert not a["real_property_rights"]["right_id"].equals(c["real_property_rights"]["right_id"])
