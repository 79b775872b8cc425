"""The registered artefact: the serving fast path (encode -> numpy) answers exactly as the frame path."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from training.rating_model import CreditRatingModel
from training.scale import load_rating_scale

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
