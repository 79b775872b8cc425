"""`zhouxin train credit-rating`: point-in-time panel -> monotone LightGBM -> isotonic calibration ->
PD / score / grade -> out-of-time evaluation (and the oracle on the simulator) -> MLflow registry.

`model="scorecard"` fits the explainable challenger (`training.scorecard`: a WoE scorecard) on the same
panel and splits instead; evaluation, plots, registry and promotion gate are shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from data.feature_store.pipeline import world_months
from data.feature_store.store import open_store
from data.feature_store.training_set import view_sources
from data.marts.grid import month_ends
from kernel.profile import Profile, load_profile
from training.config import CreditRatingConfig, load_credit_rating_config
from training.evaluation import (
    calibration_by_grade,
    discrimination,
    grade_summary,
    metrics_by_group,
    oracle_comparison,
    psi,
)
from training.fitting import choose_calibration, fit_calibrator, fit_early_stopped, fitting_matrix, lgb_params
from training.monotone import monotone_constraints
from training.panel import build_panel, to_matrix
from training.rating_model import CreditRatingModel
from training.reasons import column_reasons, load_reason_codes
from training.scale import cap_floors, load_rating_scale, pd_to_grade
from training.scorecard import fit_scorecard
from training.scorecard_model import ScorecardRatingModel
from training.stability import Published, newly_severe, publish


@dataclass
class TrainedRating:
    """Everything the registry step logs: the artefact, metrics, tables and the data it saw."""

    model: CreditRatingModel | ScorecardRatingModel
    params: dict[str, object]
    metrics: dict[str, float]
    grade_table: pd.DataFrame
    importance: pd.DataFrame
    rows: pd.DataFrame
    test_pd: np.ndarray
    windows: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)
    test_y: np.ndarray | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # more CSVs for the run (e.g. the scorecard)


def _window(rows: pd.DataFrame, split: str) -> str:
    m = rows.loc[rows["split"] == split, "as_of"]
    return f"{m.min():%Y-%m}..{m.max():%Y-%m}"


def train_credit_rating(ws: Path, cfg: CreditRatingConfig | None = None, profile: Profile | None = None,
                        lgb_overrides: dict | None = None, progress: Callable[[str], None] | None = None,
                        trials: int = 0, study_storage: str | None = None, model: str | None = None
                        ) -> TrainedRating:
    """Fit and evaluate one credit-rating model on the workspace's feature store.

    model: "lightgbm" or "scorecard" (default: the config's `model`). trials > 0 tunes LightGBM with Optuna
    on the validation months (never the test months) first.
    """
    cfg = cfg or load_credit_rating_config()
    kind = model or cfg.model
    if kind not in ("lightgbm", "scorecard"):
        raise ValueError(f"unknown credit-rating model {kind!r} (lightgbm | scorecard)")
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
    x_train, cats = fitting_matrix(tr, rows.loc[masks["train"], "as_of"], cfg)
    columns = list(x_train.columns)
    x_val, _ = to_matrix(panel.features.filter(masks["validation"]), rows.loc[masks["validation"], "as_of"],
                         columns, cats)
    x_test, _ = to_matrix(panel.features.filter(masks["test"]), rows.loc[masks["test"], "as_of"], columns, cats)
    y = {s: rows.loc[m, "y"].to_numpy() for s, m in masks.items()}
    seconds["matrix"] = time.perf_counter() - t
    say(f"matrix: {len(columns):,} columns ({len(cats)} categorical)")

    t = time.perf_counter()
    if kind == "scorecard":
        fitted = fit_scorecard(x_train, y["train"], x_val, y["validation"], cats, cfg.scorecard, cfg.feature_service)
        seconds["fit"] = time.perf_counter() - t
        say(f"fit: scorecard of {len(fitted.model.columns)} features")
        rating, params, importance = fitted.model, fitted.params, fitted.importance
        extra = {"scorecard_features": float(len(fitted.model.columns))}
        p_val = fitted.model.calibrate(fitted.raw_val)
        tables = {"scorecard": fitted.table}
    else:
        rating, params, importance, p_val, extra, choice = _fit_lightgbm(
            cfg, x_train, x_val, y, cats, lgb_overrides, trials, study_storage, say, seconds,
            rows.loc[masks["validation"], "as_of"])
        tables = {} if choice is None else {"calibration_choice": choice}
    scale = load_rating_scale()
    cap_column = scale.grade_caps.cap_column if scale.grade_caps else None
    rating.set_caps(cap_column, cap_floors(scale))
    p_test, p_train = rating.pd12(x_test), rating.pd12(x_train)

    # the model's own PD (before the §1.3 overrides) is what discrimination, calibration and the gate judge
    metrics: dict[str, float] = {}
    for split, p in (("train", p_train), ("validation", p_val), ("test", p_test)):
        metrics.update({f"{split}_{k}": v for k, v in discrimination(y[split], p).items()})
    grades = calibration_by_grade(y["test"], p_test, scale)
    metrics |= {f"test_{k}": v for k, v in grade_summary(grades, scale).items()}
    metrics["psi_score_validation_to_test"] = psi(p_val, p_test)
    metrics |= extra
    metrics.update({f"test_{k}": v for k, v in oracle_comparison(rows.loc[masks["test"]], p_test, ws).items()})
    # the published monthly rating a bank books against: caps, then two-notch stability
    test_caps = _column(panel.features, cap_column, masks["test"])
    capped = rating.apply_caps(p_test, test_caps)[0]
    published = _published(rows.loc[masks["test"]], capped, test_caps, rating.cap_floors, scale)
    pub_grades = calibration_by_grade(y["test"], published.pd12, scale)
    metrics["test_published_auc"] = discrimination(y["test"], published.pd12)["auc"]
    metrics |= {f"test_published_{k}": v for k, v in grade_summary(pub_grades, scale).items()}
    metrics["test_share_capped"] = float(np.mean(capped > p_test))
    metrics["test_share_held_by_stability"] = float(published.held.mean())
    by_group = _by_group(rows, panel.features, masks, {"train": p_train, "validation": p_val, "test": p_test})
    tables = {**tables, "metrics_by_group": by_group, "calibration_published": pub_grades}
    test_sectors = by_group[(by_group["split"] == "test") & (by_group["dimension"] == "sector")]
    metrics["test_auc_min_sector"] = float(test_sectors["auc"].min())
    metrics["test_psi_max_sector"] = float(test_sectors["psi_vs_train"].max())
    return TrainedRating(model=rating, params=params, metrics=metrics, grade_table=grades, importance=importance,
                         rows=rows, test_pd=p_test, windows={s: _window(rows, s) for s in ("train", "validation", "test")},
                         seconds=seconds, test_y=y["test"], tables=tables)


def _published(rows: pd.DataFrame, p: np.ndarray, cci_cap: np.ndarray,
               floors: tuple[tuple[float, float, str], ...], scale) -> Published:
    """The monthly published series of the test months (§1.3 stability; a newly applying cap is severe)."""
    severe = max((at_most for at_most, _, _ in floors), default=-np.inf)
    exempt = newly_severe(rows["uscc"], rows["as_of"], cci_cap, severe)
    return publish(rows["uscc"], rows["as_of"], p, exempt, scale)


def _column(features, name: str | None, mask: np.ndarray) -> np.ndarray:
    """One feature column for the rows of a split (NaN when the feature service lacks it)."""
    if name is None or name not in features.column_names:
        return np.full(int(mask.sum()), np.nan)
    return features.column(name).filter(mask).to_numpy(zero_copy_only=False)


def _by_group(rows: pd.DataFrame, features, masks: dict[str, np.ndarray],
              pds: dict[str, np.ndarray]) -> pd.DataFrame:
    """AUC / KS / Brier / PSI per as-of year and Zhoushan sector group, for every split."""
    from data.marts.credit_index import zhoushan_sector

    col = "ent_registration__industry_code"
    industry = (features.column(col).to_pandas() if col in features.column_names
                else pd.Series(None, index=range(len(rows)), dtype=object))
    parts = []
    for split, m in masks.items():
        part = pd.DataFrame({"split": split, "y": rows.loc[m, "y"].to_numpy(), "pd": pds[split],
                             "year": pd.to_datetime(rows.loc[m, "as_of"]).dt.year.to_numpy(),
                             "sector": zhoushan_sector(industry[m].reset_index(drop=True)).fillna("unknown").to_numpy()})
        parts.append(part)
    return metrics_by_group(pd.concat(parts, ignore_index=True), pds["train"])


def _fit_lightgbm(cfg: CreditRatingConfig, x_train: pd.DataFrame, x_val: pd.DataFrame, y: dict[str, np.ndarray],
                  cats: dict[str, list[str]], lgb_overrides: dict | None, trials: int, study_storage: str | None,
                  say: Callable[[str], None], seconds: dict[str, float], val_months: pd.Series
                  ) -> tuple[CreditRatingModel, dict[str, object], pd.DataFrame, np.ndarray, dict[str, float],
                             pd.DataFrame | None]:
    """Monotone LightGBM early-stopped and calibrated on the validation months (`calibration: auto` picks
    the calibrator on those months alone, see fitting.choose_calibration).

    Returns (artefact, params, importance by gain, validation PD, LightGBM-only metrics, calibration choice
    table or None)."""
    columns = list(x_train.columns)
    t = time.perf_counter()
    params, rounds, stop = lgb_params(cfg, lgb_overrides)
    if cfg.monotone:
        params["monotone_constraints"] = monotone_constraints(columns, set(cats))
        params["monotone_constraints_method"] = "advanced"
    if trials > 0:      # one Dataset serves every trial: min_data_in_leaf must not pre-filter features
        params["feature_pre_filter"] = False
    dtrain = lgb.Dataset(x_train, y["train"], categorical_feature=list(cats) or "auto", free_raw_data=False,
                         params={"feature_pre_filter": False} if trials > 0 else None)
    dval = lgb.Dataset(x_val, y["validation"], reference=dtrain)
    if trials > 0:
        say(f"tuning: {trials} Optuna trials on the validation months")
        best = tune_lightgbm(params, dtrain, dval, rounds, stop, trials, study_storage, cfg.lightgbm.get("seed", 0))
        params |= best
        seconds["tune"] = time.perf_counter() - t
    booster = fit_early_stopped(params, dtrain, dval, rounds, stop)
    seconds["fit"] = time.perf_counter() - t - seconds.get("tune", 0.0)
    say(f"fit: {booster.best_iteration} trees")

    raw_val = booster.predict(x_val, num_iteration=booster.best_iteration)
    kind, choice = cfg.calibration, None
    if kind == "auto":
        kind, choice = choose_calibration(raw_val, y["validation"], val_months)
        say(f"calibration: {kind} (validation months, 2 folds: most grades inside their bands, then log-loss)")
    calibrator = fit_calibrator(kind, raw_val, y["validation"])
    scale = load_rating_scale()
    codes = load_reason_codes()
    model = CreditRatingModel(
        booster=booster, calibrator=calibrator, columns=columns, categories=cats,
        score_spec=scale.score.model_dump(), grade_uppers=[g.pd_upper for g in scale.grades],
        grade_names=list(scale.grade_names), feature_service=cfg.feature_service,
        column_reason=column_reasons(columns, codes),
        reason_text={r: (t.zh, t.en) for r, t in codes.reasons.items()})
    booster.best_iteration = booster.best_iteration or booster.current_iteration()
    p_val = np.clip(calibrator.predict(raw_val), 1e-5, 1 - 1e-5)
    imp = pd.DataFrame({"feature": columns, "gain": booster.feature_importance("gain")}).sort_values(
        "gain", ascending=False, ignore_index=True)
    params |= {"model_type": "lightgbm", "num_boost_round": rounds, "early_stopping_rounds": stop,
               "optuna_trials": trials, "calibration": kind}
    return model, params, imp, p_val, {"trees": float(booster.best_iteration)}, choice


SEARCH_SPACE = {
    "num_leaves": (7, 63), "min_data_in_leaf": (50, 1000), "learning_rate": (0.01, 0.2),
    "feature_fraction": (0.1, 0.8), "lambda_l2": (0.1, 50.0),
}


def tune_lightgbm(params: dict, dtrain: lgb.Dataset, dval: lgb.Dataset, rounds: int, stop: int, trials: int,
                  storage: str | None, seed: int) -> dict:
    """Optuna TPE search maximising validation AUC, pruning trials whose AUC lags (median pruner).

    The study is kept in `storage` (an Optuna RDB URL) under the name `credit-rating`, so a later run
    continues it and `optuna-dashboard` can show it.
    """
    import optuna

    def objective(trial: optuna.Trial) -> float:
        p = dict(params)
        p["num_leaves"] = trial.suggest_int("num_leaves", *SEARCH_SPACE["num_leaves"], log=True)
        p["min_data_in_leaf"] = trial.suggest_int("min_data_in_leaf", *SEARCH_SPACE["min_data_in_leaf"], log=True)
        p["learning_rate"] = trial.suggest_float("learning_rate", *SEARCH_SPACE["learning_rate"], log=True)
        p["feature_fraction"] = trial.suggest_float("feature_fraction", *SEARCH_SPACE["feature_fraction"])
        p["lambda_l2"] = trial.suggest_float("lambda_l2", *SEARCH_SPACE["lambda_l2"], log=True)

        def report(env: lgb.callback.CallbackEnv) -> None:
            auc = env.evaluation_result_list[0][2]
            trial.report(auc, env.iteration)
            if trial.should_prune():
                raise optuna.TrialPruned()

        booster = fit_early_stopped(p, dtrain, dval, rounds, stop, [report])
        trial.set_user_attr("trees", booster.best_iteration)
        return float(booster.best_score["valid_0"]["auc"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="credit-rating", storage=storage, load_if_exists=True,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10))
    study.optimize(objective, n_trials=trials)
    return dict(study.best_params)


def grade_distribution(p: np.ndarray) -> pd.Series:
    return pd.Series(pd_to_grade(p)).value_counts(normalize=True)
