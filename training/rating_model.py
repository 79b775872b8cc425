"""The registered credit-rating artefact: booster + calibration + master scale + feature contract.

Self-contained on purpose (numpy, pandas, lightgbm, sklearn only): it is shipped inside the MLflow model
(`code_paths`), so serving loads PD -> score -> grade without importing the training stage.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class CreditRatingModel(mlflow.pyfunc.PythonModel):
    """predict(frame of model-matrix columns) -> pd12, score, grade."""

    def __init__(self, booster: Any, calibrator: Any, columns: list[str], categories: dict[str, list[str]],
                 score_spec: dict[str, float], grade_uppers: list[float], grade_names: list[str],
                 feature_service: str) -> None:
        self.booster = booster
        self.calibrator = calibrator
        self.columns = columns
        self.categories = categories
        self.score_spec = score_spec
        self.grade_uppers = grade_uppers
        self.grade_names = grade_names
        self.feature_service = feature_service

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Align an input frame with the training columns (missing -> NaN, categories fixed)."""
        out = {}
        for c in self.columns:
            v = frame[c] if c in frame.columns else pd.Series(np.nan, index=frame.index)
            out[c] = pd.Categorical(v, categories=self.categories[c]) if c in self.categories \
                else pd.to_numeric(v, errors="coerce").astype(np.float32)
        return pd.DataFrame(out, index=frame.index)

    def pd12(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.booster.predict(self.matrix(frame))
        return np.clip(self.calibrator.predict(raw), 1e-5, 1 - 1e-5)

    def score(self, p: np.ndarray) -> np.ndarray:
        s = self.score_spec
        raw = s["base_points"] + s["pdo"] / np.log(2) * np.log(((1 - p) / p) / s["base_odds"])
        return np.clip(np.round(raw), s["min"], s["max"])

    def grade(self, p: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(np.asarray(self.grade_uppers), p, side="right")
        return np.asarray(self.grade_names, dtype=object)[np.minimum(idx, len(self.grade_names) - 1)]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        p = self.pd12(model_input)
        return pd.DataFrame({"pd12": p, "score": self.score(p), "grade": self.grade(p)}, index=model_input.index)
