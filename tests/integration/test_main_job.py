"""The main job end to end (`zhouxin run`) on a small world long enough for the out-of-time split.

Slow (several minutes on two cores): `pytest -m slow`. It is the only test that runs the real training
pipeline on simulator output: panel, monotone LightGBM, calibration, the §1.3 caps and stability, the
oracle comparison and the MLflow registry with its lineage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.model]

BIN = Path(sys.executable).parent
GRADES = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]


def test_zhouxin_run_trains_registers_and_reports_a_champion(tmp_path):
    ws = tmp_path / "ws"
    env = os.environ | {"ZHOUXIN_WORKSPACE": str(ws)}
    done = subprocess.run([str(BIN / "zhouxin"), "run", "--enterprises", "700", "--no-oracle"], env=env,
                          capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    import mlflow
    from mlflow import MlflowClient

    from kernel.profile import load_profile
    from training.registry import CHAMPION, setup_mlflow

    setup_mlflow(ws, load_profile("local"), "credit-rating")
    client = MlflowClient()
    mv = client.get_model_version_by_alias("credit-rating", CHAMPION)
    run = client.get_run(mv.run_id)
    m = run.data.metrics
    assert m["test_auc"] > 0.7                                 # far above chance on the unseen months
    assert m["test_ks"] > 0.3 and m["test_brier"] < 0.05
    assert m["test_oracle_rows"] > 0 and m["test_model_oracle_auc_ratio"] > 0.85     # the approximate oracle
    assert 0 <= m["test_share_capped"] < 0.2 and 0 <= m["test_share_held_by_stability"] < 0.2
    assert m["test_grades_populated"] >= 5 and m["test_share_aaa_bb"] > 0.6
    lineage = ("git_commit", "warehouse_manifest_sha256", "feature_service", "feature_view_versions",
               "training_window", "test_window", "config_sha256", "rating_scale_sha256")
    assert all(mv.tags.get(k) for k in lineage), mv.tags
    model = mlflow.pyfunc.load_model(f"models:/credit-rating@{CHAMPION}").unwrap_python_model()
    assert model.cap_column == "mart_indicators__cci_cap" and len(model.cap_floors) == 3
    table = pd.read_csv(client.download_artifacts(mv.run_id, "evaluation/calibration_published.csv", str(tmp_path)))
    assert table["grade"].tolist() == GRADES and table["n"].sum() > 0
    assert (ws / "reports" / "data_dictionary.md").exists() and (ws / "reports" / "feature_dictionary.md").exists()
