"""The registered WoE-scorecard artefact: bin edges + per-bin log-odds + calibration + master scale.

The explainable challenger to the LightGBM `CreditRatingModel`, with the same public interface (serving
cannot tell them apart). Self-contained on purpose (numpy and pandas; sklearn only for an isotonic
calibrator): it is shipped inside the MLflow model (`code_paths`), and predicting needs neither optbinning
nor the training stage — the bins, WoE and coefficients were copied out of optbinning after fitting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class ScorecardRatingModel(mlflow.pyfunc.PythonModel):
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
        self.columns = columns
        self.categories = categories
        self.splits = {c: [float(s) for s in v] for c, v in splits.items()}
        self.bin_of_code = {c: {int(k): int(b) for k, b in v.items()} for c, v in bin_of_code.items()}
        self.logit = {c: [float(v) for v in vals] for c, vals in logit.items()}
        self.missing_logit = {c: float(v) for c, v in missing_logit.items()}
        self.intercept = float(intercept)
        self.platt = None if platt is None else (float(platt[0]), float(platt[1]))
        self.isotonic = isotonic
        self.score_spec = score_spec
        self.grade_uppers = grade_uppers
        self.grade_names = grade_names
        self.feature_service = feature_service
        self.column_reason = column_reason or {}
        self.reason_text = reason_text or {}
        # the per-column term a contribution is measured from: the best bin (or the train mean)
        self.reason_base = reason_base or {c: min([*self.logit[c], self.missing_logit[c]]) for c in columns}
        self.top_reasons = top_reasons
        self.reason_names = sorted(set(self.column_reason.values()))

    # -- the feature contract (same as CreditRatingModel) ------------------------------------------------
    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Align an input frame with the training columns (missing -> NaN, categories fixed)."""
        out = {}
        for c in self.columns:
            v = frame[c] if c in frame.columns else pd.Series(np.nan, index=frame.index)
            out[c] = pd.Categorical(v, categories=self.categories[c]) if c in self.categories \
                else pd.to_numeric(v, errors="coerce").astype(np.float32)
        return pd.DataFrame(out, index=frame.index)

    def used_columns(self) -> list[str]:
        """Every scorecard column: each has a non-zero coefficient (zero ones were dropped when fitting)."""
        return list(self.columns)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows of {column: value} -> the float matrix over `columns` (categories as codes, absent NaN)."""
        if getattr(self, "_position", None) is None:
            self._position = {c: j for j, c in enumerate(self.columns)}
            self._codes = {c: {v: float(i) for i, v in enumerate(cats)} for c, cats in self.categories.items()}
        x = np.full((len(rows), len(self.columns)), np.nan)
        for i, row in enumerate(rows):
            for c, v in row.items():
                j = self._position.get(c)
                if j is None or v is None:
                    continue
                if c in self._codes:
                    x[i, j] = self._codes[c].get(str(v), np.nan)
                else:
                    try:
                        x[i, j] = float(v)
                    except (TypeError, ValueError):
                        continue
        return x.astype(np.float32).astype(np.float64)     # the training matrix was float32

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
            p = self.isotonic.predict(raw)
        return np.clip(p, 1e-5, 1 - 1e-5)

    def pd12(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.calibrate(self.raw(frame))

    def score(self, p: np.ndarray) -> np.ndarray:
        s = self.score_spec
        raw = s["base_points"] + s["pdo"] / np.log(2) * np.log(((1 - p) / p) / s["base_odds"])
        return np.clip(np.round(raw), s["min"], s["max"])

    def grade(self, p: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(np.asarray(self.grade_uppers), p, side="right")
        return np.asarray(self.grade_names, dtype=object)[np.minimum(idx, len(self.grade_names) - 1)]

    def reasons(self, frame: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Top business reasons raising each firm's PD: each column's log-odds term above its baseline (the
        best bin — the points the firm lost there — or the train mean), summed within each reason; only reasons
        whose sum is positive (that push the PD up) are listed."""
        k = self.top_reasons
        cols = [f"reason_{i + 1}" for i in range(k)]
        index_ = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(len(frame))
        if not self.reason_names:
            return pd.DataFrame({c: [None] * len(frame) for c in cols}, index=index_)
        contrib = self.terms(frame) - np.array([self.reason_base[c] for c in self.columns])
        index = {r: i for i, r in enumerate(self.reason_names)}
        member = np.zeros((len(self.columns), len(self.reason_names)))
        for j, c in enumerate(self.columns):
            if c in self.column_reason:
                member[j, index[self.column_reason[c]]] = 1.0
        by_reason = contrib @ member
        order = np.argsort(-by_reason, axis=1, kind="stable")[:, :k]
        out: dict[str, Any] = {}
        for i, c in enumerate(cols):
            if i >= order.shape[1]:                    # fewer business reasons than slots
                out[c] = np.full(len(frame), None, dtype=object)
                continue
            pick = order[:, i]
            up = by_reason[np.arange(len(frame)), pick] > 1e-9
            out[c] = np.where(up, np.asarray(self.reason_names, dtype=object)[pick], None)
        return pd.DataFrame(out, index=index_)

    def reason_texts(self, code: str | None) -> tuple[str, str] | None:
        """(zh, en) text of a reason code."""
        return None if code is None else tuple(self.reason_text.get(code, (code, code)))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        p = self.pd12(model_input)
        out = pd.DataFrame({"pd12": p, "score": self.score(p), "grade": self.grade(p)}, index=model_input.index)
        return out.join(self.reasons(model_input))
