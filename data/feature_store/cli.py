"""`zhouxin features …`: build marts and Feast sources, apply definitions, materialize, read online."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.workspace import workspace_dir

app = typer.Typer(help="Feature store: marts, Feast definitions, online materialization.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
console = Console()

WorkspaceOpt = Annotated[Path | None, typer.Option(help="workspace folder (default ZHOUXIN_WORKSPACE or ./workspace)")]
ProfileOpt = Annotated[str | None, typer.Option(help="profile: local | production (default ZHOUXIN_PROFILE or local)")]


def run_features(ws: Path, profile: str | None = None, start: str | None = None, end: str | None = None) -> None:
    """The whole features step with progress and a summary table."""
    from data.feature_store.pipeline import build_features
    from kernel.profile import load_profile

    with console.status("building features…") as status:
        summary = build_features(ws, load_profile(profile), start, end,
                                 progress=lambda step: status.update(f"features: {step} done"))
    t = Table(title=f"Feature store ({summary.profile} profile, {summary.months[0]} → {summary.months[1]})")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("source rows (35 sub-items)", f"{sum(summary.source_rows.values()):,}")
    for name, rows in summary.mart_rows.items():
        t.add_row(f"mart {name}", f"{rows:,} rows × {summary.mart_columns.get(name, 0):,} columns")
    t.add_row("feature views registered", str(summary.views))
    for name, n in summary.services.items():
        t.add_row(f"service {name}", f"{n:,} features")
    t.add_row("online values written", f"{summary.online_values:,}")
    t.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    console.print(t)


@app.command()
def build(workspace: WorkspaceOpt = None, profile: ProfileOpt = None,
          start: Annotated[str | None, typer.Option(help="first month YYYY-MM (default: the world's)")] = None,
          end: Annotated[str | None, typer.Option(help="last month YYYY-MM (default: the world's)")] = None) -> None:
    """Everything: export sources, build marts, apply, bulk-materialize the online store."""
    run_features(workspace or workspace_dir(), profile, start, end)


@app.command("marts")
def marts_cmd(names: Annotated[list[str], typer.Argument(help="mart names, e.g. credit_events")],
              workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Rebuild only these marts, re-apply the definitions and materialize just their views."""
    from data.feature_store.pipeline import rebuild_marts
    from kernel.errors import ZhouxinError
    from kernel.profile import load_profile

    try:
        with console.status("rebuilding marts…") as status:
            rows = rebuild_marts(workspace or workspace_dir(), names, load_profile(profile),
                                 progress=lambda step: status.update(f"marts: {step} done"))
    except ZhouxinError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for name, n in rows.items():
        console.print(f"mart {name}: {n:,} rows rebuilt, applied and materialized")


@app.command()
def apply(workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Register the generated definitions (views of existing sources, FeatureServices) in the registry."""
    from data.feature_store.pipeline import definitions
    from data.feature_store.store import apply_definitions, open_store
    from kernel.profile import load_profile

    ws = workspace or workspace_dir()
    defs = definitions(ws)
    apply_definitions(open_store(ws, load_profile(profile)), defs)
    console.print(f"applied {len(defs.views)} feature views and {len(defs.services)} feature services")


@app.command()
def materialize(workspace: WorkspaceOpt = None, profile: ProfileOpt = None,
                feast: Annotated[bool, typer.Option("--feast", help="use Feast's own materialize (slow baseline)")] = False,
                as_of: Annotated[str | None, typer.Option(help="knowledge date YYYY-MM-DD (default: all data)")] = None) -> None:
    """Write the latest known values of every view for the whole population to the online store."""
    from data.feature_store.bulk import bulk_materialize
    from data.feature_store.store import feast_materialize, open_store
    from data.feature_store.training_set import view_sources
    from kernel.profile import load_profile

    store = open_store(workspace or workspace_dir(), load_profile(profile))
    names = [v.name for v in store.list_feature_views()]
    cut = datetime.fromisoformat(as_of) if as_of else datetime(2100, 1, 1)
    if feast:
        feast_materialize(store, datetime(1900, 1, 1), cut)
        console.print(f"Feast materialized {len(names)} views")
        return
    res = bulk_materialize(store, view_sources(store, names), as_of=cut if as_of else None)
    console.print(f"bulk-materialized {len(res)} views, {sum(r.values for r in res):,} values")


@app.command()
def get(uscc: Annotated[str, typer.Option(help="the enterprise's 18-character USCC")],
        workspace: WorkspaceOpt = None, profile: ProfileOpt = None,
        service: Annotated[str, typer.Option(help="feature service")] = "credit_rating",
        as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Read one firm's online feature vector."""
    from data.feature_store.store import online_features, open_store
    from kernel.profile import load_profile
    from kernel.uscc import normalise_uscc, uscc_problem

    uscc = normalise_uscc(uscc)
    problem = uscc_problem(uscc)
    if problem:
        console.print(f"[red]--uscc {uscc!r}: {problem}")
        raise typer.Exit(2)
    row = online_features(open_store(workspace or workspace_dir(), load_profile(profile)), [uscc], service).iloc[0]
    values = {k: (None if v is None or v != v else (v.isoformat() if hasattr(v, "isoformat") else v))
              for k, v in row.items()}
    if as_json:
        console.print_json(json.dumps(values, default=str, ensure_ascii=False))
        return
    known = sum(v is not None for k, v in values.items() if k != "uscc")
    t = Table(title=f"{uscc}: {known:,} of {len(values) - 1:,} features known ({service})")
    t.add_column("feature")
    t.add_column("value")
    for k, v in values.items():
        if v is not None and k != "uscc":
            t.add_row(k, str(v))
    console.print(t)


@app.command()
def dictionary(out: Annotated[Path | None, typer.Option(help="output file (default workspace/reports/feature_dictionary.md)")] = None) -> None:
    """Generate the dictionary of every mart column (49 indicators, risk indicators, equity graph)."""
    from data.marts.dictionary import render_mart_dictionary
    from data.marts.registry import MARTS
    from kernel.workspace import reports_dir

    path = out or reports_dir() / "feature_dictionary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    marts = [(m.name, m.description, m.features()) for m in MARTS]
    path.write_text(render_mart_dictionary(marts), encoding="utf-8")
    console.print(f"{sum(len(f) for _, _, f in marts):,} mart columns documented in {path}")
