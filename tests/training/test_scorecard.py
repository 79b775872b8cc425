"""The WoE scorecard challenger: monotone in its driving feature, close to LightGBM on a monotone world, the
serving fast path equal to the frame path, reasons that are business codes raising the PD, points that add up
to the served score, choices made on the train rows only, and registration through the shared gate."""

from __future__ import annotations

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from kernel.profile import load_profile
from training.config import credit_rating_config_path, load_credit_rating_config
from training.credit_rating import TrainedRating
from training.evaluation import calibration_by_grade, discrimination
from training.fitting import fit_early_stopped, fit_isotonic, lgb_params
from training.monotone import monotone_constraints
from training.rating_model import CreditRatingModel
from training.reasons import load_reason_codes
from training.registry import CHALLENGER, CHAMPION, compare_versions, log_rating_model
from training.scale import load_rating_scale
from training.scorecard import fit_scorecard
from training.scorecard_model import ScorecardRatingModel
from zhouxin.cli import app

pytestmark = pytest.mark.model

CATS = ["micro", "small", "medium"]
CCI = "mart_indicators__cci"                                          # declared: higher = less risk
LIT = "mart_risk_indicators__ri_litigation_defendant__count_12m"      # declared: higher = more risk
VAT = "tax_monthly__vat_paid"
SCALE = "ent_registration__enterprise_scale"
NOISE = [f"mart_indicators__idx_{k}" for k in "ABC"]
FAST = {"num_boost_round": 200, "early_stopping_rounds": 20, "min_data_in_leaf": 40, "learning_rate": 0.1,
        "num_threads": 1}


def _world(n: int = 9000, seed: int = 11) -> tuple[pd.DataFrame, np.ndarray]:
    """A monotone logistic world: CCI drives the risk, litigation and the micro scale add to it."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({CCI: rng.normal(60, 15, n).astype("float32"),
                      LIT: rng.poisson(0.4, n).astype("float32"),
                      VAT: rng.gamma(2, 3, n).astype("float32"),
                      SCALE: pd.Categorical(rng.choice(CATS, n), categories=CATS),
                      **{c: rng.normal(size=n).astype("float32") for c in NOISE}})
    x.loc[rng.random(n) < 0.1, VAT] = np.nan
    x.loc[rng.random(n) < 0.05, CCI] = np.nan
    cci = x[CCI].fillna(60).to_numpy()
    logit = -3.6 - (cci - 60) / 8 + 0.5 * x[LIT].to_numpy() + 0.6 * (x[SCALE] == "micro").to_numpy()
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


SPLIT = {"train": slice(0, 5000), "validation": slice(5000, 7000), "test": slice(7000, None)}


@pytest.fixture(scope="module")
def world():
    x, y = _world()
    parts = {s: (x.iloc[sl].reset_index(drop=True), y[sl]) for s, sl in SPLIT.items()}
    spec = load_credit_rating_config().scorecard
    fitted = fit_scorecard(*parts["train"], *parts["validation"], {SCALE: CATS}, spec, "credit_rating")
    return parts, fitted


def _lightgbm(parts) -> CreditRatingModel:
    cfg = load_credit_rating_config()
    params, rounds, stop = lgb_params(cfg, FAST)
    (xt, yt), (xv, yv) = parts["train"], parts["validation"]
    params["monotone_constraints"] = monotone_constraints(list(xt.columns), {SCALE})
    dtrain = lgb.Dataset(xt, yt, categorical_feature=[SCALE], free_raw_data=False)
    booster = fit_early_stopped(params, dtrain, lgb.Dataset(xv, yv, reference=dtrain), rounds, stop)
    scale = load_rating_scale()
    return CreditRatingModel(booster, fit_isotonic(booster.predict(xv, num_iteration=booster.best_iteration), yv),
                             list(xt.columns), {SCALE: CATS}, scale.score.model_dump(),
                             [g.pd_upper for g in scale.grades], list(scale.grade_names), "credit_rating")


def test_pd_is_monotone_in_the_driving_feature_and_auc_close_to_lightgbm(world):
    parts, fitted = world
    model = fitted.model
    assert CCI in model.columns and SCALE in model.columns and VAT not in model.used_columns()
    grid = pd.DataFrame({CCI: np.linspace(0, 120, 241, dtype="float32")})
    for _, row in parts["test"][0].head(20).iterrows():
        frame = grid.assign(**{c: row[c] for c in model.columns if c != CCI})
        frame[SCALE] = pd.Categorical([row[SCALE]] * len(frame), categories=CATS)
        p = model.pd12(frame)
        assert np.all(np.diff(p) <= 1e-12), "PD must not rise with the CCI (declared: higher = less risk)"
        assert p[0] > 5 * p[-1]
    xt, yt = parts["test"]
    auc_sc = roc_auc_score(yt, model.pd12(xt))
    auc_lgb = roc_auc_score(yt, _lightgbm(parts).pd12(xt))
    assert auc_sc > 0.8 and auc_lgb > 0.8
    # a logistic world suits the scorecard: it must not lose more than 0.02 of AUC to LightGBM (it may win)
    assert auc_lgb - 0.02 < auc_sc < auc_lgb + 0.05, (auc_sc, auc_lgb)


def test_choices_use_the_train_rows_only(world):
    parts, fitted = world
    xv, yv = parts["validation"]
    shuffled = np.random.default_rng(0).permutation(yv)
    other = fit_scorecard(*parts["train"], xv, shuffled, {SCALE: CATS}, load_credit_rating_config().scorecard,
                          "credit_rating").model
    a = fitted.model
    assert other.columns == a.columns and other.splits == a.splits and other.logit == a.logit
    assert other.bin_of_code == a.bin_of_code and other.intercept == a.intercept
    assert other.platt != a.platt                       # the validation rows only calibrate


def _rows(frame: pd.DataFrame) -> list[dict]:
    out = []
    for rec in frame.to_dict("records"):
        out.append({k: (None if (not isinstance(v, str) and pd.isna(v)) else v) for k, v in rec.items()})
    return out


def test_encode_then_pd12_equals_the_frame_path(world):
    parts, fitted = world
    model = fitted.model
    frame = parts["test"][0].head(300).copy()
    rows = _rows(frame)
    rows[0][SCALE] = "unseen"                          # an unknown category reads as missing in both paths
    rows[1]["not_a_model_column"] = 1.0
    rows[2].pop(CCI)                                   # an absent column reads as missing
    frame[SCALE] = frame[SCALE].astype(object)
    frame.loc[0, SCALE] = "unseen"
    frame.loc[2, CCI] = np.nan
    x = model.encode(rows)
    assert x.shape == (300, len(model.columns))
    assert np.array_equal(model.pd12(x), model.pd12(frame))
    assert model.reasons(x).to_numpy().tolist() == model.reasons(frame).to_numpy().tolist()
    assert model.pd12(x)[0] == model.pd12(frame.iloc[[0]].assign(**{SCALE: np.nan}))[0]


def test_reasons_are_business_codes_that_raise_the_pd(world):
    parts, fitted = world
    model = fitted.model
    x = parts["test"][0]
    reasons = model.reasons(x)
    codes = load_reason_codes()
    listed = set(reasons.stack().dropna())
    assert listed <= set(model.column_reason.values()) <= set(codes.reasons)
    assert {"overall", "registration", "litigation"} <= listed
    contrib = model.terms(x) - np.array([model.reason_base[c] for c in model.columns])
    by_reason = pd.DataFrame(contrib, columns=model.columns).T.groupby(
        pd.Series(model.column_reason)).sum().T
    for i, row in reasons.iterrows():
        given = [r for r in row if r is not None]
        assert len(given) == len(set(given))
        assert all(by_reason.loc[i, r] > 0 for r in given)                 # only reasons that raise the PD
        ranked = by_reason.loc[i].sort_values(ascending=False)
        assert given == [r for r in ranked.index[:len(given)]]
        assert len(given) == min(model.top_reasons, int((ranked > 1e-9).sum()))
    best = {c: min(zip(model.logit[c], range(99), strict=False))[1] for c in model.columns}
    top = pd.DataFrame({c: [_value_in_bin(model, c, b)] for c, b in best.items()})
    assert model.reasons(top).iloc[0].isna().all()                         # every bin at its best: no reason
    worst_cci = top.assign(**{CCI: np.float32(0.0)})
    assert model.reasons(worst_cci).iloc[0, 0] == "overall"
    assert model.pd12(worst_cci)[0] > model.pd12(top)[0]
    assert model.reason_texts("overall") == (codes.reasons["overall"].zh, codes.reasons["overall"].en)


def _value_in_bin(model: ScorecardRatingModel, c: str, b: int):
    if model.missing_logit[c] < min(model.logit[c]):        # a missing value is the best "bin"
        return np.nan
    if c in model.bin_of_code:
        return pd.Categorical([model.categories[c][next(k for k, v in model.bin_of_code[c].items() if v == b)]],
                              categories=model.categories[c])[0]
    edges = [-1e9, *model.splits[c], 1e9]
    return np.float32((max(edges[b], -1e6) + min(edges[b + 1], 1e6)) / 2)


def test_scorecard_points_add_up_to_the_served_score(world):
    parts, fitted = world
    model, table = fitted.model, fitted.table
    x = parts["test"][0].head(500)
    base = float(table.loc[table["feature"] == "(base)", "points"].iloc[0])
    terms = model.terms(x)
    points = np.full(len(x), base)
    for j, c in enumerate(model.columns):
        t = table[table["feature"] == c]
        assert (t["points"] >= -1e-9).all() and np.isclose(t["points"].min(), 0.0)
        nearest = np.abs(terms[:, [j]] - t["logit"].to_numpy()[None, :]).argmin(axis=1)
        points += t["points"].to_numpy()[nearest]
    s = load_rating_scale().score
    p = model.pd12(x)
    inside = (p > 1e-5) & (p < 1 - 1e-5) & (points > s.min) & (points < s.max)
    assert inside.mean() > 0.9
    assert np.all(np.abs(model.score(p)[inside] - points[inside]) <= 0.5 + 1e-6)
    assert set(table.columns) >= {"feature", "reason", "bin", "woe", "coefficient", "points"}


def test_shares_the_lightgbm_artefact_contract():
    """The shared contract code (encode, score, grade) answers the same for both artefacts."""
    scale = load_rating_scale()
    common = {"score_spec": scale.score.model_dump(), "grade_uppers": [g.pd_upper for g in scale.grades],
              "grade_names": list(scale.grade_names), "feature_service": "credit_rating"}
    lgbm = CreditRatingModel(None, None, [CCI, SCALE], {SCALE: CATS}, **common)
    sc = ScorecardRatingModel([CCI, SCALE], {SCALE: CATS}, {CCI: [50.0]}, {SCALE: {0: 0, 1: 1, 2: 1}},
                              {CCI: [0.5, -0.5], SCALE: [0.2, -0.2]}, {CCI: 0.0, SCALE: 0.0}, -3.0, (0.0, 1.0),
                              None, **common)
    rows = [{CCI: 40, SCALE: "micro"}, {CCI: None, SCALE: "huge"}, {CCI: "n/a", "x": 1}, {}]
    assert np.array_equal(lgbm.encode(rows), sc.encode(rows), equal_nan=True)
    p = np.array([1e-5, 0.001, 0.02, 0.3, 0.99])
    assert np.array_equal(lgbm.score(p), sc.score(p))
    assert lgbm.grade(p).tolist() == sc.grade(p).tolist()
    assert sc.used_columns() == [CCI, SCALE]


class _Store:
    """The two Feast calls the registry makes for lineage (a real store needs a built world)."""

    def get_feature_service(self, name: str):
        return SimpleNamespace(feature_view_projections=[SimpleNamespace(name="mart_indicators")])

    def get_feature_view(self, name: str):
        return SimpleNamespace(to_proto=lambda: SimpleNamespace(spec=SimpleNamespace(
            SerializeToString=lambda: b"mart_indicators-spec")))


def _trained(model, x, y, metrics: dict[str, float], params: dict, tables: dict | None = None) -> TrainedRating:
    p = model.pd12(x)
    rows = pd.DataFrame({"uscc": ["91330900MA2A00000A"] * len(x), "as_of": pd.Timestamp("2018-06-30"), "y": y,
                         "split": "test"})
    imp = pd.DataFrame({"feature": list(model.columns), "gain": np.arange(len(model.columns), 0, -1.0)})
    return TrainedRating(model=model, params=params, metrics=metrics, grade_table=calibration_by_grade(y, p),
                         importance=imp, rows=rows, test_pd=p, test_y=y, tables=tables or {},
                         windows={"train": "2018-01..2018-06", "validation": "x", "test": "y"})


def test_registers_loads_back_and_the_gate_keeps_the_better_champion(world, tmp_path):
    import mlflow

    parts, fitted = world
    xt, yt = parts["test"]
    cfg = load_credit_rating_config().model_copy(update={"experiment": "credit-rating-sc-test",
                                                         "model_name": "credit-rating-sc-test"})
    prof = load_profile("local")
    champ = _trained(_lightgbm(parts), xt, yt, {"test_auc": 0.90, "test_brier": 0.010}, {"model_type": "lightgbm"})
    challenger = _trained(fitted.model, xt, yt, {"test_auc": 0.85, "test_brier": 0.009}, fitted.params,
                          {"scorecard": fitted.table})
    _, v1, g1 = log_rating_model(tmp_path, champ, cfg, credit_rating_config_path(), _Store(), prof)
    run2, v2, g2 = log_rating_model(tmp_path, challenger, cfg, credit_rating_config_path(), _Store(), prof)
    assert g1.promoted and not g2.promoted and "does not beat" in g2.reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(cfg.model_name, CHAMPION).version) == v1
    assert str(client.get_model_version_by_alias(cfg.model_name, CHALLENGER).version) == v2
    assert client.get_model_version(cfg.model_name, v2).tags["model_type"] == "scorecard"
    assert client.get_run(run2).data.params["model_type"] == "scorecard"
    table = compare_versions(cfg.model_name)
    assert table["model"].tolist() == ["lightgbm", "scorecard"]
    assert table["aliases"].tolist() == [CHAMPION, CHALLENGER]
    assert "evaluation/scorecard.csv" in {a.path for a in client.list_artifacts(run2, "evaluation")}
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run2, artifact_path="evaluation/scorecard.csv",
                                                            dst_path=str(tmp_path / "dl")))
    assert len(table) == len(fitted.table) and set(table["feature"]) - {"(base)"} == set(fitted.model.columns)

    loaded = mlflow.pyfunc.load_model(f"models:/{cfg.model_name}@{CHALLENGER}")
    frame = xt.head(200).astype({SCALE: object})      # as a caller sends it: strings and numbers
    got, want = loaded.predict(frame), fitted.model.predict(None, xt.head(200))
    assert list(got.columns) == ["pd12", "score", "grade", "model_pd12", "cap_reason", "reason_1", "reason_2", "reason_3"]
    assert np.allclose(got["pd12"], want["pd12"], rtol=0, atol=1e-12)
    assert got[["score", "grade", "reason_1", "reason_2", "reason_3"]].equals(
        want[["score", "grade", "reason_1", "reason_2", "reason_3"]])
    inner = loaded.unwrap_python_model()
    assert type(inner).__name__ == "ScorecardRatingModel" and inner.used_columns() == fitted.model.used_columns()
    assert discrimination(yt, inner.pd12(inner.encode(_rows(xt))))["auc"] == pytest.approx(
        roc_auc_score(yt, fitted.model.pd12(xt)), abs=1e-12)
    champion = mlflow.pyfunc.load_model(f"models:/{cfg.model_name}@{CHAMPION}").unwrap_python_model()
    assert type(champion).__name__ == "CreditRatingModel"


def test_cli_refuses_an_unknown_model_type_and_scorecard_tuning():
    result = CliRunner().invoke(app, ["train", "credit-rating", "--model", "xgboost"])
    assert result.exit_code == 2 and "use lightgbm or scorecard" in result.output
    result = CliRunner().invoke(app, ["train", "credit-rating", "--model", "scorecard", "--trials", "3"])
    assert result.exit_code == 2 and "the scorecard has none" in result.output
    assert load_credit_rating_config().model == "lightgbm"
