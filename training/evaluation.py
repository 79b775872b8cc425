"""Model evaluation: discrimination, calibration by grade (Jeffreys intervals), stability, and — on the
simulator only — comparison with the oracle PD (the one module of this stage allowed to read truth/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from training.scale import RatingScale, load_rating_scale, pd_to_grade


def discrimination(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, Gini, KS and Brier score (NaN where y has one class)."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return {"auc": float("nan"), "gini": float("nan"), "ks": float("nan"), "brier": float("nan"), "n": len(y)}
    auc = roc_auc_score(y, p)
    fpr, tpr, _ = roc_curve(y, p)
    return {"auc": float(auc), "gini": float(2 * auc - 1), "ks": float(np.max(tpr - fpr)),
            "brier": float(brier_score_loss(y, p)), "n": len(y), "events": int(y.sum()),
            "event_rate": float(y.mean()), "mean_pd": float(np.mean(p))}


def jeffreys_interval(events: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if events == 0 else float(beta.ppf(a, events + 0.5, n - events + 0.5))
    hi = 1.0 if events == n else float(beta.ppf(1 - a, events + 0.5, n - events + 0.5))
    return lo, hi


def calibration_by_grade(y: np.ndarray, p: np.ndarray, scale: RatingScale | None = None) -> pd.DataFrame:
    """Per grade: n, share, events, observed rate with its Jeffreys 95% interval, the PD band, and whether
    the interval overlaps the band (the §1.4 test: flag when the observed rate lies outside the band)."""
    scale = scale or load_rating_scale()
    grades = pd_to_grade(p, scale)
    rows = []
    for g in scale.grade_names:
        m = grades == g
        n, k = int(m.sum()), int(np.asarray(y)[m].sum())
        lo_b, hi_b = scale.band(g)
        lo, hi = jeffreys_interval(k, n) if n else (float("nan"), float("nan"))
        rows.append({"grade": g, "n": n, "share": n / max(len(p), 1), "events": k,
                     "observed": k / n if n else float("nan"), "jeffreys_lo": lo, "jeffreys_hi": hi,
                     "band_lo": lo_b, "band_hi": hi_b, "mean_pd": float(np.mean(np.asarray(p)[m])) if n else float("nan"),
                     "inside": bool(n and hi >= lo_b and lo <= hi_b)})
    return pd.DataFrame(rows)


def grade_summary(table: pd.DataFrame, scale: RatingScale | None = None) -> dict[str, float]:
    """A calibration_by_grade table in three numbers: grades inside their band, grades populated, and the
    share in the good-or-better grades (tiers excellent and good: AAA to BB, the seed's '90%')."""
    scale = scale or load_rating_scale()
    good = [g.grade for g in scale.grades if g.tier in ("excellent", "good")]
    populated = table["n"] > 0
    return {"grades_inside": float(table.loc[populated, "inside"].sum()), "grades_populated": float(populated.sum()),
            "share_aaa_bb": float(table.loc[table["grade"].isin(good), "share"].sum())}


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of a score between two samples (deciles of the expected sample)."""
    cuts = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    e = np.histogram(expected, cuts)[0] / len(expected)
    a = np.histogram(np.clip(actual, cuts[0], cuts[-1]), cuts)[0] / len(actual)
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


def metrics_by_group(frame: pd.DataFrame, reference_pd: np.ndarray,
                     dimensions: tuple[str, ...] = ("year", "sector")) -> pd.DataFrame:
    """Discrimination, calibration in the large and stability per group.

    `frame` has columns split, y, pd and one column per dimension; each (split, dimension, group) row gets
    n, events, AUC, KS, Brier, mean PD vs event rate, and the PSI of its PD distribution against the same
    group in the training months (against `reference_pd`, all training months, where the group has no
    training rows, e.g. a later year). Groups with one class get NaN AUC/KS rather than a number.
    """
    rows = []
    train = frame[frame["split"] == "train"]
    for dim in dimensions:
        reference = {k: g["pd"].to_numpy() for k, g in train.groupby(dim, dropna=False)}
        for (split, group), g in frame.groupby(["split", dim], sort=True, dropna=False):
            ref = reference.get(group)
            ref = reference_pd if ref is None or len(ref) < 50 else ref
            d = discrimination(g["y"].to_numpy(), g["pd"].to_numpy())
            rows.append({"split": split, "dimension": dim, "group": str(group), "n": len(g),
                         "events": int(g["y"].sum()), "auc": d["auc"], "ks": d["ks"],
                         "brier": float(np.mean((g["pd"] - g["y"]) ** 2)), "mean_pd": float(g["pd"].mean()),
                         "event_rate": float(g["y"].mean()), "psi_vs_train": psi(ref, g["pd"].to_numpy())})
    return pd.DataFrame(rows)


def oracle_comparison(rows: pd.DataFrame, p: np.ndarray, ws: Path) -> dict[str, float]:
    """AUC of the oracle PD on the same rows and labels, and the model/oracle AUC ratio (empty when the
    workspace holds no simulated truth, e.g. real data).

    Uses the Monte-Carlo oracle where the simulator computed it, else its analytic approximation.
    """
    from data.simulate.truth import read_truth
    from kernel.workspace import truth_dir

    root = truth_dir(ws)
    if not (root / "truth_oracle_pd.parquet").exists():
        return {}
    oracle = read_truth("truth_oracle_pd", root)
    oracle["as_of"] = pd.PeriodIndex(oracle["as_of"].astype(str), freq="M")
    oracle["pd"] = oracle["oracle_pd12"].fillna(oracle["oracle_pd12_approx"])
    key = rows[["uscc"]].assign(as_of=pd.PeriodIndex(pd.to_datetime(rows["as_of"]), freq="M"), y=rows["y"].to_numpy(),
                                model=p)
    m = key.merge(oracle[["uscc", "as_of", "pd"]], on=["uscc", "as_of"], how="inner").dropna(subset=["pd"])
    if m["y"].nunique() < 2:
        return {"oracle_rows": len(m)}
    auc_o = roc_auc_score(m["y"], m["pd"])
    auc_m = roc_auc_score(m["y"], m["model"])
    return {"oracle_rows": len(m), "oracle_auc": float(auc_o), "model_auc_on_oracle_rows": float(auc_m),
            "model_oracle_auc_ratio": float(auc_m / auc_o)}
