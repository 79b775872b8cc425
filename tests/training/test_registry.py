"""MLflow registry behaviour on a real (SQLite) tracking store: lineage tags on every version, the
promotion gate refusing a worse challenger, alias history, and the artefact loading as PD/score/grade."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from kernel.profile import load_profile
from training.config import credit_rating_config_path, load_credit_rating_config
from training.credit_rating import TrainedRating
from training.evaluation import calibration_by_grade
from training.rating_model import CreditRatingModel
from training.registry import CHALLENGER, CHAMPION, compare_versions, log_rating_model, promotion_gate
from training.scale import load_rating_scale

LINEAGE = ("git_commit", "warehouse_manifest_sha256", "feature_service", "feature_view_versions",
           "training_window", "config_sha256", "run_id")


def test_gate_refuses_worse_or_less_calibrated_challengers():
    champ = {"test_auc": 0.80, "test_brier": 0.010}
    assert promotion_gate({"test_auc": 0.81, "test_brier": 0.009}, champ).promoted
    assert not promotion_gate({"test_auc": 0.79, "test_brier": 0.009}, champ).promoted
    assert not promotion_gate({"test_auc": 0.85, "test_brier": 0.011}, champ).promoted   # better AUC, worse calibration
    assert not promotion_gate({"test_auc": 0.80, "test_brier": 0.010}, champ).promoted   # a tie does not promote
    assert promotion_gate({"test_auc": 0.5, "test_brier": 0.5}, None).promoted


def _trained(seed: int, noise: float, auc: float, brier: float) -> TrainedRating:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(3000, 4)).astype("float32"),
                     columns=["mart_indicators__cci", "tax_monthly__vat_paid", "a__b", "c__d"])
    y = (rng.random(3000) < 1 / (1 + np.exp(4 + 1.5 * x.iloc[:, 0] + noise * rng.normal(size=3000)))).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed},
                        lgb.Dataset(x, y), num_boost_round=20)
    cal = IsotonicRegression(out_of_bounds="clip", y_min=1e-5, y_max=1 - 1e-5).fit(booster.predict(x), y)
    scale = load_rating_scale()
    model = CreditRatingModel(booster, cal, list(x.columns), {}, scale.score.model_dump(),
                              [g.pd_upper for g in scale.grades], list(scale.grade_names), "credit_rating",
                              column_reason={"mart_indicators__cci": "overall", "tax_monthly__vat_paid": "tax",
                                             "a__b": "litigation", "c__d": "litigation"},
                              reason_text={"overall": ("综合信用指数偏低", "Low composite credit index")})
    rows = pd.DataFrame({"uscc": ["91330900MA2A00000A"] * 3000, "as_of": pd.Timestamp("2018-06-30"), "y": y,
                         "split": "train"})
    return TrainedRating(model=model, params={"seed": seed}, metrics={"test_auc": auc, "test_brier": brier},
                         grade_table=calibration_by_grade(y, model.pd12(x)),
                         importance=pd.DataFrame({"feature": list(x.columns), "gain": [4.0, 3.0, 2.0, 1.0]}),
                         rows=rows, test_pd=model.pd12(x), test_y=y,
                         windows={"train": "2018-01..2018-06", "validation": "x", "test": "y"})


@pytest.mark.integration
def test_versions_carry_lineage_and_the_gate_guards_champion(small_feature_store, tmp_path):
    import mlflow

    ws, store, _ = small_feature_store
    (tmp_path / "warehouse").symlink_to(ws / "warehouse")
    cfg = load_credit_rating_config().model_copy(update={"experiment": "credit-rating-test",
                                                         "model_name": "credit-rating-test"})
    profile = load_profile("local")
    _, v1, g1 = log_rating_model(tmp_path, _trained(1, 0.1, 0.80, 0.010), cfg, credit_rating_config_path(), store, profile)
    _, v2, g2 = log_rating_model(tmp_path, _trained(2, 3.0, 0.70, 0.020), cfg, credit_rating_config_path(), store, profile)
    assert g1.promoted and not g2.promoted
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(cfg.model_name, CHAMPION).version) == v1
    assert str(client.get_model_version_by_alias(cfg.model_name, CHALLENGER).version) == v2
    for v in (v1, v2):
        tags = client.get_model_version(cfg.model_name, v).tags
        assert all(tags.get(k) for k in LINEAGE), tags
        assert tags["feature_service"] == "credit_rating"
        assert set(json.loads(tags["feature_view_versions"])) == {v.name for v in store.list_feature_views()}
    history = [json.loads(line) for line in (tmp_path / "mlflow" / "alias_history.jsonl").read_text().splitlines()]
    assert [(h["alias"], h["version"]) for h in history] == [(CHAMPION, v1), (CHALLENGER, v2)]
    assert compare_versions(cfg.model_name)["version"].tolist() == [int(v1), int(v2)]
    run_id = client.get_model_version(cfg.model_name, v1).tags["run_id"]
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert plots == {f"plots/{n}.html" for n in ("roc", "calibration", "grades", "importance")}
    champion = mlflow.pyfunc.load_model(f"models:/{cfg.model_name}@{CHAMPION}")
    out = champion.predict(pd.DataFrame({"mart_indicators__cci": [-3.0, 3.0], "tax_monthly__vat_paid": [0.0, 0.0]}))
    assert list(out.columns) == ["pd12", "score", "grade", "model_pd12", "cap_reason", "reason_1", "reason_2", "reason_3"]
    assert out["pd12"].iloc[0] > out["pd12"].iloc[1]          # lower CCI draw -> higher PD in this synthetic model
    assert out["reason_1"].iloc[0] == "overall"               # ... and the CCI is the first reason for it
    assert out["reason_1"].iloc[1] != "overall"

    # by hand, with a written reason: the gate is bypassed, the move and its reason are recorded, and undoable
    from typer.testing import CliRunner

    from zhouxin.cli import app

    args = ["models", "promote", v2, "--model", cfg.model_name, "--workspace", str(tmp_path)]
    refused = CliRunner().invoke(app, [*args, "--reason", "why"])
    assert refused.exit_code != 0 and "say why" in refused.output
    assert str(client.get_model_version_by_alias(cfg.model_name, CHAMPION).version) == v1
    done = CliRunner().invoke(app, [*args, "--reason", "rollback drill: v2 repackaged"])
    assert done.exit_code == 0, done.output
    assert str(client.get_model_version_by_alias(cfg.model_name, CHAMPION).version) == v2
    assert str(client.get_model_version_by_alias(cfg.model_name, CHALLENGER).version) == v1
    history = [json.loads(line) for line in (tmp_path / "mlflow" / "alias_history.jsonl").read_text().splitlines()]
    assert history[-2]["reason"] == "by hand: rollback drill: v2 repackaged" and history[-2]["version"] == v2
    missing = CliRunner().invoke(app, ["models", "promote", "99", "--model", cfg.model_name, "--workspace",
                                       str(tmp_path), "--reason", "no such version exists"])
    assert missing.exit_code != 0 and "no version" in missing.output
