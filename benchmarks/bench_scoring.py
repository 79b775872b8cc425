"""Benchmark nightly scoring: PD, score, grade and reason codes for N firm-months with a registered model.

Loads `credit-rating@<alias>` from the workspace's MLflow registry, builds the point-in-time feature
vectors of N firm-months from the feature store, then times (a) the raw booster on the model matrix (the
baseline), (b) PD + score + grade, (c) reason codes (TreeSHAP contributions summed per business reason).
Figures go to benchmarks/results/scoring-<label>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from results_file import write_results

from data.feature_store.pipeline import sources_dir
from data.feature_store.store import open_store
from data.feature_store.training_set import point_in_time_join, view_sources
from kernel.profile import load_profile
from kernel.resources import peak_rss_mb
from kernel.workspace import workspace_dir
from training.panel import to_matrix
from training.registry import setup_mlflow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--alias", default="champion")
    ap.add_argument("--label", default="default")
    args = ap.parse_args()
    ws = args.workspace or workspace_dir()
    profile = load_profile("local")
    import mlflow

    setup_mlflow(ws, profile, "credit-rating")
    from training.registry import alias_version

    mv = alias_version("credit-rating", args.alias) or alias_version("credit-rating", "champion")
    model = mlflow.pyfunc.load_model(f"models:/credit-rating/{mv.version}").unwrap_python_model()
    store = open_store(ws, profile)
    grid = pd.read_parquet(sources_dir(ws) / "mart_indicators.parquet", columns=["uscc", "event_timestamp"])
    grid = grid[grid["event_timestamp"] == grid["event_timestamp"].max()]
    ent = grid.sample(n=args.rows, replace=len(grid) < args.rows, random_state=5).reset_index(drop=True)
    res: dict[str, object] = {"label": args.label, "model_version": str(mv.version), "rows": len(ent), "firms_distinct": int(ent["uscc"].nunique()),
                              "model_columns": len(model.columns), "trees": model.booster.num_trees()}
    t = time.perf_counter()
    table = point_in_time_join(ent, view_sources(store, model.feature_service), as_arrow=True)
    res["features_seconds"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    x, _ = to_matrix(table.drop_columns(["uscc", "event_timestamp"]), ent["event_timestamp"], model.columns,
                     model.categories)
    res["matrix_seconds"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    model.booster.predict(x)
    base = time.perf_counter() - t
    t = time.perf_counter()
    col = getattr(model, "cap_column", None)
    cap_value = table.column(col).to_numpy(zero_copy_only=False) if col in table.column_names else np.nan
    p, cap = model.apply_caps(model.pd12(x), cap_value)
    model.score(p)
    model.grade(p)
    pd_s = time.perf_counter() - t
    t = time.perf_counter()
    reasons = model.reasons(x)
    rs = time.perf_counter() - t
    res.update({"raw_predict_seconds": round(base, 2), "pd_score_grade_seconds": round(pd_s, 2),
                "reason_codes_seconds": round(rs, 2), "reason_rows_per_s": round(len(x) / rs),
                "reasons_vs_raw_predict": round(rs / base, 1),
                "total_seconds": round(res["features_seconds"] + res["matrix_seconds"] + pd_s + rs, 1),
                "rows_with_a_reason": round(float(reasons["reason_1"].notna().mean()), 3),
                "top_reason_1": reasons["reason_1"].value_counts().head(5).to_dict(),
                "peak_rss_mb": round(peak_rss_mb())})
    res["pd_mean"] = round(float(np.mean(p)), 5)
    res["rows_capped"] = int(pd.notna(cap).sum())
    write_results(f"scoring-{args.label}", res)


if __name__ == "__main__":
    main()
