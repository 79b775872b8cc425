"""MLflow for the model families: runs, registered versions with lineage tags, aliases and the promotion gate.

Aliases `champion` / `challenger` point at versions of the registered model; every alias move is recorded
(as a version tag and in `<workspace>/mlflow/alias_history.jsonl`, append-only) so an auditor can replay
which version served when.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from kernel.config import file_sha256
from kernel.profile import Profile

CHAMPION, CHALLENGER = "champion", "challenger"


def setup_mlflow(ws: Path, profile: Profile, experiment: str) -> str:
    """Point MLflow at the profile's tracking store; create the experiment; return its id."""
    import mlflow

    uri, artifacts = profile.mlflow.resolved(ws)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return mlflow.create_experiment(experiment, artifact_location=f"{artifacts}/{experiment}")
    return exp.experiment_id


def git_commit(repo: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parent.parent,
                             capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo or Path(__file__).resolve().parent.parent,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def warehouse_manifest_hash(ws: Path) -> str:
    """One hash over every batch manifest: names the exact warehouse content a model was trained on."""
    h = hashlib.sha256()
    for p in sorted((ws / "warehouse" / "_manifest").glob("*.json")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def view_versions(store, service: str) -> dict[str, str]:
    """Per view of the service: a hash of its registered definition (changes when the view changes)."""
    svc = store.get_feature_service(service)
    out = {}
    for proj in svc.feature_view_projections:
        fv = store.get_feature_view(proj.name)
        out[proj.name] = hashlib.sha256(fv.to_proto().spec.SerializeToString()).hexdigest()[:12]
    return out


@dataclass(frozen=True)
class Gate:
    promoted: bool
    reason: str


def promotion_gate(candidate: dict[str, float], champion: dict[str, float] | None,
                   auc_key: str = "test_auc", brier_key: str = "test_brier") -> Gate:
    """A challenger becomes champion only if it beats the champion's out-of-time AUC without a worse Brier."""
    if champion is None:
        return Gate(True, "no champion yet")
    c_auc, k_auc = candidate.get(auc_key, float("nan")), champion.get(auc_key, float("nan"))
    c_b, k_b = candidate.get(brier_key, float("nan")), champion.get(brier_key, float("nan"))
    if not c_auc > k_auc:
        return Gate(False, f"{auc_key} {c_auc:.4f} does not beat the champion's {k_auc:.4f}")
    if not c_b <= k_b:
        return Gate(False, f"{brier_key} {c_b:.5f} is worse than the champion's {k_b:.5f}")
    return Gate(True, f"{auc_key} {c_auc:.4f} > {k_auc:.4f} and {brier_key} {c_b:.5f} <= {k_b:.5f}")


def record_alias_move(ws: Path, model: str, alias: str, version: str, reason: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(model, alias, version)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_model_version_tag(model, version, f"alias_{alias}_since", now)
    path = ws / "mlflow" / "alias_history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"time": now, "model": model, "alias": alias, "version": version,
                             "reason": reason}) + "\n")


def alias_version(model: str, alias: str):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model, alias)
    except MlflowException:
        return None


def run_metrics(run_id: str) -> dict[str, float]:
    from mlflow import MlflowClient

    return dict(MlflowClient().get_run(run_id).data.metrics)


def log_rating_model(ws: Path, trained, cfg, config_path: Path, store, profile: Profile) -> tuple[str, str, Gate]:
    """Log run + artefact, register a version with lineage tags, move aliases through the gate.

    Returns (run_id, version, gate decision).
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    setup_mlflow(ws, profile, cfg.experiment)
    mlflow.set_experiment(cfg.experiment)
    lineage = {
        "git_commit": git_commit(),
        "warehouse_manifest_sha256": warehouse_manifest_hash(ws),
        "feature_service": cfg.feature_service,
        "feature_view_versions": json.dumps(view_versions(store, cfg.feature_service), sort_keys=True),
        "training_window": trained.windows["train"],
        "validation_window": trained.windows["validation"],
        "test_window": trained.windows["test"],
        "config_sha256": file_sha256(config_path),
        "rating_scale_sha256": file_sha256(config_path.parent.parent / "rating_scale.yaml"),
        "profile": profile.name,
        "model_type": str(trained.params.get("model_type", "lightgbm")),   # lightgbm | scorecard
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(run_name=f"{cfg.model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}") as run:
            mlflow.set_tags(lineage)
            mlflow.log_params({k: (json.dumps(v) if isinstance(v, list | dict) else v)
                               for k, v in trained.params.items() if k != "monotone_constraints"})
            mlflow.log_param("n_features", len(trained.model.columns))
            mlflow.log_metrics({k: float(v) for k, v in trained.metrics.items() if pd.notna(v)})
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                rows = trained.rows[["uscc", "as_of", "y", "split"]]
                rows.to_parquet(t / "training_rows.parquet", index=False)
                trained.grade_table.to_csv(t / "calibration_by_grade.csv", index=False)
                trained.importance.to_csv(t / "feature_importance.csv", index=False)
                for name, table in getattr(trained, "tables", {}).items():   # e.g. the scorecard's bins and points
                    table.to_csv(t / f"{name}.csv", index=False)
                mlflow.log_artifacts(tmp, artifact_path="evaluation")
            if trained.test_y is not None:
                from training.plots import write_plots
                from training.scale import load_rating_scale

                with tempfile.TemporaryDirectory() as tmp:
                    expected = {g.grade: g.expected_share for g in load_rating_scale().grades}
                    write_plots(Path(tmp), trained.test_y, trained.test_pd, trained.grade_table,
                                trained.importance, expected)
                    mlflow.log_artifacts(tmp, artifact_path="plots")
                ds = mlflow.data.from_pandas(rows, source=str(ws / "features" / "sources"), name="credit-rating-panel",
                                             targets="y")
                mlflow.log_input(ds, context="training")
            # every input optional: a firm's online vector may lack a view; the model fills NaN itself
            inputs = Schema([ColSpec("string" if c in trained.model.categories else "double", c, required=False)
                             for c in trained.model.columns])
            outputs = Schema([ColSpec("double", "pd12"), ColSpec("double", "score"), ColSpec("string", "grade")]
                             + [ColSpec("string", f"reason_{i + 1}", required=False)
                                for i in range(trained.model.top_reasons)])
            info = _log_self_contained(trained.model, ModelSignature(inputs=inputs, outputs=outputs), cfg)
            run_id = run.info.run_id
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(info.registered_model_version)
    for k, v in lineage.items():
        client.set_model_version_tag(cfg.model_name, version, k, v)
    client.set_model_version_tag(cfg.model_name, version, "run_id", run_id)
    champ = alias_version(cfg.model_name, CHAMPION)
    gate = promotion_gate(trained.metrics, run_metrics(champ.run_id) if champ else None)
    if gate.promoted:
        record_alias_move(ws, cfg.model_name, CHAMPION, version, gate.reason)
    else:
        record_alias_move(ws, cfg.model_name, CHALLENGER, version, gate.reason)
    return run_id, version, gate


def _log_self_contained(model, signature, cfg):
    """Log the artefact with its class pickled by value: loading it needs numpy, pandas, sklearn and
    lightgbm only, never our `training` package (serving must not import training)."""
    import sys

    import cloudpickle
    import mlflow

    # the artefact's class and its bases from this package (RatingArtefact), all pickled by value
    modules = list(dict.fromkeys(sys.modules[c.__module__] for c in type(model).__mro__
                                 if c.__module__.split(".")[0] == __name__.split(".")[0]))
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        return mlflow.pyfunc.log_model(name="model", python_model=model, code_paths=[m.__file__ for m in modules],
                                       signature=signature, pip_requirements=cfg.pip_requirements,
                                       registered_model_name=cfg.model_name)
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


def compare_versions(model: str) -> pd.DataFrame:
    """Every registered version side by side: aliases, windows, key metrics, lineage."""
    from mlflow import MlflowClient

    client = MlflowClient()
    rows = []
    for mv in sorted(client.search_model_versions(f"name='{model}'"), key=lambda m: int(m.version)):
        m = run_metrics(mv.run_id)
        aliases = client.get_model_version(model, mv.version).aliases   # search results carry none (MLflow 3)
        rows.append({"version": int(mv.version), "model": mv.tags.get("model_type", "lightgbm"),
                     "aliases": ",".join(aliases),
                     "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
                     "test_auc": m.get("test_auc"), "test_ks": m.get("test_ks"), "test_brier": m.get("test_brier"),
                     "model/oracle": m.get("test_model_oracle_auc_ratio"),
                     "grades_inside": m.get("test_grades_inside"), "aaa_bb": m.get("test_share_aaa_bb"),
                     "train": mv.tags.get("training_window"), "commit": (mv.tags.get("git_commit") or "")[:10]})
    return pd.DataFrame(rows)
