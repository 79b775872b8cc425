"""`zhouxin train credit-rating`: point-in-time panel -> monotone LightGBM -> isotonic calibration ->
PD / score / grade -> out-of-time evaluation (and the oracle on the simulator) -> MLflow registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from data.feature_store.pipeline import world_months
from data.feature_store.store import open_store
from data.feature_store.training_set import view_sources
from data.marts.grid import month_ends
from kernel.profile import Profile, load_profile
from training.config import CreditRatingConfig, load_credit_rating_config
from training.evaluation import calibration_by_grade, discrimination, oracle_comparison, psi
from training.monotone import monotone_constraints
from training.panel import build_panel, to_matrix
from training.rating_model import CreditRatingModel
from training.scale import load_rating_scale, pd_to_grade


@dataclass
class TrainedRating:
    """Everything the registry step logs: the artefact, metrics, tables and the data it saw."""

    model: CreditRatingModel
    params: dict[str, object]
    metrics: dict[str, float]
    grade_table: pd.DataFrame
    importance: pd.DataFrame
    rows: pd.DataFrame
    test_pd: np.ndarray
    windows: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


def _window(rows: pd.DataFrame, split: str) -> str:
    m = rows.loc[rows["split"] == split, "as_of"]
    return f"{m.min():%Y-%m}..{m.max():%Y-%m}"


def train_credit_rating(ws: Path, cfg: CreditRatingConfig | None = None, profile: Profile | None = None,
                        lgb_overrides: dict | None = None, progress: Callable[[str], None] | None = None
                        ) -> TrainedRating:
    """Fit and evaluate one credit-rating model on the workspace's feature store."""
    cfg = cfg or load_credit_rating_config()
    say = progress or (lambda _m: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    store = open_store(ws, profile or load_profile())
    views = view_sources(store, cfg.feature_service)
    _, end = world_months(ws)
    data_end = pd.Timestamp(month_ends(end, end)[0])
    panel = build_panel(ws, views, cfg, data_end)
    rows = panel.rows
    seconds["panel"] = time.perf_counter() - t
    say(f"panel: {len(rows):,} firm-months, {panel.features.num_columns:,} features")

    t = time.perf_counter()
    masks = {s: (rows["split"] == s).to_numpy() for s in ("train", "validation", "test")}
    tr = panel.features.filter(masks["train"])
    x_train, cats = to_matrix(tr, rows.loc[masks["train"], "as_of"], max_categories=cfg.features.max_categories)
    if cfg.features.drop_constant:
        keep = [c for c in x_train.columns if x_train[c].nunique(dropna=False) > 1]
        x_train = x_train[keep]
        cats = {k: v for k, v in cats.items() if k in keep}
    columns = list(x_train.columns)
    x_val, _ = to_matrix(panel.features.filter(masks["validation"]), rows.loc[masks["validation"], "as_of"],
                         columns, cats)
    x_test, _ = to_matrix(panel.features.filter(masks["test"]), rows.loc[masks["test"], "as_of"], columns, cats)
    y = {s: rows.loc[m, "y"].to_numpy() for s, m in masks.items()}
    seconds["matrix"] = time.perf_counter() - t
    say(f"matrix: {len(columns):,} columns ({len(cats)} categorical)")

    t = time.perf_counter()
    params = dict(cfg.lightgbm) | (lgb_overrides or {})
    rounds = int(params.pop("num_boost_round"))
    stop = int(params.pop("early_stopping_rounds"))
    params["metric"] = "auc"
    if cfg.monotone:
        params["monotone_constraints"] = monotone_constraints(columns, set(cats))
        params["monotone_constraints_method"] = "advanced"
    dtrain = lgb.Dataset(x_train, y["train"], categorical_feature=list(cats) or "auto", free_raw_data=True)
    dval = lgb.Dataset(x_val, y["validation"], reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dval],
                        callbacks=[lgb.early_stopping(stop, verbose=False)])
    seconds["fit"] = time.perf_counter() - t
    say(f"fit: {booster.best_iteration} trees")

    raw_val = booster.predict(x_val, num_iteration=booster.best_iteration)
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=1e-5, y_max=1 - 1e-5).fit(raw_val, y["validation"])
    scale = load_rating_scale()
    model = CreditRatingModel(
        booster=booster, calibrator=calibrator, columns=columns, categories=cats,
        score_spec=scale.score.model_dump(), grade_uppers=[g.pd_upper for g in scale.grades],
        grade_names=list(scale.grade_names), feature_service=cfg.feature_service)
    booster.best_iteration = booster.best_iteration or booster.current_iteration()
    p_val = np.clip(calibrator.predict(raw_val), 1e-5, 1 - 1e-5)
    p_test = model.pd12(x_test)
    p_train = model.pd12(x_train)

    metrics: dict[str, float] = {}
    for split, p in (("train", p_train), ("validation", p_val), ("test", p_test)):
        metrics.update({f"{split}_{k}": v for k, v in discrimination(y[split], p).items()})
    grades = calibration_by_grade(y["test"], p_test, scale)
    metrics["test_grades_inside"] = float(grades.loc[grades["n"] > 0, "inside"].sum())
    metrics["test_grades_populated"] = float((grades["n"] > 0).sum())
    metrics["test_share_aaa_bb"] = float(grades.loc[grades["grade"].isin(["AAA", "AA", "A", "BBB", "BB"]), "share"].sum())
    metrics["psi_score_validation_to_test"] = psi(p_val, p_test)
    metrics["trees"] = float(booster.best_iteration)
    metrics.update({f"test_{k}": v for k, v in oracle_comparison(rows.loc[masks["test"]], p_test, ws).items()})
    imp = pd.DataFrame({"feature": columns, "gain": booster.feature_importance("gain")}).sort_values(
        "gain", ascending=False, ignore_index=True)
    return TrainedRating(model=model, params=params | {"num_boost_round": rounds, "early_stopping_rounds": stop},
                         metrics=metrics, grade_table=grades, importance=imp, rows=rows, test_pd=p_test,
                         windows={s: _window(rows, s) for s in ("train", "validation", "test")}, seconds=seconds)


def grade_distribution(p: np.ndarray) -> pd.Series:
    return pd.Series(pd_to_grade(p)).value_counts(normalize=True)
