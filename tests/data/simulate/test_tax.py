"""S09 tax_profile, S10 tax_monthly, S11 tax_announcements (simulation.md §7.4) on seeded small worlds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month, month_index
from data.simulate.harness import run_small_world
from data.simulate.observe.tax import (
    STRESS_CAP,
    RingParams,
    TaxModule,
    TaxParams,
    general_vat_rates,
    small_scale_rule,
)
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog

GRADE_TARGET = {"A": 0.25, "B": 0.50, "M": 0.15, "C": 0.07, "D": 0.03}
BOARD_KEYS = ("sales", "annual_sales_last_year", "total_tax_paid_year", "declared_on_time", "tax_grade",
              "abnormal_taxpayer", "major_tax_violation_active", "tax_arrears_active", "ring_exposed_now")


class Probe:
    """Steps after the tax module: records the latent state and the tax board keys per month."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.alive: dict[int, np.ndarray] = {}
        self.dormant: dict[int, np.ndarray] = {}
        self.stress: dict[int, np.ndarray] = {}
        self.board: dict[int, dict[str, np.ndarray]] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        self.alive[ctx.t] = ctx.alive.copy()
        self.dormant[ctx.t] = ctx.latent.dormant.copy()
        self.stress[ctx.t] = np.minimum(ctx.stress, STRESS_CAP).astype(np.float32)
        self.board[ctx.t] = {k: ctx.board[k].copy() for k in BOARD_KEYS}


def month_of(dates: pd.Series | np.ndarray) -> np.ndarray:
    return date_to_month(np.asarray(dates, dtype="datetime64[D]"))


@pytest.fixture(scope="module")
def world():
    probe = Probe()
    module = TaxModule()
    sim, sink = run_small_world([module, probe], enterprises=1500, start="2018-01", end="2020-12", seed=3,
                                calibrate=True)
    frames = {s: sink.frame(s) for s in module.sub_items}
    return sim, module, probe, frames


@pytest.fixture(scope="module")
def ring_world():
    base = load_module_params(TaxParams, "tax")
    params = base.model_copy(update={"rings": RingParams(exposures_per_year=40, scale_enterprises=50000)})
    probe = Probe()
    module = TaxModule(params=params)
    sim, sink = run_small_world([module, probe], enterprises=2000, start="2018-01", end="2018-12", seed=5)
    return sim, module, probe, sink


# --- schema --------------------------------------------------------------------------------------
def test_fields_follow_the_catalog(world):
    _, _, _, frames = world
    cat = load_catalog()
    for code, f in frames.items():
        spec = cat.sub_item(code)
        assert len(f) > 0, code
        assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names), code
        for fs in spec.fields:
            col = f[fs.name]
            if fs.dtype == "category":
                assert set(col.dropna().unique()) <= set(fs.allowed), (code, fs.name)
            elif fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), (code, fs.name)
            elif fs.dtype == "float":
                assert pd.api.types.is_float_dtype(col), (code, fs.name)
                vals = col.dropna()
                if fs.min is not None:
                    assert (vals >= fs.min).all(), (code, fs.name)
                if fs.max is not None:
                    assert (vals <= fs.max).all(), (code, fs.name)
            elif fs.dtype == "int":
                assert pd.api.types.is_integer_dtype(col), (code, fs.name)
            elif fs.dtype == "bool":
                assert pd.api.types.is_bool_dtype(col), (code, fs.name)
        assert f["uscc"].str.len().eq(18).all()
        assert set(f["_cause"].unique()) <= {"background", "stress", "cascade", "ring"}


def test_board_keys_are_written(world):
    sim, _, probe, _ = world
    t = month_index("2019-06")
    b = probe.board[t]
    alive = probe.alive[t]
    for k in BOARD_KEYS:
        assert len(b[k]) == sim.ent.n_max, k
    assert (b["sales"][~alive] == 0).all()
    assert b["sales"][alive].sum() > 0
    assert b["tax_grade"].dtype == object
    assert set(pd.unique(b["tax_grade"][alive])) - {None} <= set(GRADE_TARGET)
    # year-to-date tax grows within the year and restarts in January
    jan, jun = probe.board[month_index("2019-01")], b
    assert (jun["total_tax_paid_year"][alive] >= jan["total_tax_paid_year"][alive] - 1e-9).all()
    dec = probe.board[month_index("2018-12")]
    assert dec["total_tax_paid_year"].sum() > jan["total_tax_paid_year"].sum()


# --- S10 monthly series --------------------------------------------------------------------------
def test_one_row_per_alive_firm_month_from_birth(world):
    sim, _, probe, frames = world
    f = frames["tax_monthly"]
    months = month_of(f["period_month"])
    assert not pd.DataFrame({"e": f["_ent"], "m": months}).duplicated().any()
    assert months.min() == sim.params.t_series
    for t in range(sim.params.t_series, sim.params.t_end + 1):
        got = np.sort(f["_ent"].to_numpy()[months == t])
        assert np.array_equal(got, np.flatnonzero(probe.alive[t])), t
    first = pd.Series(months).groupby(f["_ent"].to_numpy()).min()
    born_late = first.index[sim.ent.birth_month[first.index] > sim.params.t_series]
    assert len(born_late) > 20
    assert (first.loc[born_late].to_numpy() == sim.ent.birth_month[born_late]).all()
    # available about 20 days after the month end
    lag = (f["_available_date"] - (f["period_month"] + pd.offsets.MonthEnd(0))).dt.days
    assert lag.between(15, 25).all()


def test_declarations_and_abandoned_firms(world):
    _, _, probe, frames = world
    f = frames["tax_monthly"]
    null = f["invoices_issued_amount"].isna()
    assert not f.loc[null, "declared_on_time"].any()
    assert not f.loc[null, "zero_declaration"].any()
    assert f.loc[null, ["vat_paid", "total_tax_paid", "late_fee_amount"]].isna().all().all()
    months = month_of(f["period_month"])
    silent = np.array([probe.dormant[t][e] or probe.board[t]["abnormal_taxpayer"][e]
                       for t, e in zip(months[null.to_numpy()], f["_ent"][null], strict=True)])
    assert null.sum() > 0 and silent.all()        # only abandoned (dormant or non-normal) firms stop declaring
    assert 0.90 < f["declared_on_time"].mean() < 0.985
    zero = f["zero_declaration"].to_numpy(dtype=bool)
    assert (f.loc[zero, "invoices_issued_amount"] == 0).all()
    assert 0.04 < zero.mean() < 0.14
    dec = f[~null]
    assert (dec["total_tax_paid"] >= dec["vat_paid"]).all()
    assert (dec.loc[dec["invoices_issued_amount"] == 0, "red_letter_invoice_ratio"] == 0).all()
    assert (dec["late_fee_amount"] > 0).mean() < 0.03


def test_small_scale_files_vat_quarterly(world):
    _, _, _, frames = world
    f = frames["tax_monthly"]
    ttype = frames["tax_profile"].groupby("_ent")["taxpayer_type"].last()
    f = f[f["invoices_issued_amount"].notna()]
    f = f.assign(tt=ttype.reindex(f["_ent"]).to_numpy())
    f = f[f["tt"].notna()]
    qend = f["period_month"].dt.month.isin([3, 6, 9, 12])
    small = f["tt"] == "small_scale"
    assert 0.40 < (ttype == "general_vat").mean() < 0.52
    assert f.loc[small & ~qend, "vat_taxable_sales"].isna().all()
    assert (f.loc[small & ~qend, "vat_paid"] == 0).all()
    assert f.loc[small & qend, "vat_taxable_sales"].notna().all()
    assert f.loc[~small, "vat_taxable_sales"].notna().all()
    # the quarter-end value is the quarter's invoiced total
    s = f[small].assign(q=f["period_month"].dt.to_period("Q"))
    qsum = s.groupby(["_ent", "q"])["invoices_issued_amount"].sum()
    qdecl = s[s["period_month"].dt.month.isin([3, 6, 9, 12])].set_index(["_ent", "q"])["vat_taxable_sales"]
    full = s.groupby(["_ent", "q"]).size() == 3
    idx = qdecl.index[full.reindex(qdecl.index).fillna(False).to_numpy()]
    assert len(idx) > 500
    assert np.allclose(qdecl.loc[idx], qsum.loc[idx], atol=0.05)


def _small_quarters(frames, months: list[str]) -> pd.DataFrame:
    f = frames["tax_monthly"]
    ttype = frames["tax_profile"].groupby("_ent")["taxpayer_type"].last()
    f = f[f["vat_taxable_sales"].notna()]
    f = f[(ttype.reindex(f["_ent"]).to_numpy() == "small_scale")]
    return f[f["period_month"].isin(pd.to_datetime([m + "-01" for m in months]))]


def test_vat_schedule_by_period():
    vat = load_module_params(TaxParams, "tax").vat
    expect = {"2017-06": (0.03, 9.0, False), "2019-06": (0.03, 30.0, False), "2020-06": (0.01, 30.0, False),
              "2021-06": (0.01, 45.0, False), "2022-03": (0.01, 45.0, False), "2022-06": (0.03, 45.0, True),
              "2022-12": (0.03, 45.0, True), "2023-03": (0.01, 30.0, False)}
    for m, rule in expect.items():
        assert small_scale_rule(vat, month_index(m)) == rule, m
    assert np.allclose(general_vat_rates(vat, month_index("2018-04")), [0.17, 0.11, 0.06])
    assert np.allclose(general_vat_rates(vat, month_index("2018-05")), [0.16, 0.10, 0.06])
    assert np.allclose(general_vat_rates(vat, month_index("2019-04")), [0.13, 0.09, 0.06])


def test_vat_rules_by_period(world):
    _, _, _, frames = world
    # small-scale: 3 % above 30 (2019), 1 % relief (2020-03 ..), exempt at or below the threshold
    q19 = _small_quarters(frames, ["2019-03", "2019-06", "2019-09", "2019-12"])
    above = q19["vat_taxable_sales"] > 30
    assert above.sum() > 20 and (~above).sum() > 20
    assert (q19.loc[~above, "vat_paid"] == 0).all()
    assert np.allclose(q19.loc[above, "vat_paid"], (q19.loc[above, "vat_taxable_sales"] * 0.03).round(2), atol=0.011)
    q20 = _small_quarters(frames, ["2020-06", "2020-09", "2020-12"])
    above = q20["vat_taxable_sales"] > 30
    assert np.allclose(q20.loc[above, "vat_paid"], (q20.loc[above, "vat_taxable_sales"] * 0.01).round(2), atol=0.011)
    # general: monthly VAT on value added at the period's rate (17/11 -> 16/10 in 2018-05 -> 13/9 in 2019-04)
    f = frames["tax_monthly"]
    ttype = frames["tax_profile"].groupby("_ent")["taxpayer_type"].last()
    g = f[(ttype.reindex(f["_ent"]).to_numpy() == "general_vat") & f["invoices_issued_amount"].notna()]
    va = g["invoices_issued_amount"] - g["invoices_received_amount"]
    g = g[va > 20]
    rate = (g["vat_paid"] / (g["invoices_issued_amount"] - g["invoices_received_amount"])).round(3)
    by_period = {("2017-01", "2018-04"): {0.17, 0.11, 0.06}, ("2018-05", "2019-03"): {0.16, 0.10, 0.06},
                 ("2019-04", "2020-12"): {0.13, 0.09, 0.06}}
    for (a, b), allowed in by_period.items():
        sel = g["period_month"].between(pd.Timestamp(a + "-01"), pd.Timestamp(b + "-01"))
        assert sel.sum() > 100
        assert set(rate[sel].unique()) <= allowed, (a, b, set(rate[sel].unique()) - allowed)
    # CIT prepayments only in Jan / Apr / Jul / Oct: elsewhere total = 1.12 VAT + 0.2 % of sales
    d = f[f["invoices_issued_amount"].notna() & ~f["period_month"].dt.month.isin([1, 4, 7, 10])]
    other = d["total_tax_paid"] - 1.12 * d["vat_paid"] - 0.002 * d["invoices_issued_amount"]
    assert other.abs().max() < 0.02
    q = f[f["invoices_issued_amount"].notna() & f["period_month"].dt.month.isin([4, 7, 10])]
    cit = q["total_tax_paid"] - 1.12 * q["vat_paid"] - 0.002 * q["invoices_issued_amount"]
    assert (cit > 0.02).mean() > 0.3


# --- S09 profile and grade -----------------------------------------------------------------------
def _published(frames) -> pd.DataFrame:
    p = frames["tax_profile"]
    pub = p[p["tax_credit_grade"].notna()]
    expected = pd.to_datetime((pub["grade_year"] + 1).astype(str) + "-04-30")
    assert (pub["_available_date"] >= expected).all()
    return pub[pub["_available_date"] == expected]


def test_grade_shares_match_the_calibration_targets(world):
    sim, module, _, frames = world
    pub = _published(frames)
    first = pub[pub["grade_year"] == pub["grade_year"].min()]
    assert int(first["grade_year"].iloc[0]) == sim.params.t_first // 12
    shares = first["tax_credit_grade"].value_counts(normalize=True)
    assert abs(shares["A"] - 0.25) < 0.01                # the calibrated intercept
    for g, target in GRADE_TARGET.items():
        assert abs(shares.get(g, 0.0) - target) <= 0.03, (g, shares.get(g, 0.0))
    pooled = pub["tax_credit_grade"].value_counts(normalize=True)
    for g, target in GRADE_TARGET.items():
        assert abs(pooled.get(g, 0.0) - target) <= 0.06, (g, pooled.get(g, 0.0))
    assert module.score_intercept is not None and 80 < module.score_intercept < 95
    # grades agree with the score bands
    sc = pub["tax_credit_score"]
    gr = pub["tax_credit_grade"]
    assert (sc[gr == "A"] >= 90).all() and sc[gr == "B"].between(70, 90, inclusive="left").all()
    assert sc[gr == "C"].between(40, 70, inclusive="left").all() and (sc[gr == "M"] >= 70).all()
    assert 75 < sc.mean() < 88


def test_profile_rows_and_flags(world):
    sim, _, _, frames = world
    p = frames["tax_profile"]
    est = sim.ent.establish_date[p["_ent"].to_numpy()]
    lag = (p["tax_registration_date"].to_numpy().astype("datetime64[D]") - est).astype(int)
    assert lag.min() >= 0 and lag.max() <= 30
    assert (p["_available_date"] >= pd.Timestamp("2015-01-01")).all()
    flagged = p[p["abnormal_taxpayer_flag"].astype(bool)]
    assert len(flagged) > 0
    # firms flagged non-normal in y are graded D for y
    pub = _published(frames)
    flag_year = flagged.groupby("_ent")["_available_date"].min().dt.year
    d = pub.merge(flag_year.rename("fy"), left_on="_ent", right_index=True)
    later = d[d["grade_year"] > d["fy"]]
    assert len(later) > 0 and (later["tax_credit_grade"] == "D").all()
    exp = p["export_rebate_class"]
    assert 0.8 < (exp == "none").mean() < 0.95


# --- S11 announcements ---------------------------------------------------------------------------
def test_arrears_follow_stress_and_default(world):
    sim, _, probe, frames = world
    a = frames["tax_announcements"]
    arr = a[(a["announcement_type"] == "arrears") & a["removal_date"].isna()]
    assert len(arr) > 30
    pub = arr["publish_date"]
    assert pub.dt.month.isin([1, 4, 7, 10]).all() and (pub.dt.day <= 10).all() and (pub.dt.dayofweek < 5).all()
    assert arr["violation_type"].isna().all() and arr["violation_amount"].isna().all()
    assert (arr["new_arrears_amount"] <= arr["arrears_balance"]).all()
    assert 5 < arr["arrears_balance"].median() < 40
    # stress (capped as in the module): firms announced carry far more stress in the preceding quarter than the population
    months = month_of(pub)
    ann_st = np.array([probe.stress[t - 3][e] for t, e in zip(months, arr["_ent"], strict=True)])
    pop_st = np.mean([probe.stress[t][probe.alive[t]].mean() for t in range(months.min() - 3, months.max() - 2)])
    assert ann_st.mean() > 2 * pop_st
    # cascade: announced after the default, at the next quarter start after tau + Gamma(2, 3)
    tau = sim.latent.state.tau
    casc = arr[arr["_cause"] == "cascade"]
    assert len(casc) > 0
    assert (month_of(casc["publish_date"]) > tau[casc["_ent"].to_numpy()]).all()
    t0, t1 = sim.params.t_events, sim.params.t_end - 24
    defaulted = np.flatnonzero((tau >= t0) & (tau <= t1))
    ent_m = pd.DataFrame({"e": arr["_ent"].to_numpy(), "m": months})
    hit = ent_m.merge(pd.DataFrame({"e": defaulted, "tau": tau[defaulted]}), on="e")
    hit = hit[(hit["m"] > hit["tau"]) & (hit["m"] <= hit["tau"] + 24)]["e"].nunique()
    assert len(defaulted) > 20 and hit / len(defaulted) > 0.3
    # removals: a second row with the same key and removal_date set, available at removal
    rem = a[a["removal_date"].notna()]
    assert len(rem) > 0
    key = ["uscc", "announcement_type", "publish_date"]
    assert rem.set_index(key).index.isin(a[a["removal_date"].isna()].set_index(key).index).all()
    assert (rem["removal_date"] > rem["publish_date"]).all()
    assert (rem["_available_date"] >= rem["removal_date"]).all()


def test_ring_exposure_flags_every_member(ring_world):
    sim, _, probe, sink = ring_world
    exp = sink.table("truth", "ring_exposures")
    assert set(exp.columns) >= {"ring_id", "month", "slot", "uscc"}
    t_ev, t_end = sim.params.t_events, sim.params.t_end
    exp = exp[(exp["month"] >= t_ev) & (exp["month"] <= t_end - 2)]
    assert exp["ring_id"].nunique() >= 2
    assert (sim.net.ring_id[exp["slot"]] == exp["ring_id"]).all()
    for ring, members in exp.groupby("ring_id"):
        t = int(members["month"].iloc[0])
        expected = np.flatnonzero((sim.net.ring_id == ring) & probe.alive[t])
        assert np.array_equal(np.sort(members["slot"].to_numpy()), expected)
        assert probe.board[t]["ring_exposed_now"][expected].all()
        assert probe.board[t]["abnormal_taxpayer"][expected].all()
    a = sink.frame("tax_announcements")
    viol = a[(a["announcement_type"] == "major_violation") & a["removal_date"].isna() & (a["_cause"] == "ring")]
    got = viol.groupby("_ent")["publish_date"].min()
    for slot, t in zip(exp["slot"], exp["month"], strict=True):
        assert slot in got.index
        assert 0 <= month_of(np.array([got[slot]]))[0] - t <= 2
    assert (viol["violation_type"] == "false_invoicing").all() and (viol["tax_type"] == "vat").all()
    # one publish date per ring
    assert (viol.assign(r=sim.net.ring_id[viol["_ent"]]).groupby("r")["publish_date"].nunique() == 1).all()
    prof = sink.frame("tax_profile")
    flagged = prof[prof["abnormal_taxpayer_flag"].astype(bool) & (prof["_cause"] == "ring")]
    assert set(exp["slot"]) <= set(flagged["_ent"])
    # exposed shells stop declaring
    tm = sink.frame("tax_monthly")
    after = tm.merge(exp[["slot", "month"]], left_on="_ent", right_on="slot")
    after = after[month_of(after["period_month"]) > after["month"]]
    assert len(after) > 0 and after["invoices_issued_amount"].isna().all()
    assert (~after["declared_on_time"].astype(bool)).all()


def test_deterministic_for_a_seed():
    def run() -> dict[str, pd.DataFrame]:
        module = TaxModule()
        _, sink = run_small_world([module], enterprises=300, start="2018-01", end="2018-06", seed=3)
        return {s: sink.frame(s) for s in module.sub_items}

    a, b = run(), run()
    for code in a:
        pd.testing.assert_frame_equal(a[code], b[code])
