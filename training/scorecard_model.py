"""The registered WoE-scorecard artefact: bin edges + per-bin log-odds + calibration + master scale.

The explainable challenger to the LightGBM `CreditRatingModel`: both are `RatingArtefact`s (same feature
contract, scale, reason ranking and predict), so serving cannot tell them apart. Predicting needs numpy and
pandas (sklearn only for an isotonic calibrator), never optbinning nor the training stage: the bins, WoE and
coefficients were copied out of optbinning after fitting, and both modules are pickled by value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.rating_model import RatingArtefact, calibrate


class ScorecardRatingModel(RatingArtefact):
    """predict(frame of model-matrix columns) -> pd12, score, grade, reason_1..k (business reason codes).

    Per column j: numeric `splits[j]` (bin b holds splits[b-1] <= x < splits[b]) or, for a categorical
    column, `bin_of_code[j]` (category code -> bin); `logit[j][b]` is the bin's term in the log-odds of
    default (coefficient x WoE) and `missing_logit[j]` the term of a missing (or unseen) value.
    raw = intercept + sum_j logit_j; PD = calibration(raw): Platt (pd = sigmoid(a + b raw)) or isotonic.
    """

    def __init__(self, columns: list[str], categories: dict[str, list[str]], splits: dict[str, list[float]],
                 bin_of_code: dict[str, dict[int, int]], logit: dict[str, list[float]],
                 missing_logit: dict[str, float], intercept: float, platt: tuple[float, float] | None,
                 isotonic: Any, score_spec: dict[str, float], grade_uppers: list[float], grade_names: list[str],
                 feature_service: str, column_reason: dict[str, str] | None = None,
                 reason_text: dict[str, tuple[str, str]] | None = None, reason_base: dict[str, float] | None = None,
                 top_reasons: int = 3) -> None:
        self._set_contract(columns, categories, score_spec, grade_uppers, grade_names, feature_service,
                           column_reason, reason_text, top_reasons)
        self.splits = {c: [float(s) for s in v] for c, v in splits.items()}
        self.bin_of_code = {c: {int(k): int(b) for k, b in v.items()} for c, v in bin_of_code.items()}
        self.logit = {c: [float(v) for v in vals] for c, vals in logit.items()}
        self.missing_logit = {c: float(v) for c, v in missing_logit.items()}
        self.intercept = float(intercept)
        self.platt = None if platt is None else (float(platt[0]), float(platt[1]))
        self.isotonic = isotonic
        # the per-column term a contribution is measured from: the best bin (or the train mean)
        self.reason_base = reason_base or {c: min([*self.logit[c], self.missing_logit[c]]) for c in columns}

    def used_columns(self) -> list[str]:
        """Every scorecard column: each has a non-zero coefficient (zero ones were dropped when fitting)."""
        return list(self.columns)

    def _numeric(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(frame, np.ndarray):
            return np.asarray(frame, dtype=np.float64)
        m = self.matrix(frame)
        cols = [m[c].cat.codes.to_numpy().astype(np.float64) if c in self.categories
                else m[c].to_numpy(dtype=np.float64) for c in self.columns]
        x = np.column_stack(cols) if cols else np.empty((len(frame), 0))
        for j, c in enumerate(self.columns):
            if c in self.categories:
                x[x[:, j] < 0, j] = np.nan                  # pandas' code of a missing category is -1
        return x

    # -- the scorecard ------------------------------------------------------------------------------------
    def terms(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per row and column: the column's term in the raw log-odds of default (coefficient x WoE)."""
        x = self._numeric(frame)
        out = np.empty_like(x)
        for j, c in enumerate(self.columns):
            v, table = x[:, j], np.asarray(self.logit[c])
            miss = np.isnan(v)
            if c in self.bin_of_code:
                lut = np.full(len(self.categories.get(c, [])) + 1, -1, dtype=np.int64)   # last slot: not a code
                for code, b_ in self.bin_of_code[c].items():
                    if 0 <= code < len(lut) - 1:
                        lut[code] = b_
                codes = np.where(miss | (v < 0) | (v >= len(lut) - 1), len(lut) - 1, np.nan_to_num(v))
                b = lut[codes.astype(np.int64)]
            else:
                b = np.searchsorted(np.asarray(self.splits[c]), np.where(miss, 0.0, v), side="right")
                b[miss] = -1
            out[:, j] = np.where(b >= 0, table[np.clip(b, 0, len(table) - 1)], self.missing_logit[c])
        return out

    def raw(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The uncalibrated log-odds of default: intercept plus the sum of the column terms."""
        return self.intercept + self.terms(frame).sum(axis=1)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.platt is not None:
            a, b = self.platt
            p = 1.0 / (1.0 + np.exp(-(a + b * np.asarray(raw))))
        else:
            p = calibrate(self.isotonic, raw)
        return np.clip(p, 1e-5, 1 - 1e-5)

    def pd12(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.calibrate(self.raw(frame))

    def reasons(self, frame: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Top business reasons raising each firm's PD: each column's log-odds term above its baseline (the
        best bin — the points the firm lost there — or the train mean), summed within each reason; only reasons
        whose sum is positive (that push the PD up) are listed."""
        index_ = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(len(frame))
        if not self.reason_names:
            return self._no_reasons(index_)
        contrib = self.terms(frame) - np.array([self.reason_base[c] for c in self.columns])
        return self._rank_reasons(contrib, index_, stable=True)
