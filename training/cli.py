"""`zhouxin train …` and `zhouxin models …`: fit, register, compare and promote models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.workspace import workspace_dir

train_app = typer.Typer(help="Train a model family and register it in MLflow.", no_args_is_help=True,
                        pretty_exceptions_show_locals=False)
models_app = typer.Typer(help="Registered models: compare versions, promote.", no_args_is_help=True,
                         pretty_exceptions_show_locals=False)
console = Console()

WorkspaceOpt = Annotated[Path | None, typer.Option(help="workspace folder (default ZHOUXIN_WORKSPACE or ./workspace)")]
ProfileOpt = Annotated[str | None, typer.Option(help="profile: local | production (default ZHOUXIN_PROFILE or local)")]


def run_train_credit_rating(ws: Path, profile: str | None = None, trials: int = 0, model: str | None = None) -> None:
    """Train, evaluate and register the credit-rating model (LightGBM or the WoE scorecard); print a summary."""
    from data.feature_store.store import open_store
    from kernel.profile import load_profile
    from training.config import credit_rating_config_path, load_credit_rating_config
    from training.credit_rating import train_credit_rating
    from training.registry import log_rating_model

    prof = load_profile(profile)
    cfg = load_credit_rating_config()
    kind = model or cfg.model
    with console.status(f"training credit-rating ({kind})…") as status:
        trained = train_credit_rating(ws, cfg, prof, progress=lambda m: status.update(f"credit-rating: {m}"),
                                      trials=trials, study_storage=optuna_storage(ws, prof), model=kind)
        status.update("registering in MLflow…")
        run_id, version, gate = log_rating_model(ws, trained, cfg, credit_rating_config_path(),
                                                 open_store(ws, prof), prof)
    m = trained.metrics
    t = Table(title=f"credit-rating v{version} ({kind}, run {run_id[:8]}): train {trained.windows['train']}, "
                    f"validation {trained.windows['validation']}, test {trained.windows['test']}")
    for c in ("split", "rows", "events", "AUC", "KS", "Brier"):
        t.add_column(c, justify="right")
    for s in ("train", "validation", "test"):
        t.add_row(s, f"{m.get(f'{s}_n', 0):,.0f}", f"{m.get(f'{s}_events', 0):,.0f}", f"{m.get(f'{s}_auc', float('nan')):.3f}",
                  f"{m.get(f'{s}_ks', float('nan')):.3f}", f"{m.get(f'{s}_brier', float('nan')):.5f}")
    console.print(t)
    if "test_oracle_auc" in m:
        console.print(f"oracle AUC on the test rows {m['test_oracle_auc']:.3f}; model/oracle ratio "
                      f"{m['test_model_oracle_auc_ratio']:.3f}")
    console.print(f"grades inside their PD band (Jeffreys 95%): {m['test_grades_inside']:.0f} of "
                  f"{m['test_grades_populated']:.0f} populated; AAA–BB share {m['test_share_aaa_bb']:.1%}; "
                  + (f"{len(trained.model.columns):,} features, {m['trees']:.0f} trees" if "trees" in m
                     else f"scorecard of {len(trained.model.columns)} features (bins and points: "
                          "evaluation/scorecard.csv)"))
    if "test_published_auc" in m:
        console.print(f"published rating (§1.3 caps, then at most two notches a month): "
                      f"{m['test_share_capped']:.1%} of test firm-months capped, {m['test_share_held_by_stability']:.1%} "
                      f"held by stability; AUC {m['test_published_auc']:.3f}, {m['test_published_grades_inside']:.0f} "
                      f"grades inside, AAA–BB {m['test_published_share_aaa_bb']:.1%} "
                      "(evaluation/calibration_published.csv)")
    if "test_auc_min_sector" in m:
        console.print(f"by sector group (test year): lowest AUC {m['test_auc_min_sector']:.3f}, largest PSI vs the "
                      f"same group's training months {m['test_psi_max_sector']:.2f} (evaluation/metrics_by_group.csv)")
    console.print(("[green]promoted to champion: " if gate.promoted else "[yellow]registered as challenger: ")
                  + gate.reason)


def run_train_external(dataset: Path, target: str, time_col: str | None, folds: int,
                       exclude: list[str] | None = None) -> None:
    """Evaluate the credit-rating pipeline on an external table; print per-fold metrics (nothing is logged)."""
    from training.external import train_external

    with console.status(f"credit-rating on {dataset.name}…"):
        r = train_external(dataset, target, time_col=time_col, folds=folds, exclude=exclude or ())
    s = r.summary
    how = f"{len(r.folds)}-fold stratified CV" if r.mode == "stratified-cv" else "out-of-time split"
    t = Table(title=f"credit-rating on {dataset.name} (target {target!r}, {how}): {r.n_rows:,} rows, "
                    f"{r.n_events:,} events")
    for c in ("fold", "rows", "events", "AUC", "AUC raw", "KS", "Brier", "trees"):
        t.add_column(c, justify="right")
    for _, f in r.folds.iterrows():
        t.add_row(str(f["fold"]), f"{f['n']:,}", f"{f['events']:,}", f"{f['auc']:.3f}", f"{f['auc_raw']:.3f}",
                  f"{f['ks']:.3f}", f"{f['brier']:.5f}", f"{f['trees']}")
    if len(r.folds) > 1:
        t.add_row("mean ± sd", "", "", f"{s['auc_mean']:.3f} ± {s['auc_sd']:.3f}",
                  f"{s['auc_raw_mean']:.3f} ± {s['auc_raw_sd']:.3f}", f"{s['ks_mean']:.3f} ± {s['ks_sd']:.3f}",
                  f"{s['brier_mean']:.5f}", f"{s['trees_mean']:.0f}")
    console.print(t)
    if r.windows:
        console.print("windows: " + "; ".join(f"{k} {v}" for k, v in r.windows.items()))
    g = r.grades[r.grades["n"] > 0]
    console.print("out-of-fold grades: " + ", ".join(f"{row.grade} {row.share:.1%} (obs {row.observed:.2%})"
                                                     for row in g.itertuples()))
    console.print(f"pooled out-of-fold AUC {s['oof_auc']:.3f}, KS {s['oof_ks']:.3f}, Brier {s['oof_brier']:.5f}; "
                  f"{len(r.features)} candidate features; {r.seconds:.1f} s "
                  "(AUC = calibrated PD; AUC raw = LightGBM score before isotonic calibration)")
    dropped = {k: v for k, v in r.dropped.items() if v != "target"}
    if dropped:
        console.print("not used as features: " + "; ".join(f"{k} ({v})" for k, v in dropped.items()))
    for w in r.warnings:
        console.print(f"[yellow]warning: {w}")


def optuna_storage(ws: Path, prof) -> str:
    """Where Optuna studies live: beside MLflow's store (SQLite file locally, the same database otherwise)."""
    uri, _ = prof.mlflow.resolved(ws)
    if uri.startswith("sqlite:///"):
        (ws / "mlflow").mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{ws / 'mlflow' / 'optuna.db'}"
    return uri


@train_app.command("credit-rating")
def credit_rating(
    workspace: WorkspaceOpt = None, profile: ProfileOpt = None,
    dataset: Annotated[Path | None, typer.Option(help="external Parquet/CSV table: evaluate the pipeline on it "
                                                      "(cross-validated, nothing registered)")] = None,
    target: Annotated[str | None, typer.Option(help="binary 0/1 target column of --dataset")] = None,
    time_col: Annotated[str | None, typer.Option(help="time column of --dataset: out-of-time split "
                                                      "instead of stratified CV")] = None,
    folds: Annotated[int, typer.Option(min=2, help="stratified CV folds (no --time-col)")] = 5,
    exclude: Annotated[list[str] | None, typer.Option(help="column of --dataset not to use as a feature "
                                                          "(repeatable)")] = None,
    trials: Annotated[int, typer.Option(min=0, help="Optuna trials on the validation months before the final "
                                                    "fit (0 = the configured parameters)")] = 0,
    model: Annotated[str | None, typer.Option(help="lightgbm | scorecard (the explainable WoE challenger); "
                                                   "default: the config's `model`")] = None,
) -> None:
    """Point-in-time panel → monotone LightGBM → calibrated PD, score, grade → MLflow (gate → champion).

    With --dataset FILE --target COL: the same model evaluated on an external table instead."""
    if dataset is not None:
        if not target:
            raise typer.BadParameter("--target is required with --dataset", param_hint="--target")
        if model not in (None, "lightgbm"):
            raise typer.BadParameter("--dataset evaluates the LightGBM pipeline only", param_hint="--model")
        from kernel.errors import ZhouxinError

        try:
            run_train_external(dataset, target, time_col, folds, exclude)
        except ZhouxinError as e:
            console.print(f"[red]error: {e}")
            raise typer.Exit(1) from e
        return
    if target or time_col or exclude:
        raise typer.BadParameter("--target / --time-col / --exclude need --dataset", param_hint="--dataset")
    if model not in (None, "lightgbm", "scorecard"):
        raise typer.BadParameter(f"{model!r}: use lightgbm or scorecard", param_hint="--model")
    if model == "scorecard" and trials:
        raise typer.BadParameter("--trials tunes LightGBM; the scorecard has none", param_hint="--trials")
    run_train_credit_rating(workspace or workspace_dir(), profile, trials, model)


@models_app.command()
def compare(model: Annotated[str, typer.Argument(help="registered model name")] = "credit-rating",
            workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Every version of a registered model side by side (aliases, out-of-time metrics, lineage)."""
    from kernel.profile import load_profile
    from training.registry import compare_versions, setup_mlflow

    setup_mlflow(workspace or workspace_dir(), load_profile(profile), model)
    df = compare_versions(model)
    t = Table(title=f"{model}: {len(df)} versions")
    for c in df.columns:
        t.add_column(str(c))
    for _, r in df.iterrows():
        t.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.to_list()])
    console.print(t)


@models_app.command()
def promote(version: Annotated[str, typer.Argument(help="the version to make champion")],
            reason: Annotated[str, typer.Option(help="why, in words: kept in the alias history with the time")],
            model: Annotated[str, typer.Option(help="registered model name")] = "credit-rating",
            workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Make a version champion by hand, bypassing the gate; the written reason is recorded with the move.

    For what the gate cannot judge (an artefact repackaged with faster code, a rollback); the previous
    champion becomes the challenger, so `models promote OLD` undoes it. Serving picks it up on its next check.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from kernel.profile import load_profile
    from training.registry import CHALLENGER, CHAMPION, alias_version, record_alias_move, setup_mlflow

    if len(reason.strip()) < 10:
        raise typer.BadParameter("say why in at least a few words", param_hint="--reason")
    ws = workspace or workspace_dir()
    setup_mlflow(ws, load_profile(profile), model)
    try:
        MlflowClient().get_model_version(model, version)
    except MlflowException:
        raise typer.BadParameter(f"{model} has no version {version!r}", param_hint="VERSION") from None
    before = alias_version(model, CHAMPION)
    if before is not None and str(before.version) == str(version):
        console.print(f"{model} v{version} is already champion; nothing moved")
        return
    record_alias_move(ws, model, CHAMPION, str(version), f"by hand: {reason.strip()}")
    if before is not None:
        record_alias_move(ws, model, CHALLENGER, str(before.version), f"by hand: replaced by v{version}")
    console.print(f"[green]{model} v{version} is champion[/green] (was v{before.version if before else '-'}); "
                  f"reason recorded in {ws / 'mlflow' / 'alias_history.jsonl'}")
