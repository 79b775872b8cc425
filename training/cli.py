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


def run_train_credit_rating(ws: Path, profile: str | None = None) -> None:
    """Train, evaluate and register the credit-rating model; print a readable summary."""
    from data.feature_store.store import open_store
    from kernel.profile import load_profile
    from training.config import credit_rating_config_path, load_credit_rating_config
    from training.credit_rating import train_credit_rating
    from training.registry import log_rating_model

    prof = load_profile(profile)
    cfg = load_credit_rating_config()
    with console.status("training credit-rating…") as status:
        trained = train_credit_rating(ws, cfg, prof, progress=lambda m: status.update(f"credit-rating: {m}"))
        status.update("registering in MLflow…")
        run_id, version, gate = log_rating_model(ws, trained, cfg, credit_rating_config_path(),
                                                 open_store(ws, prof), prof)
    m = trained.metrics
    t = Table(title=f"credit-rating v{version} (run {run_id[:8]}): train {trained.windows['train']}, "
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
                  f"{len(trained.model.columns):,} features, {m['trees']:.0f} trees")
    console.print(("[green]promoted to champion: " if gate.promoted else "[yellow]registered as challenger: ")
                  + gate.reason)


@train_app.command("credit-rating")
def credit_rating(workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Point-in-time panel → monotone LightGBM → calibrated PD, score, grade → MLflow (gate → champion)."""
    run_train_credit_rating(workspace or workspace_dir(), profile)


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
