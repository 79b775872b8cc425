"""`zhouxin data …`: the data stage's commands (simulate, calibrate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kernel.workspace import workspace_dir

app = typer.Typer(help="Data stage: simulate the Zhoushan world, calibration report.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
console = Console()


@app.command()
def simulate(
    enterprises: Annotated[int | None, typer.Option(help="initial universe N0 (default from world.yaml)")] = None,
    start: Annotated[str | None, typer.Option(help="first modelling month YYYY-MM")] = None,
    end: Annotated[str | None, typer.Option(help="last simulated month YYYY-MM")] = None,
    seed: Annotated[int | None, typer.Option(help="root random seed")] = None,
    oracle: Annotated[bool, typer.Option(help="compute the Monte-Carlo oracle at evaluation months")] = True,
    dirty: Annotated[bool, typer.Option(help="inject the dirty records of simulation.md §8")] = True,
    workspace: Annotated[Path | None, typer.Option(help="workspace folder (default ZHOUXIN_WORKSPACE or ./workspace)")] = None,
) -> None:
    """Simulate a world: raw deliveries per library and month, platform tables, and truth/."""
    run_simulation(enterprises=enterprises, start=start, end=end, seed=seed, oracle=oracle, dirty=dirty,
                   workspace=workspace)


def run_simulation(enterprises: int | None = None, start: str | None = None, end: str | None = None,
                   seed: int | None = None, oracle: bool = True, dirty: bool = True,
                   workspace: Path | None = None) -> None:
    """Simulate with a progress bar and print a readable summary."""
    from data.simulate.params import load_world_params
    from data.simulate.run import simulate_world

    params = load_world_params(enterprises=enterprises, start=start, end=end, seed=seed)
    ws = workspace or workspace_dir()
    console.print(f"[bold]Simulating[/] {params.enterprises:,} enterprises, {params.start} → {params.end} "
                  f"(burn-in from {params.t_first // 12}), seed {params.seed}, workspace {ws}")
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("months", total=params.t_end - params.t_first + 1)
        summary = simulate_world(params, ws, monte_carlo=oracle, dirty=dirty,
                                 progress=lambda done, total: bar.update(task, completed=done))
    table = Table(title="Simulated deliveries", show_lines=False)
    table.add_column("sub-item")
    table.add_column("rows", justify="right")
    for name, rows in summary.rows_by_sub_item.items():
        table.add_row(name, f"{rows:,}")
    table.add_row("[bold]total", f"[bold]{summary.total_rows:,}")
    console.print(table)
    console.print(f"{summary.files:,} delivery files, {summary.slots_used:,} enterprises ever registered, "
                  f"hazard intercept a = {summary.hazard_a:.3f}; {summary.seconds:.1f} s "
                  f"({summary.records_per_second:,.0f} records/s), peak RSS {summary.peak_rss_mb:,.0f} MB")


@app.command()
def calibrate(
    workspace: Annotated[Path | None, typer.Option(help="workspace holding the simulated world")] = None,
) -> None:
    """Check the last simulated world against the calibration targets (simulation.md §11)."""
    ok = run_calibration(workspace)
    raise typer.Exit(0 if ok else 1)


def run_calibration(workspace: Path | None = None) -> bool:
    """Print target / got / pass for every §11 target; store JSON and Markdown next to the world."""
    from data.simulate.calibration import calibration_report, write_report

    ws = workspace or workspace_dir()
    rows = calibration_report(ws)
    table = Table(title="Calibration report (simulation.md §11)")
    for col in ("target", "expected", "got", "pass"):
        table.add_column(col, justify="right" if col in ("got",) else "left")
    for r in rows:
        mark = {True: "[green]pass", False: "[red]FAIL", None: "[yellow]n/a"}[r.passed]
        table.add_row(r.name, r.expected, r.got, mark)
    console.print(table)
    paths = write_report(rows, ws)
    n_pass = sum(r.passed is True for r in rows)
    n_fail = sum(r.passed is False for r in rows)
    console.print(f"{n_pass} passed, {n_fail} failed, {len(rows) - n_pass - n_fail} not applicable; "
                  f"report: {paths[0]}")
    return n_fail == 0


@app.command()
def ingest(
    workspace: Annotated[Path | None, typer.Option(help="workspace holding raw/ (default ZHOUXIN_WORKSPACE)")] = None,
) -> None:
    """Validate, quarantine and land every delivery under raw/ into the warehouse (idempotent)."""
    ok = run_ingest(workspace)
    raise typer.Exit(0 if ok else 1)


def run_ingest(workspace: Path | None = None) -> bool:
    """Ingest with a progress bar; print totals, the conservation check and the quality report paths."""
    from data.warehouse.ingest import ingest_all
    from data.warehouse.quality import build_quality_report, write_quality_report

    ws = workspace or workspace_dir()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("batches", total=None)
        total = ingest_all(ws, progress=lambda done, n: bar.update(task, completed=done, total=n))
    table = Table(title="Ingestion")
    for col in ("batches", "skipped (already landed)", "records in", "accepted", "quarantined", "duplicates dropped",
                "normalised"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{v:,}" for v in (total.batches, total.skipped, total.records_in, total.accepted,
                                        total.quarantined, total.duplicates, total.normalised)))
    console.print(table)
    balanced = total.records_in == total.accepted + total.quarantined + total.duplicates
    console.print(("[green]conservation holds" if balanced else "[red]CONSERVATION BROKEN") +
                  f": {total.records_in:,} in = {total.accepted:,} + {total.quarantined:,} + {total.duplicates:,}")
    if total.fatal:
        console.print(f"[red]{len(total.fatal)} unreadable file(s)[/]: " + "; ".join(total.fatal[:3]))
    top = sorted(total.rules.items(), key=lambda kv: -kv[1])[:8]
    if top:
        console.print("top rule failures: " + ", ".join(f"{k} {v:,}" for k, v in top))
    paths = write_quality_report(build_quality_report(ws), ws)
    console.print(f"data-quality report: {paths[0]}")
    return balanced


@app.command()
def quarantine(
    summary: Annotated[bool, typer.Option("--summary", help="counts by department, rule and month")] = False,
    rule: Annotated[str | None, typer.Option(help="show quarantined records failing this rule")] = None,
    limit: Annotated[int, typer.Option(help="rows to show")] = 20,
    workspace: Annotated[Path | None, typer.Option(help="workspace (default ZHOUXIN_WORKSPACE)")] = None,
) -> None:
    """Query the quarantine: a summary by department x rule x month, or the records failing one rule."""
    import duckdb

    from data.warehouse.quality import quarantine_summary

    ws = workspace or workspace_dir()
    if summary or rule is None:
        s = quarantine_summary(ws)
        if s.empty:
            console.print("quarantine is empty")
            return
        piv = s.groupby(["department", "rule"], as_index=False)["records"].sum()
        t = Table(title="Quarantine by department and rule (all months)")
        for c in ("department", "rule", "records"):
            t.add_column(c)
        for r in piv.itertuples():
            t.add_row(r.department, r.rule, f"{r.records:,}")
        console.print(t)
        by_month = s.groupby("month")["records"].sum()
        console.print("by month: " + ", ".join(f"{m} {v}" for m, v in by_month.tail(12).items()) + " (last 12)")
        return
    folder = ws / "warehouse" / "_quarantine"
    rows = duckdb.sql(f"select source_file, line, failures, record from read_parquet('{folder}/**/*.parquet') "
                      f"where list_contains(list_transform(failures, lambda f: split_part(f, ':', 2)), '{rule}') "
                      f"limit {int(limit)}").df()
    t = Table(title=f"Quarantined records failing {rule!r}")
    for c in ("file", "line", "failures", "record"):
        t.add_column(c, overflow="fold")
    for r in rows.itertuples():
        t.add_row(r.source_file, str(r.line), ", ".join(r.failures), r.record[:160])
    console.print(t)


@app.command()
def detection(
    workspace: Annotated[Path | None, typer.Option(help="workspace with raw/, truth/ and warehouse/")] = None,
) -> None:
    """Judge ingestion against the simulator's dirty log: caught per defect kind, false quarantines."""
    import json

    from data.warehouse.evaluation import EXPECTED, UNDETECTABLE, detection_report

    ws = workspace or workspace_dir()
    rows, false_rate, false_n = detection_report(ws)
    t = Table(title="Dirty records vs ingestion (simulation.md §8)")
    for c in ("defect", "injected", "expected handling", "right rule", "rate", "outcomes"):
        t.add_column(c)
    for r in rows:
        exp = EXPECTED.get(r.defect, ("not detectable from one record", set()))[0]
        t.add_row(r.defect, f"{r.injected:,}", exp, f"{r.right_rule:,}",
                  f"{100 * r.rate:.1f}%" if r.defect in EXPECTED else "-", r.outcome_counts)
    console.print(t)
    caught = sum(r.right_rule for r in rows if r.defect in EXPECTED)
    injected = sum(r.injected for r in rows if r.defect in EXPECTED)
    console.print(f"detectable kinds: {caught:,}/{injected:,} = {100 * caught / max(injected, 1):.2f}% handled with the "
                  f"right rule; clean records quarantined: {false_n:,} ({100 * false_rate:.4f}%)")
    for k, why in UNDETECTABLE.items():
        console.print(f"  {k}: {why}")
    out = ws / "reports" / "ingest_detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": [r.__dict__ | {"rate": r.rate} for r in rows], "false_quarantine_rate": false_rate,
                               "false_quarantined": false_n, "undetectable": UNDETECTABLE}, indent=1, ensure_ascii=False),
                   encoding="utf-8")


def run_credit_index(ws: Path) -> None:
    """Build the FTZ / district / industry credit index series and print the headline."""
    from data.marts.credit_index import build_credit_index

    res = build_credit_index(ws)
    ftz = res.series("ftz").dropna()
    city = res.series("city").dropna()
    note = f" ({res.base_note})" if res.base_note else ""
    console.print(f"credit index (base {res.base_month} = 100{note}): FTZ {ftz.iloc[-1]:.2f}, city {city.iloc[-1]:.2f} "
                  f"at {ftz.index[-1]} (provisional: {', '.join(res.provisional_months)}); "
                  f"chart {res.paths.get('html')}")


@app.command("credit-index")
def credit_index(workspace: Annotated[Path | None, typer.Option(help="workspace folder")] = None) -> None:
    """The FTZ / district / industry credit index (base 2019-12 = 100, chain-linked) with its chart."""
    run_credit_index(workspace or workspace_dir())
