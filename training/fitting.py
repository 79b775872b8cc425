"""The fitting steps every rating pipeline shares (simulator panel and external tables alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.isotonic import IsotonicRegression

from kernel.errors import ZhouxinError
from training.config import CreditRatingConfig
from training.panel import to_matrix

PD_FLOOR = 1e-5


def lgb_params(cfg: CreditRatingConfig, overrides: dict | None = None) -> tuple[dict, int, int]:
    """LightGBM parameters from the config (+ overrides), with boosting rounds and patience split off."""
    params = dict(cfg.lightgbm) | (overrides or {})
    rounds = int(params.pop("num_boost_round"))
    stop = int(params.pop("early_stopping_rounds"))
    params["metric"] = "auc"
    return params, rounds, stop


def fitting_matrix(table: pa.Table, as_of: pd.Series, cfg: CreditRatingConfig
                   ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The training matrix: columns and categories decided here are reused for every other split."""
    x, cats = to_matrix(table, as_of, max_categories=cfg.features.max_categories)
    if cfg.features.drop_constant:
        keep = [c for c in x.columns if x[c].nunique(dropna=False) > 1]
        x, cats = x[keep], {k: v for k, v in cats.items() if k in keep}
    return x, cats


def fit_early_stopped(params: dict, dtrain: lgb.Dataset, dval: lgb.Dataset, rounds: int, stop: int,
                      callbacks: Sequence[Callable] = ()) -> lgb.Booster:
    """Boost until the validation AUC stops improving for `stop` rounds."""
    return lgb.train(params, dtrain, num_boost_round=rounds, valid_sets=[dval],
                     callbacks=[lgb.early_stopping(stop, verbose=False), *callbacks])


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """PD = sigmoid(a + b raw) fitted on the validation months (unpenalised)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=np.inf, max_iter=1000).fit(np.asarray(raw, dtype=float).reshape(-1, 1), y)
    a, b = float(lr.intercept_[0]), float(lr.coef_[0, 0])
    if not b > 0:
        raise ZhouxinError(f"Platt slope {b:.3f} <= 0: the model does not rank the validation months")
    return a, b


CALIBRATORS = ("isotonic", "cir", "platt")


def fit_calibrator(kind: str, raw_prob: np.ndarray, y: np.ndarray):
    """The booster's calibration map (`.predict(raw probability) -> PD`): isotonic steps, centred isotonic
    (the steps' levels joined at their centres) or Platt on the logit."""
    if kind == "platt":
        from training.rating_model import PlattOnLogit

        q = np.clip(np.asarray(raw_prob, dtype=float), 1e-12, 1 - 1e-12)
        return PlattOnLogit(*fit_platt(np.log(q / (1 - q)), y))
    if kind == "cir":
        from training.rating_model import CenteredIsotonic

        return CenteredIsotonic.fit(raw_prob, y, PD_FLOOR)
    if kind == "isotonic":
        return fit_isotonic(raw_prob, y)
    raise ValueError(f"unknown calibration {kind!r}; one of {', '.join(CALIBRATORS)}")


def choose_calibration(raw_prob: np.ndarray, y: np.ndarray, months: pd.Series,
                       candidates: Sequence[str] = CALIBRATORS) -> tuple[str, pd.DataFrame]:
    """Pick the calibration on the validation months alone: two folds (earlier and later half of the months),
    each calibrator fitted on one half and judged on the other. The rule, fixed in advance: most master-scale
    grades whose observed rate lies inside their PD band (Jeffreys 95%), then the lower mean log-loss."""
    from sklearn.metrics import log_loss

    from training.evaluation import calibration_by_grade, grade_summary

    period = pd.to_datetime(months).dt.to_period("M").to_numpy()
    order = sorted(set(period))
    first = np.isin(period, order[: max(1, len(order) // 2)])
    rows = []
    for kind in candidates:
        inside, losses = 0, []
        for fit_on in (first, ~first):
            if fit_on.all() or not fit_on.any() or len(set(y[fit_on])) < 2:
                continue
            p = np.clip(fit_calibrator(kind, raw_prob[fit_on], y[fit_on]).predict(raw_prob[~fit_on]),
                        PD_FLOOR, 1 - PD_FLOOR)
            inside += int(grade_summary(calibration_by_grade(y[~fit_on], p))["grades_inside"])
            losses.append(log_loss(y[~fit_on], p, labels=[0, 1]))
        rows.append({"calibration": kind, "grades_inside_2fold": inside,
                     "log_loss_2fold": float(np.mean(losses)) if losses else float("nan")})
    table = pd.DataFrame(rows).sort_values(["grades_inside_2fold", "log_loss_2fold"], ascending=[False, True],
                                           ignore_index=True)
    return str(table.loc[0, "calibration"]), table


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    """Monotone map from raw scores to PD, bounded away from 0 and 1."""
    return IsotonicRegression(out_of_bounds="clip", y_min=PD_FLOOR, y_max=1 - PD_FLOOR).fit(raw, y)
