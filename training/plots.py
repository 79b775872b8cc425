"""Evaluation plots of a rating model as self-contained HTML (plotly): ROC, calibration by grade, grade
distribution, feature importance. Logged as MLflow artefacts so every version carries its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import roc_curve


def roc_figure(y: np.ndarray, p: np.ndarray, title: str) -> go.Figure:
    fpr, tpr, _ = roc_curve(y, p)
    fig = go.Figure([go.Scatter(x=fpr, y=tpr, name="model"),
                     go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot"})])
    return fig.update_layout(title=title, xaxis_title="false-positive rate", yaxis_title="true-positive rate")


def calibration_figure(grades: pd.DataFrame) -> go.Figure:
    g = grades[grades["n"] > 0]
    fig = go.Figure([
        go.Bar(x=g["grade"], y=g["band_hi"] - g["band_lo"], base=g["band_lo"], name="PD band", opacity=0.3),
        go.Scatter(x=g["grade"], y=g["observed"], mode="markers", name="observed (Jeffreys 95%)",
                   error_y={"type": "data", "symmetric": False, "array": g["jeffreys_hi"] - g["observed"],
                            "arrayminus": g["observed"] - g["jeffreys_lo"]}),
        go.Scatter(x=g["grade"], y=g["mean_pd"], mode="markers", name="mean PD", marker={"symbol": "x"})])
    return fig.update_layout(title="Calibration by grade (test months)", yaxis_type="log",
                             yaxis_title="12-month event rate")


def grade_figure(grades: pd.DataFrame, expected: dict[str, float]) -> go.Figure:
    fig = go.Figure([go.Bar(x=grades["grade"], y=grades["share"], name="test months"),
                     go.Bar(x=list(expected), y=list(expected.values()), name="master-scale expectation")])
    return fig.update_layout(title="Grade distribution", yaxis_tickformat=".0%", barmode="group")


def importance_figure(importance: pd.DataFrame, top: int = 30) -> go.Figure:
    t = importance.head(top).iloc[::-1]
    return go.Figure(go.Bar(x=t["gain"], y=t["feature"], orientation="h")).update_layout(
        title=f"Top {top} features by gain", height=300 + 18 * top)


def write_plots(out: Path, y_test: np.ndarray, p_test: np.ndarray, grades: pd.DataFrame,
                importance: pd.DataFrame, expected: dict[str, float]) -> list[Path]:
    """Write the four figures as HTML files under `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    figs = {"roc": roc_figure(y_test, p_test, "ROC (test months)"), "calibration": calibration_figure(grades),
            "grades": grade_figure(grades, expected), "importance": importance_figure(importance)}
    paths = []
    for name, fig in figs.items():
        path = out / f"{name}.html"
        fig.write_html(path, include_plotlyjs="cdn")
        paths.append(path)
    return paths
