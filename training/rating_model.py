"""The registered credit-rating artefact: booster + calibration + master scale + feature contract.

Self-contained on purpose (numpy, pandas, lightgbm, sklearn only): it is pickled by value into the MLflow
model, so serving loads PD -> score -> grade without importing the training stage. `RatingArtefact` is the
part every rating model shares (the scorecard in scorecard_model.py builds on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


def _floats(values: Any, n: int) -> np.ndarray:
    """Values (a scalar, a list with None, an array) as n floats; anything not a number becomes NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return np.broadcast_to(values.astype(float), (n,)).copy()
    items = list(values) if isinstance(values, list | tuple | np.ndarray | pd.Series) else [values] * n
    out = np.full(n, np.nan)
    for i, v in enumerate(items):
        with contextlib.suppress(TypeError, ValueError):
            out[i] = np.nan if v is None else float(v)
    return out


class RatingArtefact(mlflow.pyfunc.PythonModel):
    """What every registered rating model shares, whatever computes its PD: the feature contract
    (`columns`, `categories`, `matrix`, `encode`), the master scale (`score`, `grade`), the ranking of
    per-column contributions into business reasons, and `predict`. Subclasses provide `pd12`, `reasons`
    and `used_columns`."""

    columns: list[str]
    categories: dict[str, list[str]]
    score_spec: dict[str, float]
    grade_uppers: list[float]
    grade_names: list[str]
    column_reason: dict[str, str]
    reason_names: list[str]
    cap_column: str | None = None                          # §1.3 caps: the firm's credit-index veto cap
    cap_floors: tuple[tuple[float, float, str], ...] = ()  # (cap at most, PD floor, reason), worst first

    def _set_contract(self, columns: list[str], categories: dict[str, list[str]], score_spec: dict[str, float],
                      grade_uppers: list[float], grade_names: list[str], feature_service: str,
                      column_reason: dict[str, str] | None, reason_text: dict[str, tuple[str, str]] | None,
                      top_reasons: int) -> None:
        """The attributes every rating artefact carries, set the same way by each subclass's constructor."""
        self.columns = columns
        self.categories = categories
        self.score_spec = score_spec
        self.grade_uppers = grade_uppers
        self.grade_names = grade_names
        self.feature_service = feature_service
        self.column_reason = column_reason or {}
        self.reason_text = reason_text or {}
        self.top_reasons = top_reasons
        self.reason_names = sorted(set(self.column_reason.values()))

    def set_caps(self, cap_column: str | None, floors: Sequence[tuple[float, float, str]]) -> None:
        """Attach the §1.3 grade caps (training.scale.cap_floors) to this artefact."""
        self.cap_column = cap_column
        self.cap_floors = tuple((float(a), float(f), str(r)) for a, f, r in floors)

    def apply_caps(self, p: np.ndarray, cci_cap: Any) -> tuple[np.ndarray, np.ndarray]:
        """§1.3 overrides: a scored firm under a credit-index veto cap is rated no better than the cap's grade.

        Returns (PD raised to the floor of the worst applicable cap, that cap's reason code or None). A
        missing cap value (None/NaN) means no cap applies. Artefacts registered before caps existed cap nothing.
        """
        out = np.asarray(p, dtype=float).copy()
        reason = np.full(len(out), None, dtype=object)
        floors = getattr(self, "cap_floors", ())
        if not floors:
            return out, reason
        cap = _floats(cci_cap, len(out))
        for at_most, floor, code in floors:             # worst floor first: the first rule that applies wins
            hit = (cap <= at_most) & pd.isna(reason)
            out = np.where(hit, np.maximum(out, floor), out)
            reason = np.where(hit, code, reason)
        return out, reason

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Align an input frame with the training columns (missing -> NaN, categories fixed)."""
        out = {}
        for c in self.columns:
            v = frame[c] if c in frame.columns else pd.Series(np.nan, index=frame.index)
            out[c] = pd.Categorical(v, categories=self.categories[c]) if c in self.categories \
                else pd.to_numeric(v, errors="coerce").astype(np.float32)
        return pd.DataFrame(out, index=frame.index)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows of {column: value} -> the float matrix LightGBM reads (categories as their codes, absent NaN).

        The serving fast path: no DataFrame of every training column is built, only the values given.
        """
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

    def score(self, p: np.ndarray) -> np.ndarray:
        s = self.score_spec
        raw = s["base_points"] + s["pdo"] / np.log(2) * np.log(((1 - p) / p) / s["base_odds"])
        return np.clip(np.round(raw), s["min"], s["max"])

    def grade(self, p: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(np.asarray(self.grade_uppers), p, side="right")
        return np.asarray(self.grade_names, dtype=object)[np.minimum(idx, len(self.grade_names) - 1)]

    def _no_reasons(self, index: pd.Index) -> pd.DataFrame:
        k = getattr(self, "top_reasons", 3)
        return pd.DataFrame({f"reason_{i + 1}": [None] * len(index) for i in range(k)}, index=index)

    def _membership(self) -> np.ndarray:
        """columns x reasons 0/1 matrix, built once per loaded artefact (not pickled: derived)."""
        member = self.__dict__.get("_member")
        if member is None:
            position = {r: i for i, r in enumerate(self.reason_names)}
            member = np.zeros((len(self.columns), len(self.reason_names)))
            for j, c in enumerate(self.columns):
                if c in self.column_reason:
                    member[j, position[self.column_reason[c]]] = 1.0
            self.__dict__["_member"] = member
        return member

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the caches derived on first use (membership, column positions)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_member", "_position", "_codes")}

    def _rank_reasons(self, contrib: np.ndarray, index: pd.Index, stable: bool = False) -> pd.DataFrame:
        """Per-column contributions to the log-odds -> the top business reasons that push the PD up
        (summed within each reason; a reason with no positive sum is not listed)."""
        k = getattr(self, "top_reasons", 3)
        by_reason = contrib @ self._membership()
        order = np.argsort(-by_reason, axis=1, kind="stable" if stable else None)[:, :k]
        n = len(index)
        out: dict[str, Any] = {}
        for i in range(k):
            col = f"reason_{i + 1}"
            if i >= order.shape[1]:                    # fewer business reasons than slots
                out[col] = np.full(n, None, dtype=object)
                continue
            pick = order[:, i]
            up = by_reason[np.arange(n), pick] > 1e-9
            out[col] = np.where(up, np.asarray(self.reason_names, dtype=object)[pick], None)
        return pd.DataFrame(out, index=index)

    def reason_texts(self, code: str | None) -> tuple[str, str] | None:
        """(zh, en) text of a reason code."""
        return None if code is None else tuple(getattr(self, "reason_text", {}).get(code, (code, code)))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """pd12 / score / grade after the §1.3 caps (read from the cap column when the input has it), the
        model's own PD, the cap's reason, and the top business reasons."""
        model_pd = self.pd12(model_input)
        col = getattr(self, "cap_column", None)
        caps = model_input[col].to_numpy() if col and col in model_input.columns else np.full(len(model_pd), np.nan)
        p, cap_reason = self.apply_caps(model_pd, caps)
        out = pd.DataFrame({"pd12": p, "score": self.score(p), "grade": self.grade(p), "model_pd12": model_pd,
                            "cap_reason": cap_reason}, index=model_input.index)
        return out.join(self.reasons(model_input))


def calibrate(calibrator: Any, raw: np.ndarray) -> np.ndarray:
    """The calibrator's map. A fitted isotonic regression (clip out of bounds) is evaluated with np.interp on
    its thresholds, the same linear interpolation sklearn's predict does without its per-call validation
    (a tenth of a millisecond that a one-firm answer notices)."""
    xs, ys = getattr(calibrator, "X_thresholds_", None), getattr(calibrator, "y_thresholds_", None)
    if xs is None or ys is None or getattr(calibrator, "out_of_bounds", None) != "clip" or len(xs) < 2:
        return calibrator.predict(raw)
    return np.interp(np.asarray(raw, dtype=float), xs, ys)


class CenteredIsotonic:
    """Centred isotonic regression (Oron & Flournoy 2017): the isotonic fit's block levels placed at each
    block's mean raw score and joined linearly. Still monotone and calibrated block by block, but firms inside
    a wide block (the best third of the population often is one) are no longer tied, so the fine grades at
    the top of the scale are reachable. Flat beyond the outer block centres."""

    def __init__(self, knots_x: np.ndarray, knots_y: np.ndarray) -> None:
        self.knots_x, self.knots_y = np.asarray(knots_x, dtype=float), np.asarray(knots_y, dtype=float)

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, floor: float = 1e-5) -> CenteredIsotonic:
        from sklearn.isotonic import IsotonicRegression

        raw = np.asarray(raw, dtype=float)
        level = IsotonicRegression(out_of_bounds="clip").fit(raw, y).predict(raw)
        blocks = pd.DataFrame({"x": raw, "level": level}).groupby("level", sort=True)["x"].mean()
        return cls(blocks.to_numpy(), np.clip(blocks.index.to_numpy(dtype=float), floor, 1 - floor))

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if len(self.knots_x) == 1:
            return np.full(np.shape(raw), self.knots_y[0])
        return np.interp(np.asarray(raw, dtype=float), self.knots_x, self.knots_y)


class PlattOnLogit:
    """Platt scaling of a booster's probability: PD = sigmoid(a + b logit(p)). Two parameters, so the PD is
    continuous and every grade of the scale can be reached, where isotonic steps pool the best firms."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = float(a), float(b)

    def predict(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
        return 1.0 / (1.0 + np.exp(-(self.a + self.b * np.log(q / (1 - q)))))


class CreditRatingModel(RatingArtefact):
    """predict(frame of model-matrix columns) -> pd12, score, grade, reason_1..k (business reason codes)."""

    def __init__(self, booster: Any, calibrator: Any, columns: list[str], categories: dict[str, list[str]],
                 score_spec: dict[str, float], grade_uppers: list[float], grade_names: list[str],
                 feature_service: str, column_reason: dict[str, str] | None = None,
                 reason_text: dict[str, tuple[str, str]] | None = None, top_reasons: int = 3) -> None:
        self.booster = booster
        self.calibrator = calibrator
        self._set_contract(columns, categories, score_spec, grade_uppers, grade_names, feature_service,
                           column_reason, reason_text, top_reasons)

    def used_columns(self) -> list[str]:
        """The columns the booster splits on: all a caller needs to fetch (the rest only ever add zero)."""
        used = np.asarray(self.booster.feature_importance("split")) > 0
        return [c for c, u in zip(self.columns, used, strict=True) if u]

    def pd12(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        x = frame if isinstance(frame, np.ndarray) else self.matrix(frame)
        raw = self.booster.predict(x)
        return np.clip(calibrate(self.calibrator, raw), 1e-5, 1 - 1e-5)

    def reasons(self, frame: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Top business reasons raising each firm's PD: the model's per-column contributions (TreeSHAP on
        the log-odds) summed within each reason; only reasons that push the PD up are listed."""
        index_ = frame.index if isinstance(frame, pd.DataFrame) else pd.RangeIndex(len(frame))
        if not getattr(self, "reason_names", None):     # artefacts logged before reason codes have none
            return self._no_reasons(index_)
        x = frame if isinstance(frame, np.ndarray) else self.matrix(frame)
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True))[:, :-1]
        return self._rank_reasons(contrib, index_)
