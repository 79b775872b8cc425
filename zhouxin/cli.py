"""The `zhouxin` command: composes each stage's Typer app; `zhouxin run` is the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from data.cli import app as data_app
from data.cli import run_calibration, run_credit_index, run_ingest, run_simulation
from data.feature_store.cli import app as features_app
from data.feature_store.cli import dictionary as feature_dictionary
from data.feature_store.cli import run_features
from kernel.workspace import reports_dir, workspace_dir
from serving.cli import audit_app, replay, serve_app
from training.cli import models_app, run_train_credit_rating, train_app

app = typer.Typer(help="Zhouxin (舟信): SME financing-service platform — data, features, models, serving.",
                  no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(serve_app, name="serve")
app.add_typer(audit_app, name="audit")
app.command("replay")(replay)
catalog_app = typer.Typer(help="The catalog of 35 sub-items and 290 fields.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
console = Console()


@catalog_app.command("show")
def catalog_show(sub_item: Annotated[str | None, typer.Argument(help="sub-item code or id; all if omitted")] = None) -> None:
    """Summarise the catalog, or list the fields of one sub-item."""
    from rich.table import Table

    from kernel.catalog import load_catalog

    cat = load_catalog()
    if sub_item is None:
        t = Table(title=f"{len(cat.sub_items)} sub-items, {cat.field_count} fields")
        for c in ("id", "code", "子项", "dept", "grain", "fields"):
            t.add_column(c)
        for s in cat.sub_items:
            t.add_row(s.id, s.code, s.name_zh, s.department, s.grain, str(len(s.fields)))
    else:
        s = cat.sub_item(sub_item)
        t = Table(title=f"{s.id} {s.code} {s.name_zh}")
        for c in ("field", "dtype", "unit", "allowed/range", "risk", "含义"):
            t.add_column(c)
        for f in s.fields:
            rng = ", ".join(f.allowed) if f.allowed else f"{f.min if f.min is not None else ''}..{f.max if f.max is not None else ''}"
            t.add_row(f.name, f.dtype, f.unit, rng, f.risk_direction, f.meaning_zh or "")
    console.print(t)


@catalog_app.command("dictionary")
def catalog_dictionary(out: Annotated[Path | None, typer.Option(help="output file (default workspace/reports/data_dictionary.md)")] = None) -> None:
    """Generate the human data dictionary (Markdown) from configs/catalog.yaml."""
    from kernel.catalog import load_catalog
    from kernel.data_dictionary import render_markdown

    path = out or reports_dir() / "data_dictionary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(load_catalog()), encoding="utf-8")
    console.print(f"data dictionary written to {path}")


@app.command()
def run(
    enterprises: Annotated[int | None, typer.Option(help="initial universe N0 (default from world.yaml)")] = None,
    oracle: Annotated[bool, typer.Option(help="compute the Monte-Carlo oracle")] = True,
) -> None:
    """The main job end to end on the embedded defaults: simulate, ingest, features, credit rating, reports."""
    import shutil

    ws = workspace_dir()
    console.rule("[bold]1/5 simulate the world")
    run_simulation(enterprises=enterprises, oracle=oracle, workspace=ws)
    console.rule("[bold]2/5 ingest into the warehouse")
    for stale in ("warehouse", "marts", "features"):   # a new world: the old ones describe another
        if (ws / stale).exists():
            shutil.rmtree(ws / stale)
    balanced = run_ingest(ws)
    if not balanced:
        raise typer.Exit(1)
    console.rule("[bold]3/5 features: marts, Feast registry, online store")
    run_features(ws, profile="local")
    console.rule("[bold]4/5 credit rating: train, evaluate, register in MLflow")
    run_train_credit_rating(ws, profile="local")
    console.rule("[bold]5/5 reports")
    catalog_dictionary(out=reports_dir(ws) / "data_dictionary.md")
    feature_dictionary(out=reports_dir(ws) / "feature_dictionary.md")
    run_credit_index(ws)
    calibrated = run_calibration(ws)
    if not calibrated:
        console.print("[yellow]Some calibration targets missed: see the report above.")
    console.print(f"Done. Workspace {ws}. Next: `make serve` (bank API on :3000; issue a key with "
                  "`zhouxin serve keys issue LSB1`, a consent with `zhouxin serve consent grant …`).")


@app.command("profile")
def profile_cmd(uscc: Annotated[str, typer.Option(help="the enterprise's 18-character USCC")],
                as_of: Annotated[str, typer.Option(help="as-of date YYYY-MM-DD")],
                as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
                workspace: Annotated[Path | None, typer.Option(help="workspace folder")] = None) -> None:
    """"One enterprise, one file" (一企一档): registration, ownership, indices, rating and reasons, events."""
    import json
    from datetime import date

    from kernel.errors import ZhouxinError
    from training.profile import enterprise_profile

    try:
        prof = enterprise_profile(workspace or workspace_dir(), uscc, date.fromisoformat(as_of))
    except (ZhouxinError, ValueError) as e:
        console.print(f"[red]error: {e}")
        raise typer.Exit(2) from e
    if as_json:
        console.print_json(json.dumps(prof, ensure_ascii=False, default=str))
        return
    reg, own, ci, rating = prof["registration"], prof["ownership"], prof["credit_index"], prof["rating"]
    console.rule(f"[bold]{reg['ent_name']}[/]  {prof['uscc']}  as of {prof['as_of']}")
    console.print(f"{reg['ent_type']}, {reg['ent_status']}, est. {reg['establish_date']}, capital "
                  f"{reg['registered_capital']} 万元, industry {reg['industry_code']}, district {reg['district_code']}, "
                  f"FTZ {reg['ftz_area']}, {reg['enterprise_scale']}")
    console.print(f"controller {own['actual_controller_id']} ({own['controller_type']}, ultimate share "
                  f"{own['controller_ultimate_share']}), group size {own['group_size']}, related-party score "
                  f"{own['related_party_risk_score']}")
    subs = ", ".join(f"{k} {v:.1f}" for k, v in ci["sub_indices"].items() if v is not None)
    console.print(f"CCI {ci['cci']} ({ci['cci_tier']}, cap {ci['cci_cap']}); sub-indices {subs}")
    if rating and rating["grade"] == "D":
        console.print(f"[bold red]grade D[/]: {rating['note']}")
    elif rating:
        reasons = "; ".join(f"{r['zh']} / {r['en']}" for r in rating["reasons"]) or "none raising the PD"
        console.print(f"[bold]PD {rating['pd12']:.2%}, score {rating['score']}, grade {rating['grade']}[/] "
                      f"({rating['model']} v{rating['version']}); reasons: {reasons}")
    else:
        console.print("no champion credit-rating model registered yet")
    events = ", ".join(f"{e['date']} {e['trigger']}" for e in prof["recent_events"]) or "none"
    console.print(f"serious credit events in the last 24 months: {events}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
