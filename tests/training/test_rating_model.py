"""The registered artefact: the serving fast path (encode -> numpy) answers exactly as the frame path."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from data.marts.indicator_config import load_indicator_config
from training.rating_model import CreditRatingModel
from training.scale import cap_floors, load_rating_scale

CATS = ["micro", "small", "medium"]


def _model(reasons: dict[str, str]) -> tuple[CreditRatingModel, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 4000
    x = pd.DataFrame({"mart_indicators__cci": rng.normal(60, 15, n).astype("float32"),
                      "tax_monthly__vat_paid": rng.gamma(2, 3, n).astype("float32"),
                      "ent_registration__enterprise_scale": pd.Categorical(rng.choice(CATS, n), categories=CATS)})
    x.loc[rng.random(n) < 0.1, "tax_monthly__vat_paid"] = np.nan
    logit = -4 - (x["mart_indicators__cci"] - 60) / 10 + (x["ent_registration__enterprise_scale"] == "micro") * 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 3, "min_data_in_leaf": 40},
                        lgb.Dataset(x, y), num_boost_round=25)
    cal = IsotonicRegression(out_of_bounds="clip", y_min=1e-5, y_max=1 - 1e-5).fit(booster.predict(x), y)
    scale = load_rating_scale()
    model = CreditRatingModel(booster, cal, list(x.columns), {"ent_registration__enterprise_scale": CATS},
                              scale.score.model_dump(), [g.pd_upper for g in scale.grades], list(scale.grade_names),
                              "credit_rating", column_reason=reasons,
                              reason_text={r: (r + "_zh", r + "_en") for r in set(reasons.values())})
    return model, x


MODEL, FRAME = _model({"mart_indicators__cci": "overall", "tax_monthly__vat_paid": "tax",
                       "ent_registration__enterprise_scale": "registration"})


@settings(max_examples=80, deadline=None)
@given(cci=st.one_of(st.none(), st.floats(0, 100)), vat=st.one_of(st.none(), st.floats(0, 50)),
       scale=st.one_of(st.none(), st.sampled_from([*CATS, "unseen"])))
def test_encode_path_equals_the_frame_path(cci, vat, scale):
    row = {"mart_indicators__cci": cci, "tax_monthly__vat_paid": vat, "ent_registration__enterprise_scale": scale,
           "not_a_model_column": 1.0}
    frame = pd.DataFrame([{k: (np.nan if v is None and k != "ent_registration__enterprise_scale" else v)
                           for k, v in row.items()}])
    x = MODEL.encode([row])
    assert np.allclose(MODEL.pd12(x), MODEL.pd12(frame), rtol=0, atol=1e-12)
    assert MODEL.reasons(x).iloc[0].tolist() == MODEL.reasons(frame).iloc[0].tolist()


def test_reasons_fill_only_as_many_slots_as_there_are_business_reasons():
    model, x = _model({"mart_indicators__cci": "overall", "tax_monthly__vat_paid": "overall",
                       "ent_registration__enterprise_scale": "registration"})
    out = model.reasons(x.iloc[:200])
    assert list(out.columns) == ["reason_1", "reason_2", "reason_3"]
    assert out["reason_3"].isna().all()
    assert set(out["reason_1"].dropna()) <= {"overall", "registration"}


def test_used_columns_are_the_ones_the_trees_split_on():
    assert set(MODEL.used_columns()) <= set(MODEL.columns)
    assert "mart_indicators__cci" in MODEL.used_columns()


CAPPED = _model({"mart_indicators__cci": "overall", "tax_monthly__vat_paid": "tax",
                 "ent_registration__enterprise_scale": "registration"})[0]
CAPPED.set_caps("mart_indicators__cci_cap", cap_floors(load_rating_scale()))
GRADES = list(load_rating_scale().grade_names)


def test_the_caps_come_from_the_indicator_caps_and_the_scale():
    """§1.3: dishonest / serious-illegal (and revoked) -> no better than CC; restriction, tax D, non-normal
    taxpayer, enforcement ended without assets -> no better than CCC; the unreachable-address cap rates nothing."""
    caps = load_indicator_config().caps
    floors = {reason: (at_most, floor) for at_most, floor, reason in CAPPED.cap_floors}
    assert floors["cap_dishonest_or_serious_illegal"] == (caps.dishonest_or_serious_illegal, 0.10)
    assert floors["cap_revoked_or_liquidating"] == (caps.revoked_or_liquidating, 0.10)
    assert floors["cap_restriction_or_tax_d"] == (caps.restriction_or_tax_d, 0.045)
    p, reason = CAPPED.apply_caps(np.array([0.001]), [caps.unreachable_address])
    assert p[0] == 0.001 and reason[0] is None


@settings(max_examples=200, deadline=None)
@given(p=st.floats(1e-5, 1 - 1e-5), cap=st.one_of(st.none(), st.just(float("nan")), st.sampled_from([20.0, 45.0, 55.0, 60.0, 100.0]),
                                                st.floats(0, 100)))
def test_a_cap_only_ever_worsens_a_grade_to_at_most_its_best_grade(p, cap):
    out, reason = CAPPED.apply_caps(np.array([p]), [cap])
    assert out[0] >= p
    before, after = GRADES.index(CAPPED.grade(np.array([p]))[0]), GRADES.index(CAPPED.grade(out)[0])
    assert after >= before
    if cap is None or np.isnan(cap) or cap > 55:
        assert out[0] == p and reason[0] is None
    elif cap <= 45:
        assert after >= GRADES.index("CC") and reason[0] in {"cap_dishonest_or_serious_illegal",
                                                              "cap_revoked_or_liquidating"}
    else:
        assert after >= GRADES.index("CCC") and reason[0] == "cap_restriction_or_tax_d"
    if reason[0] is not None and p >= 0.2:      # already C: a cap changes nothing
        assert out[0] == p


def test_predict_applies_the_caps_from_the_frame_and_keeps_the_model_pd():
    frame = FRAME.iloc[:3].copy()
    frame["mart_indicators__cci"] = 95.0                         # a very good firm by the model
    frame["mart_indicators__cci_cap"] = [45.0, 55.0, 100.0]
    out = CAPPED.predict(None, frame)
    assert out["grade"].tolist()[:2] == ["CC", "CCC"] and out["grade"].iloc[2] in GRADES[:5]
    assert (out["model_pd12"] < 0.045).all()
    assert out["cap_reason"].tolist() == ["cap_dishonest_or_serious_illegal", "cap_restriction_or_tax_d", None]
    uncapped = MODEL.predict(None, frame)                        # an artefact without caps caps nothing
    assert (uncapped["pd12"] == uncapped["model_pd12"]).all() and uncapped["cap_reason"].isna().all()


def test_platt_calibration_is_monotone_continuous_and_reaches_low_pds():
    from training.fitting import fit_calibrator

    rng = np.random.default_rng(8)
    raw = rng.uniform(0.001, 0.3, 20_000)
    y = (rng.random(raw.size) < raw / 3).astype(int)          # the booster overstates risk threefold
    cal = fit_calibrator("platt", raw, y)
    grid = np.linspace(0.001, 0.3, 200)
    out = cal.predict(grid)
    assert (np.diff(out) > 0).all()                           # strictly monotone: no pooled steps
    assert abs(float(np.mean(cal.predict(raw))) - y.mean()) < 0.003   # calibrated in the large
    iso = fit_calibrator("isotonic", raw, y)
    assert len(np.unique(iso.predict(grid))) < len(np.unique(out))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_isotonic_by_interp_equals_sklearn_predict_everywhere(seed):
    from training.rating_model import calibrate

    rng = np.random.default_rng(seed)
    x = rng.random(2000)
    y = (rng.random(2000) < x / 4).astype(int)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-5, y_max=1 - 1e-5).fit(x, y)
    t = np.r_[rng.uniform(-0.5, 1.5, 3000), iso.X_thresholds_, [0.0, 1.0]]
    assert np.array_equal(calibrate(iso, t), iso.predict(t))


def test_centred_isotonic_is_monotone_breaks_the_ties_of_wide_blocks_and_keeps_block_levels():
    from training.fitting import fit_calibrator
    from training.rating_model import CenteredIsotonic

    rng = np.random.default_rng(11)
    raw = rng.uniform(0.001, 0.05, 30_000)
    y = (rng.random(raw.size) < raw / 2).astype(int)
    cir = fit_calibrator("cir", raw, y)
    iso = fit_calibrator("isotonic", raw, y)
    assert isinstance(cir, CenteredIsotonic)
    grid = np.linspace(0.0, 0.06, 500)
    assert (np.diff(cir.predict(grid)) >= 0).all()
    assert len(np.unique(cir.predict(raw))) > 5 * len(np.unique(iso.predict(raw)))     # far fewer ties
    assert (np.diff(cir.knots_x) > 0).all() and cir.knots_y.min() >= 1e-5
    assert abs(float(np.mean(cir.predict(raw))) - y.mean()) < 0.002                    # calibrated in the large


def test_calibration_choice_sees_only_the_months_it_is_given_and_follows_its_rule():
    from training.fitting import choose_calibration

    rng = np.random.default_rng(12)
    n = 40_000
    raw = rng.uniform(0.001, 0.08, n)
    y = (rng.random(n) < raw * 0.6).astype(int)
    months = pd.Series(pd.to_datetime("2020-07-31") + pd.to_timedelta(rng.integers(0, 6, n) * 31, unit="D"))
    kind, table = choose_calibration(raw, y, months)
    assert set(table["calibration"]) == {"isotonic", "cir", "platt"} and kind == table.loc[0, "calibration"]
    best = table.sort_values(["grades_inside_2fold", "log_loss_2fold"], ascending=[False, True]).iloc[0]
    assert kind == best["calibration"]
    assert table["log_loss_2fold"].notna().all() and (table["grades_inside_2fold"] >= 0).all()
