"""The 49-indicator mart: normalisation methods, aggregation, configuration, point-in-time SQL, and the
mart on the small simulated world."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from data.marts import indicators as ind_mod
from data.marts.grid import connect_warehouse, month_ends, registered_grid
from data.marts.indicator_config import (
    IndicatorConfig,
    PercentileForm,
    indicator_config_path,
    load_indicator_config,
)
from data.marts.indicators import (
    SCORERS,
    NormParams,
    aggregate_available,
    build_indicator_mart,
    cap_cci,
    cdf_from_quantiles,
    decay_factor,
    fit_quantile_reference,
    fit_reference,
    indicator_features,
    indicator_health,
    load_norm_params,
    raw_inputs,
    rescaled_weights,
    save_norm_params,
    score_ded,
    score_exp,
    score_lin,
    score_pct,
    score_pw,
    univariate_auc,
)
from kernel.catalog import load_catalog
from kernel.config import load_yaml_model
from kernel.errors import ConfigError, ZhouxinError

CFG = load_indicator_config()

# --------------------------------------------------------------------------------------------- PW


def test_pw_interpolates_between_knots_and_hits_knots() -> None:
    knots = CFG.indicator("A1.1").knots  # (0,45) (1,55) (3,70) (5,80) (10,92) (20,100)
    got = score_pw(np.array([0.0, 0.5, 2.0, 3.0, 7.5, 15.0]), knots)
    np.testing.assert_allclose(got, [45, 50, 62.5, 70, 86, 96])


def test_pw_is_constant_outside_the_knots_and_keeps_nan() -> None:
    knots = ((-0.8, 10), (-0.5, 30), (-0.2, 60), (0, 75), (0.2, 90), (1, 95), (3, 80))
    got = score_pw(np.array([-5.0, -0.8, 3.0, 100.0, np.nan]), knots)
    np.testing.assert_allclose(got[:4], [10, 10, 80, 80])
    assert np.isnan(got[4])


# ---------------------------------------------------------------------------------------- PCT


def test_cdf_interpolates_linearly_between_quantiles() -> None:
    q = [0.0, 1.0, 2.0, 4.0, 8.0]            # n = 4 -> each step is 0.25
    got = cdf_from_quantiles(np.array([0.5, 3.0, 6.0]), q)
    np.testing.assert_allclose(got, [0.125, 0.625, 0.875])


def test_cdf_is_zero_below_and_one_above_the_reference() -> None:
    got = cdf_from_quantiles(np.array([-1.0, 9.0, np.nan]), [0.0, 1.0, 2.0, 4.0, 8.0])
    assert got[0] == 0.0 and got[1] == 1.0 and np.isnan(got[2])


def test_cdf_takes_the_midpoint_of_tied_quantiles() -> None:
    q = [0.0, 0.0, 0.0, 1.0, 2.0]            # q_0 = q_1 = q_2 = 0: F(0) = (0 + 2) / 2 / 4
    assert cdf_from_quantiles(np.array([0.0]), q)[0] == pytest.approx(0.25)
    q = [0.0, 1.0, 3.0, 3.0, 3.0, 3.0, 4.0]  # q_2..q_5 = 3: F(3) = 3.5 / 6
    assert cdf_from_quantiles(np.array([3.0]), q)[0] == pytest.approx(3.5 / 6)


def test_pct_uses_the_efficacy_coefficient_form_and_reverses() -> None:
    q = list(np.linspace(0, 100, 101))
    x = np.array([0.0, 25.0, 100.0])
    np.testing.assert_allclose(score_pct(x, q, PercentileForm()), [60, 70, 100])
    np.testing.assert_allclose(score_pct(x, q, PercentileForm(reversed=True)), [100, 90, 60])
    np.testing.assert_allclose(score_pct(x, q, PercentileForm(base=75, span=25)), [75, 81.25, 100])


def test_reference_is_winsorised_at_p1_p99() -> None:
    x = np.r_[np.arange(1000.0), 1e9]        # one wild value (a unit error) must not stretch the CDF
    ref = fit_quantile_reference(x, 0.01, 0.99, 101)
    assert ref is not None and len(ref.quantiles) == 101
    assert ref.winsor[1] < 1000 and ref.quantiles[-1] == pytest.approx(ref.winsor[1])
    assert ref.quantiles[0] == pytest.approx(ref.winsor[0]) and ref.n == 1001
    assert fit_quantile_reference(np.array([np.nan]), 0.01, 0.99, 101) is None


# ------------------------------------------------------------------------------------ DED / EXP / LIN


def test_ded_subtracts_and_floors_at_zero() -> None:
    a13 = CFG.indicator("A1.3")
    one_of_each = score_ded(a13.param("legal_rep") * np.array([1.0]), a13.param("shareholder") * np.array([1.0]))
    assert one_of_each[0] == 75.0
    np.testing.assert_array_equal(score_ded(np.array([60.0, 200.0]), np.array([50.0, 0.0])), [0.0, 0.0])


def test_exp_decays_by_half_lives() -> None:
    assert decay_factor(np.array([365.0]), 365)[0] == pytest.approx(0.5)
    assert decay_factor(np.array([730.0]), 365)[0] == pytest.approx(0.25)
    assert decay_factor(np.array([500.0]), None)[0] == 1.0
    e32 = CFG.indicator("E3.2")           # fresh debt-default article, severity 1: S = 2
    assert e32.exp is not None
    assert score_exp(np.array([2.0]), e32.exp.k)[0] == pytest.approx(100 * math.exp(-1.2))
    # the same article 60 days old (two half-lives) weighs a quarter
    s = 2 * decay_factor(np.array([60.0]), e32.exp.half_life_days)
    assert score_exp(s, e32.exp.k)[0] == pytest.approx(100 * math.exp(-0.3))
    assert score_exp(np.array([0.0]), 0.25)[0] == 100.0


def test_lin_clips() -> None:
    d43 = CFG.indicator("D4.3")           # clip((score - 400) / 5, 0, 100)
    got = score_lin(np.array([300.0, 650.0, 950.0]), d43.param("intercept"), d43.param("slope"))
    np.testing.assert_allclose(got, [0, 50, 100])


# ---------------------------------------------------------------------------- aggregation and caps


def test_worked_example_b_weights_without_production_activity() -> None:
    b = next(m for m in CFG.level1 if m.code == "B")
    w = rescaled_weights([j.weight for j in b.level2], np.array([[True, False, True, True]]))[0]
    np.testing.assert_allclose(w, [0.40, 0.0, 0.25 / 0.75, 0.20 / 0.75])
    assert w[2] == pytest.approx(0.333, abs=1e-3) and w[3] == pytest.approx(0.267, abs=1e-3)


def test_aggregate_rescales_over_available_scores() -> None:
    scores = np.array([[80.0, np.nan, 60.0], [np.nan, np.nan, np.nan]])
    got = aggregate_available(scores, [0.5, 0.3, 0.2])
    assert got[0] == pytest.approx((0.5 * 80 + 0.2 * 60) / 0.7)
    assert np.isnan(got[1])


def test_caps_bind_only_below_the_raw_index() -> None:
    got = cap_cci(np.array([90.04, 40.0, 88.86]), np.array([45.0, 55.0, 100.0]))
    np.testing.assert_array_equal(got, [45.0, 40.0, 88.9])


def test_lowest_applicable_cap_wins() -> None:
    frame = pd.DataFrame({
        "ent_status": ["revoked", "active", "active", "active", "active"],
        "dishonest_active": [1, 1, 0, 0, 0], "restriction_active": [1, 1, 1, 0, 0],
        "msa_serious": [False] * 5, "tax_major_active": [False] * 5, "cap_no_assets": [False] * 5,
        "tax_grade": ["A", "B", "B", "D", "A"], "abnormal_taxpayer": [False] * 5,
        "msa_unreachable": [True, False, True, True, False]})
    np.testing.assert_array_equal(ind_mod._caps(frame, CFG), [20, 45, 55, 55, 100])


def test_tiers_follow_the_cut_offs() -> None:
    got = ind_mod._tiers(np.array([85.0, 84.9, 70.0, 60.0, 59.9, np.nan]), CFG)
    assert list(got) == ["excellent", "good", "good", "medium", "poor", None]


# -------------------------------------------------------------------------------- property tests


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=8, unique=True),
       st.lists(st.floats(0, 100), min_size=8, max_size=8),
       st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=20))
def test_pw_scores_stay_in_range_and_are_monotone_for_monotone_knots(xs, ss, x) -> None:
    xs = sorted(xs)
    knots = list(zip(xs, sorted(ss[: len(xs)]), strict=True))
    vals = np.sort(np.array(x))
    got = score_pw(vals, knots)
    assert np.all((got >= 0) & (got <= 100))
    assert np.all(np.diff(got) >= -1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=101),
       st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=20), st.booleans())
def test_pct_scores_stay_in_range_and_follow_x(qs, x, reversed_) -> None:
    q = np.sort(np.array(qs))
    vals = np.sort(np.array(x))
    got = score_pct(vals, q, PercentileForm(reversed=reversed_))
    assert np.all((got >= 60 - 1e-9) & (got <= 100 + 1e-9))
    steps = np.diff(got)
    assert np.all(steps <= 1e-9) if reversed_ else np.all(steps >= -1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=6), st.floats(0.01, 5))
def test_ded_and_exp_scores_stay_in_range(deductions, k) -> None:
    d = np.array(deductions)
    assert 0 <= score_ded(*[np.array([v]) for v in d])[0] <= 100
    got = score_exp(d, k)
    assert np.all((got >= 0) & (got <= 100))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 1), min_size=1, max_size=6).flatmap(
    lambda w: st.tuples(st.just(w), st.lists(st.lists(st.booleans(), min_size=len(w), max_size=len(w)),
                                             min_size=1, max_size=10))))
def test_rescaled_weights_sum_to_one_where_anything_is_available(case) -> None:
    weights, avail = case
    a = np.array(avail)
    w = rescaled_weights(weights, a)
    sums = w.sum(axis=1)
    np.testing.assert_allclose(sums[a.any(axis=1)], 1.0)
    assert np.all(w[~a] == 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.one_of(st.just(float("nan")), st.floats(0, 100)), min_size=3, max_size=3),
                min_size=1, max_size=10))
def test_aggregated_index_stays_within_its_scores(rows) -> None:
    s = np.array(rows)
    got = aggregate_available(s, [0.5, 0.3, 0.2])
    for r, g in zip(s, got, strict=True):
        if np.isnan(r).all():
            assert np.isnan(g)
        else:
            assert np.nanmin(r) - 1e-9 <= g <= np.nanmax(r) + 1e-9


# ----------------------------------------------------------------------------------- configuration


def test_tree_has_5_17_49_and_effective_weights_sum_to_one() -> None:
    assert (len(CFG.level1), len(CFG.level2), len(CFG.indicators)) == (5, 17, 49)
    eff = CFG.effective_weights()
    assert sum(eff.values()) == pytest.approx(1.0)
    assert eff["A1.1"] == pytest.approx(0.0180) and eff["D1.1"] == pytest.approx(0.04375)
    assert eff["E3.2"] == pytest.approx(0.009375)


def _raw_config() -> dict:
    return yaml.safe_load(indicator_config_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "indicators.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["l3", "l2", "l1"])
def test_config_rejects_weights_that_do_not_sum_to_one(tmp_path: Path, where: str) -> None:
    raw = _raw_config()
    if where == "l3":
        raw["level1"][0]["level2"][0]["indicators"][0]["weight"] = 0.35
    elif where == "l2":
        raw["level1"][1]["level2"][0]["weight"] = 0.5
    else:
        raw["level1"][4]["weight"] = 0.2
    with pytest.raises(ConfigError, match="sum to"):
        load_yaml_model(IndicatorConfig, _write(tmp_path, raw))


def test_config_rejects_decreasing_knots_and_missing_method_parameters(tmp_path: Path) -> None:
    raw = _raw_config()
    raw["level1"][0]["level2"][0]["indicators"][0]["knots"] = [[0, 45], [3, 70], [1, 55]]
    with pytest.raises(ConfigError, match="increasing"):
        load_yaml_model(IndicatorConfig, _write(tmp_path, raw))
    raw = _raw_config()
    del raw["level1"][1]["level2"][0]["indicators"][0]["pct"]
    with pytest.raises(ConfigError, match="pct"):
        load_yaml_model(IndicatorConfig, _write(tmp_path, raw))


def test_config_round_trips_unchanged(tmp_path: Path) -> None:
    assert load_yaml_model(IndicatorConfig, _write(tmp_path, _raw_config())) == CFG


def test_lookup_tables_and_sets_use_catalog_categories() -> None:
    catalog = load_catalog()
    checked = 0
    for ind in CFG.indicators:
        for key, values in [*((k, list(t)) for k, t in ind.tables.items()), *ind.sets.items()]:
            sub_item, _, field = key.partition(".")
            if sub_item == "zhoushan_sector":
                assert set(values) <= set(CFG.sector_names()), (ind.code, key)
                continue
            spec = catalog.sub_item(sub_item)
            if field not in spec.field_names:     # e.g. ip_assets.weights: keys are field names
                assert set(values) <= set(spec.field_names), (ind.code, key)
                continue
            allowed = spec.field(field).allowed
            assert allowed is not None, (ind.code, key)
            assert set(values) - {"_default"} <= set(allowed), (ind.code, key)
            checked += 1
    assert checked >= 15


def test_every_indicator_has_a_scorer_and_features_cover_the_mart() -> None:
    assert set(SCORERS) == {i.code for i in CFG.indicators}
    feats = indicator_features()
    names = [f.name for f in feats]
    assert len(names) == len(set(names)) == 49 * 2 + 17 + 5 + 6
    assert feats == ind_mod.INDICATOR_FEATURES
    b12 = next(f for f in feats if f.name == "ind_B1_2_score")
    assert b12.reason_group == "scale_and_growth" and b12.risk_direction == "-" and b12.meaning_zh
    assert next(f for f in feats if f.name == "ind_A1_3_raw").risk_direction == "+"


# ---------------------------------------------------------------------------------- scorers


def test_social_insurance_payment_bands_and_payment_ratio() -> None:
    f = pd.DataFrame({"si_current": [True, True, True, True, True, False],
                      "si_arrears_months": [0, 1, 4, 7, 0, 0],
                      "si_due12": [100.0, 100, 100, 100, 100, 100],
                      "si_paid12": [100.0, 100, 100, 100, 50, 100]})
    _, s = SCORERS["D2.1"](f, CFG.indicator("D2.1"), ind_mod._Context(CFG, None, None))
    np.testing.assert_allclose(s[:5], [100, 70, 25, 5, 50])
    assert np.isnan(s[5])                    # no current rows: N/A


def test_annual_report_indicators_score_missing_reports_at_30() -> None:
    f = pd.DataFrame({"as_of": pd.to_datetime(["2020-08-31"] * 3),
                      "establish_date": pd.to_datetime(["2010-01-01", "2010-01-01", "2020-03-01"]),
                      "cur_year": [2019, np.nan, np.nan], "cur_assets": [100.0, np.nan, np.nan],
                      "cur_liabilities": [50.0, np.nan, np.nan]})
    raw, s = SCORERS["C1.1"](f, CFG.indicator("C1.1"), ind_mod._Context(CFG, None, None))
    assert raw[0] == 0.5 and s[0] == 85     # filed: PW(0.5) = 85
    assert np.isnan(raw[1]) and s[1] == 30  # due and not filed: the missing score
    assert np.isnan(s[2])                   # established after the due year: N/A


# ------------------------------------------------------------------------------ norm parameters


def _params(base: str = "2019-12") -> NormParams:
    ref = fit_quantile_reference(np.arange(100.0), 0.01, 0.99, 101)
    assert ref is not None
    return NormParams(norm_version="t", config_sha256=ind_mod._config_hash(CFG), base_month_requested=base,
                      base_month=base, reference_enterprises=100,
                      references={i.code: {"pooled": ref} for i in CFG.indicators if i.pct},
                      seasonal_factors={s: tuple([1.0] * 12) for s in CFG.sector_names()})


def test_norm_params_round_trip_and_refuse_tampering(tmp_path: Path) -> None:
    path = save_norm_params(_params(), tmp_path / "norm" / "cci-v1.json")
    loaded = load_norm_params(path)
    assert loaded.references == _params().references and len(loaded.content_hash) == 64
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"base_month": "2019-12"', '"base_month": "2019-11"'), encoding="utf-8")
    with pytest.raises(ZhouxinError, match="content_hash"):
        load_norm_params(path)


# ------------------------------------------------------------------- point-in-time SQL on a tiny warehouse


def _scd(con: duckdb.DuckDBPyConnection, code: str, rows: list[dict]) -> None:
    """A `<code>_scd` table with every catalog column, from a few rows (key = all but availability)."""
    spec = load_catalog().sub_item(code)
    df = pd.DataFrame(rows)
    for f in spec.fields:
        if f.name not in df:
            df[f.name] = None
    df["_ingest_ts"] = df["_available_date"].astype(str)
    df["_source_line"] = range(len(df))
    con.register(f"_{code}_rows", df)
    key = ", ".join(k for k in spec.key if k != "valid_from")
    con.execute(f"""create table "{code}_scd" as select *, cast(_available_date as date) as _known_from,
        lead(cast(_available_date as date)) over (partition by {key} order by _available_date, _source_line)
        as _known_to from _{code}_rows""")


def _tiny_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    reg = {"ent_status": "active", "establish_date": date(2010, 1, 1), "registered_capital": 100.0,
           "industry_code": "F5162", "address_is_cluster_registration": False,
           "_available_date": date(2015, 1, 1)}
    _scd(con, "ent_registration", [{"uscc": "FIRM_GAP", **reg}, {"uscc": "FIRM_STALE", **reg}])
    rows = []
    for m in pd.period_range("2017-01", "2019-11", freq="M"):
        avail = (m + 1).start_time.date().replace(day=20)
        if m != pd.Period("2019-10", freq="M"):                 # one-month gap: carried forward
            rows.append({"uscc": "FIRM_GAP", "period_month": m.start_time.date(), "invoices_issued_amount": 10.0,
                         "total_tax_paid": 1.0, "declared_on_time": True, "_available_date": avail})
        if m <= pd.Period("2019-07", freq="M"):                 # stopped 4 months ago: stale
            rows.append({"uscc": "FIRM_STALE", "period_month": m.start_time.date(),
                         "invoices_issued_amount": 10.0, "total_tax_paid": 1.0, "declared_on_time": True,
                         "_available_date": avail})
    # 2019-12 arrives on 2020-01-20: unknown at the 2019-12-31 month end
    rows.append({"uscc": "FIRM_GAP", "period_month": date(2019, 12, 1), "invoices_issued_amount": 1000.0,
                 "total_tax_paid": 1.0, "declared_on_time": False, "_available_date": date(2020, 1, 20)})
    _scd(con, "tax_monthly", rows)
    return con


def test_monthly_series_are_point_in_time_with_short_gaps_carried_forward() -> None:
    con = _tiny_warehouse()
    f = raw_inputs(con, [date(2019, 12, 31)], {}).set_index("uscc")
    gap, stale = f.loc["FIRM_GAP"], f.loc["FIRM_STALE"]
    assert gap["sales12"] == pytest.approx(120.0)      # 11 observed + 1 carried forward, 2019-12 not yet known
    assert gap["n_late_filing"] == 0 and gap["tax_hist"] == 35 and bool(gap["tax_current"])
    assert not bool(stale["tax_current"])              # gap of 4 months > 2: not covered now
    later = raw_inputs(con, [date(2020, 1, 31)], {}).set_index("uscc")
    assert later.loc["FIRM_GAP", "sales12"] == pytest.approx(1000.0 + 10 * 10 + 10.0)
    assert later.loc["FIRM_GAP", "n_late_filing"] == 1


def test_stale_series_make_sales_indicators_not_applicable() -> None:
    con = _tiny_warehouse()
    mart = build_indicator_mart(con, [date(2019, 12, 31)], _params())
    assert list(mart.columns) == ["uscc", "as_of", *[f.name for f in indicator_features()]]
    mart = mart.set_index("uscc")
    assert not np.isnan(mart.loc["FIRM_GAP", "ind_B1_1_score"])
    assert np.isnan(mart.loc["FIRM_STALE", "ind_B1_1_score"])
    assert mart.loc["FIRM_GAP", "ind_B1_2_score"] == pytest.approx(75.0)   # flat sales: g = 0


def test_params_fitted_with_another_config_are_refused() -> None:
    con = _tiny_warehouse()
    stale = _params().model_copy(update={"config_sha256": "0" * 64})
    with pytest.raises(ZhouxinError, match=r"another indicators\.yaml"):
        build_indicator_mart(con, [date(2019, 12, 31)], stale)


# ------------------------------------------------------------------------------------ health


def test_univariate_auc_and_direction() -> None:
    y = np.array([1, 1, 0, 0, 0])
    assert univariate_auc(np.array([10.0, 20, 30, 40, 50]), y) == 1.0     # events score lowest
    assert univariate_auc(np.array([50.0, 40, 30, 20, 10]), y) == 0.0
    assert univariate_auc(np.array([1.0, 1, 1, 1, 1]), y) == 0.5
    assert math.isnan(univariate_auc(np.array([1.0, 2]), np.array([0, 0])))


# ------------------------------------------------------------------------- the small simulated world


@pytest.mark.integration
def test_mart_on_the_small_world(small_warehouse, tmp_path: Path) -> None:
    ws, _ = small_warehouse
    con = connect_warehouse(ws / "warehouse" / "warehouse.duckdb")
    params = fit_reference(con)
    assert params.base_month != "2019-12" and params.base_month_note       # 2018-only world: fallback
    params = load_norm_params(save_norm_params(params, tmp_path / "norm.json"))
    months = month_ends(params.base_month, "2018-12")
    mart = build_indicator_mart(con, months, params)
    grid = registered_grid(con, months)
    assert len(mart) == len(grid) and not mart.duplicated(["uscc", "as_of"]).any()
    keys = set(zip(grid.uscc, pd.to_datetime(grid.as_of), strict=True))
    assert set(zip(mart.uscc, mart.as_of, strict=True)) == keys
    assert mart["as_of"].dtype == "datetime64[ns]"
    scores = mart[[c for c in mart if c.endswith("_score")]]
    assert scores.shape[1] == 49
    assert ((scores >= 0) & (scores <= 100) | scores.isna()).all().all()
    assert scores["ind_E3_1_score"].isna().all()                           # no equity graph given
    assert scores.notna().mean().mean() > 0.5
    cci = mart.dropna(subset=["cci"])
    assert len(cci) > 0.9 * len(mart)
    assert (cci["cci"] <= cci["cci_cap"]).all() and cci["cci"].between(0, 100).all()
    assert cci["cci_tier"].notna().all()
    assert mart.loc[mart.insufficient_history, "cci"].isna().all()
    related = mart[["uscc", "as_of"]].assign(eq_related_party_risk_score=70.0)
    with_rp = build_indicator_mart(con, months[-1:], params, related_party=related)
    assert (with_rp["ind_E3_1_score"] == 70.0).all()
    labels = mart[["uscc", "as_of"]].assign(y=(mart["cci"] < mart["cci"].median()).astype(int))
    health = indicator_health(mart, labels)
    assert len(health[health.level == "L3"]) == 49
    assert health.loc[health.code == "CCI", "auc"].iloc[0] > 0.9
