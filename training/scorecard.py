"""Fit the WoE scorecard challenger (optbinning): the explainable alternative to the monotone LightGBM.

Train months only decide everything about the scorecard: a quick quantile-IV screen of every column, then
optimal binning (optbinning's `BinningProcess`) of the best candidates with monotonic event-rate trends
from the declared risk directions (`training.monotone`), then the features with the highest IV that are not
too correlated with a stronger one, then an L2 logistic regression on their WoE (a feature whose
coefficient has the wrong sign — riskier with a safer WoE, a collinearity artefact — is dropped and the
rest refitted). The validation months only calibrate (Platt or isotonic), as they do for LightGBM.

The result is copied out of optbinning into `ScorecardRatingModel` (bin edges, per-bin log-odds terms), and
into a scorecard table whose points add up to the served score (Platt calibration): score = base points +
the points of the firm's bin in each feature, before rounding and clipping to the scale's range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from kernel.errors import ZhouxinError
from training.config import ScorecardSpec
from training.fitting import fit_isotonic, fit_platt
from training.monotone import monotone_constraints
from training.reasons import ReasonCodes, column_reasons, load_reason_codes
from training.scale import RatingScale, load_rating_scale
from training.scorecard_model import ScorecardRatingModel

TABLE_COLUMNS = ["feature", "reason", "bin", "lower", "upper", "count", "events", "event_rate", "woe", "coefficient",
                 "logit", "points"]
_TREND = {1: "ascending", -1: "descending"}    # event rate vs value: +1 = a higher value means more risk


@dataclass
class FittedScorecard:
    """The artefact plus what the registry logs for it."""

    model: ScorecardRatingModel
    table: pd.DataFrame        # feature, reason, bin, lower, upper, count, events, event_rate, woe, ..., points
    importance: pd.DataFrame   # feature, gain (sd of its log-odds term over train rows), iv, coefficient
    params: dict[str, object]
    raw_val: np.ndarray        # uncalibrated log-odds on the validation rows


def numeric_column(x: pd.DataFrame, c: str) -> np.ndarray:
    """A matrix column as float64 (categories as their codes, missing NaN) — what `encode` gives serving."""
    s = x[c]
    if isinstance(s.dtype, pd.CategoricalDtype):
        v = s.cat.codes.to_numpy().astype(np.float64)
        v[v < 0] = np.nan
        return v
    return s.to_numpy(dtype=np.float64)


def quantile_iv(v: np.ndarray, y: np.ndarray, bins: int, categorical: bool = False) -> float:
    """Information value over quantile bins (or categories) plus a missing bin: a cheap screen, not a fit."""
    ok = ~np.isnan(v)
    if ok.sum() == 0:
        return 0.0
    if categorical:
        b = np.where(ok, np.nan_to_num(v), -1).astype(np.int64) + 1
    else:
        edges = np.unique(np.quantile(v[ok], np.linspace(0, 1, bins + 1)[1:-1]))
        b = np.where(ok, np.searchsorted(edges, np.nan_to_num(v), side="right") + 1, 0)
    n = np.bincount(b)
    ev = np.bincount(b, weights=y, minlength=len(n))
    keep = n > 0
    n, ev = n[keep], ev[keep]
    if keep.sum() < 2:
        return 0.0
    ne = n - ev
    pe = (ev + 0.5) / (ev.sum() + 0.5 * len(n))
    pn = (ne + 0.5) / (ne.sum() + 0.5 * len(n))
    return float(np.sum((pn - pe) * np.log(pn / pe)))


def screen(x: pd.DataFrame, y: np.ndarray, categories: dict[str, list[str]], spec: ScorecardSpec) -> pd.Series:
    """Quantile IV of every column (train rows), highest first, cut to the candidates optbinning will bin."""
    iv = {c: quantile_iv(numeric_column(x, c), y, spec.screen_bins, c in categories) for c in x.columns}
    return pd.Series(iv).sort_values(ascending=False, kind="stable").head(spec.screen_candidates)


def trends(columns: list[str], categories: dict[str, list[str]], spec: ScorecardSpec) -> dict[str, str]:
    """optbinning monotonic_trend per numeric column: from the declared risk direction, else the default."""
    signs = monotone_constraints(columns, set(categories))
    return {c: _TREND.get(s, spec.undeclared_trend) for c, s in zip(columns, signs, strict=True)
            if c not in categories}


@dataclass
class _Binned:
    """One optimally binned column, as the artefact needs it (plus the table rows for the report)."""

    splits: list[float]
    bin_of_code: dict[int, int] | None
    woe: list[float]
    missing_woe: float
    iv: float
    rows: pd.DataFrame


def bin_columns(x: pd.DataFrame, y: np.ndarray, columns: list[str], categories: dict[str, list[str]],
                trend: dict[str, str], spec: ScorecardSpec) -> dict[str, _Binned]:
    """Optimal binning of the candidate columns (train rows) with optbinning's BinningProcess."""
    from optbinning import BinningProcess

    frame = pd.DataFrame({c: numeric_column(x, c) for c in columns})
    cats = [c for c in columns if c in categories]
    bp = BinningProcess(columns, max_n_prebins=spec.max_n_prebins, min_bin_size=spec.min_bin_size,
                        max_n_bins=spec.max_n_bins, categorical_variables=cats or None,
                        binning_fit_params={c: {"monotonic_trend": t} for c, t in trend.items() if c in columns},
                        n_jobs=1)
    bp.fit(frame, y)
    return {c: _extract(bp.get_binned_variable(c), categories.get(c)) for c in columns}


def _extract(ob, names: list[str] | None) -> _Binned:
    bt = ob.binning_table.build()
    body = bt.drop(index="Totals", errors="ignore")
    n_bins = len(ob.splits) if names is not None else len(ob.splits) + 1
    bins, missing = body.iloc[:n_bins], body.iloc[n_bins + 1]          # between them: the (empty) Special bin
    if [str(body.iloc[n_bins]["Bin"]), str(missing["Bin"])] != ["Special", "Missing"]:
        raise ZhouxinError(f"{ob.name}: unexpected optbinning table layout (Special, Missing rows not found)")
    if names is None:
        bin_of_code, splits = None, [float(s) for s in ob.splits]
        edges = [-np.inf, *splits, np.inf]
        lower, upper = edges[:-1], edges[1:]
        labels = [f"{'(' if lo == -np.inf else '['}{lo:.6g}, {hi:.6g})" for lo, hi in zip(lower, upper, strict=True)]
    else:
        bin_of_code = {int(code): b for b, group in enumerate(ob.splits) for code in group}
        splits, lower, upper = [], [np.nan] * n_bins, [np.nan] * n_bins
        labels = [", ".join(names[int(code)] for code in group) for group in ob.splits]
    rows = pd.DataFrame({"bin": [*labels, "Missing"], "lower": [*lower, np.nan], "upper": [*upper, np.nan],
                         "count": [*bins["Count"], missing["Count"]], "events": [*bins["Event"], missing["Event"]],
                         "event_rate": [*bins["Event rate"], missing["Event rate"]],
                         "woe": [*bins["WoE"], missing["WoE"]]})
    return _Binned(splits=splits, bin_of_code=bin_of_code, woe=[float(w) for w in bins["WoE"]],
                   missing_woe=float(missing["WoE"]), iv=float(bt.loc["Totals", "IV"]), rows=rows)


def _woe_model(binned: dict[str, _Binned], columns: list[str], categories: dict[str, list[str]], scale: RatingScale,
               coef: dict[str, float] | None = None, intercept: float = 0.0, **kw) -> ScorecardRatingModel:
    """An artefact whose column terms are coefficient x WoE (coefficient 1: the WoE itself, which lets the
    fitting read WoE through exactly the transform serving uses)."""
    k = coef or dict.fromkeys(columns, 1.0)
    return ScorecardRatingModel(
        columns=columns, categories={c: categories[c] for c in columns if c in categories},
        splits={c: binned[c].splits for c in columns},
        bin_of_code={c: binned[c].bin_of_code for c in columns if binned[c].bin_of_code is not None},
        logit={c: [k[c] * w for w in binned[c].woe] for c in columns},
        missing_logit={c: k[c] * binned[c].missing_woe for c in columns}, intercept=intercept,
        score_spec=scale.score.model_dump(), grade_uppers=[g.pd_upper for g in scale.grades],
        grade_names=list(scale.grade_names), **({"platt": None, "isotonic": None, "feature_service": ""} | kw))


def select(woe: np.ndarray, columns: list[str], iv: dict[str, float], spec: ScorecardSpec) -> list[str]:
    """Highest IV first; skip a column below min_iv or whose WoE correlates too much with one already kept."""
    order = sorted(range(len(columns)), key=lambda j: -iv[columns[j]])
    kept: list[int] = []
    for j in order:
        if len(kept) >= spec.max_features:
            break
        if iv[columns[j]] < spec.min_iv or np.std(woe[:, j]) == 0:
            continue
        if kept:
            r = np.corrcoef(woe[:, [j, *kept]], rowvar=False)[0, 1:]
            if np.nanmax(np.abs(r)) > spec.max_correlation:
                continue
        kept.append(j)
    return [columns[j] for j in kept]


def fit_logistic(woe: np.ndarray, y: np.ndarray, columns: list[str], c: float) -> tuple[float, dict[str, float]]:
    """L2 logistic regression of default on WoE; drop wrong-signed columns (coefficient >= 0: with
    optbinning's WoE = ln(non-event share / event share), a higher WoE must mean a lower PD) and refit."""
    keep = list(range(len(columns)))
    while keep:
        lr = LogisticRegression(C=c, max_iter=2000).fit(woe[:, keep], y)
        coef = lr.coef_[0]
        if (coef < 0).all():
            return float(lr.intercept_[0]), {columns[j]: float(b) for j, b in zip(keep, coef, strict=True)}
        keep.pop(int(np.argmax(coef)))
    raise ZhouxinError("the scorecard kept no feature: every coefficient had the wrong sign")


def fit_scorecard(x_train: pd.DataFrame, y_train: np.ndarray, x_val: pd.DataFrame, y_val: np.ndarray,
                  categories: dict[str, list[str]], spec: ScorecardSpec, feature_service: str,
                  scale: RatingScale | None = None, codes: ReasonCodes | None = None) -> FittedScorecard:
    """Screen, bin, select and fit on the train rows; calibrate on the validation rows."""
    scale, codes = scale or load_rating_scale(), codes or load_reason_codes()
    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    screened = screen(x_train, y_train, categories, spec)
    candidates = list(screened.index)
    binned = bin_columns(x_train, y_train, candidates, categories, trends(candidates, categories, spec), spec)
    woe = _woe_model(binned, candidates, categories, scale).terms(x_train[candidates])
    chosen = select(woe, candidates, {c: b.iv for c, b in binned.items()}, spec)
    if not chosen:
        raise ZhouxinError(f"no column reaches the scorecard's min_iv {spec.min_iv} on the train months")
    idx = [candidates.index(c) for c in chosen]
    intercept, coef = fit_logistic(woe[:, idx], y_train, chosen, spec.logistic_c)
    columns = [c for c in chosen if c in coef]

    proto = _woe_model(binned, columns, categories, scale, coef, intercept)
    raw_val = proto.raw(x_val[columns])
    platt = fit_platt(raw_val, y_val) if spec.calibration == "platt" else None
    iso = fit_isotonic(raw_val, y_val) if spec.calibration == "isotonic" else None
    reason = column_reasons(columns, codes)
    terms = proto.terms(x_train[columns])
    base = (dict(zip(columns, terms.mean(axis=0), strict=True)) if spec.reason_baseline == "mean" else None)
    model = _woe_model(binned, columns, categories, scale, coef, intercept, platt=platt, isotonic=iso,
                       feature_service=feature_service, column_reason=reason,
                       reason_text={r: (t.zh, t.en) for r, t in codes.reasons.items()},
                       reason_base=base, top_reasons=spec.top_reasons)
    importance = pd.DataFrame({"feature": columns, "gain": terms.std(axis=0),
                               "iv": [binned[c].iv for c in columns], "coefficient": [coef[c] for c in columns]}
                              ).sort_values("gain", ascending=False, ignore_index=True)
    params: dict[str, object] = {"model_type": "scorecard", "screened_columns": x_train.shape[1],
                                 "binned_candidates": len(candidates), "scorecard_features": len(columns)}
    params |= {f"scorecard_{k}": v for k, v in spec.model_dump().items()}
    return FittedScorecard(model=model, table=scorecard_table(model, binned, coef, scale), importance=importance,
                           params=params, raw_val=raw_val)


def scorecard_table(model: ScorecardRatingModel, binned: dict[str, _Binned], coef: dict[str, float],
                    scale: RatingScale) -> pd.DataFrame:
    """feature, reason, bin, ..., woe, coefficient, logit (term in the log-odds of default), points.

    Points per bin are the score points above the feature's worst bin; the `(base)` row holds the rest, so
    with Platt calibration score = base + the firm's points (before rounding and clipping). With isotonic
    calibration the points are on the uncalibrated scale (the served score is monotone in their sum).
    """
    s = scale.score
    factor = s.pdo / np.log(2)
    a, b = model.platt or (0.0, 1.0)
    parts, worst_total = [], 0.0
    for c in model.columns:
        t = binned[c].rows.copy()
        t["logit"] = coef[c] * t["woe"]
        reachable = (t["count"] > 0).to_numpy()
        reachable[-1] = True                                        # the Missing row: always possible
        worst = float(t.loc[reachable, "logit"].max())
        worst_total += worst
        t["points"] = factor * b * (worst - t["logit"])
        parts.append(t.assign(feature=c, reason=model.column_reason.get(c), coefficient=coef[c]))
    base_points = s.base_points - factor * np.log(s.base_odds) - factor * (a + b * (model.intercept + worst_total))
    base = pd.DataFrame([{"feature": "(base)", "bin": "", "points": base_points}])
    return pd.concat([base, *parts], ignore_index=True)[TABLE_COLUMNS]
