"""Benchmark credit-rating training against raw LightGBM on the same matrix.

Builds the point-in-time panel and the model matrix once (timed), then fits (a) our LightGBM step —
monotone constraints from the declared risk directions ("advanced" method), early stopping on the
validation months, isotonic calibration, artefact with reason mapping — and (b) the baseline: plain
`lgb.train` with the same parameters and the same number of trees, no constraints, no validation, no
calibration. Prints ratios; figures go to benchmarks/results/training-<label>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightgbm as lgb
import pandas as pd
from results_file import write_results

from data.feature_store.pipeline import world_months
from data.feature_store.store import open_store
from data.feature_store.training_set import view_sources
from data.marts.grid import month_ends
from kernel.profile import load_profile
from kernel.resources import peak_rss_mb
from kernel.workspace import workspace_dir
from training.config import load_credit_rating_config
from training.credit_rating import _fit_lightgbm
from training.fitting import fitting_matrix, lgb_params
from training.panel import build_panel, to_matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--label", default="default")
    args = ap.parse_args()
    ws = args.workspace or workspace_dir()
    cfg = load_credit_rating_config()
    store = open_store(ws, load_profile("local"))
    _, end = world_months(ws)

    t = time.perf_counter()
    panel = build_panel(ws, view_sources(store, cfg.feature_service), cfg, pd.Timestamp(month_ends(end, end)[0]))
    t_panel = time.perf_counter() - t
    rows = panel.rows
    t = time.perf_counter()
    masks = {s: (rows["split"] == s).to_numpy() for s in ("train", "validation")}
    x_train, cats = fitting_matrix(panel.features.filter(masks["train"]), rows.loc[masks["train"], "as_of"], cfg)
    x_val, _ = to_matrix(panel.features.filter(masks["validation"]), rows.loc[masks["validation"], "as_of"],
                         list(x_train.columns), cats)
    y = {s: rows.loc[m, "y"].to_numpy() for s, m in masks.items()}
    t_matrix = time.perf_counter() - t

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    _, _, _, _, extra, _ = _fit_lightgbm(cfg, x_train, x_val, y, cats, None, 0, None, lambda _m: None, seconds,
                                         rows.loc[masks["validation"], "as_of"])
    t_ours = time.perf_counter() - t
    trees = int(extra["trees"])

    params, _, _ = lgb_params(cfg)
    t = time.perf_counter()
    lgb.train(params, lgb.Dataset(x_train, y["train"], categorical_feature=list(cats) or "auto"),
              num_boost_round=max(trees, 1))
    t_raw = time.perf_counter() - t

    write_results(f"training-{args.label}", {
        "workspace": str(ws), "train_rows": len(x_train), "columns": int(x_train.shape[1]), "trees": trees,
        "panel_s": round(t_panel, 1), "matrix_s": round(t_matrix, 1),
        "ours_fit_s": round(t_ours, 2), "raw_lightgbm_same_trees_s": round(t_raw, 2),
        "ratio_ours_fit_vs_raw": round(t_ours / t_raw, 2),
        "ratio_pipeline_vs_raw": round((t_panel + t_matrix + t_ours) / t_raw, 1),
        "peak_rss_gb": round(peak_rss_mb() / 2**10, 2),
    })


if __name__ == "__main__":
    main()
