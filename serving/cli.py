"""`zhouxin serve …`, `zhouxin audit …` and `zhouxin replay`: run the bank-facing service and govern it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kernel.errors import ZhouxinError
from kernel.workspace import workspace_dir

serve_app = typer.Typer(help="The bank-facing BentoML service: run it, manage API keys, consents and rating overrides.",
                        no_args_is_help=True, pretty_exceptions_show_locals=False)
keys_app = typer.Typer(help="API keys per institution (stored hashed).", no_args_is_help=True)
consent_app = typer.Typer(help="Enterprise authorisations of institutions (products_and_demands.md §6).",
                          no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log of every call.", no_args_is_help=True,
                        pretty_exceptions_show_locals=False)
serve_app.add_typer(keys_app, name="keys")
override_app = typer.Typer(help="Analysts' overrides of a firm's grade (ratings_and_signals.md §1.3).",
                           no_args_is_help=True)
serve_app.add_typer(consent_app, name="consent")
serve_app.add_typer(override_app, name="override")
console = Console()

WorkspaceOpt = Annotated[Path | None, typer.Option(help="workspace folder (default ZHOUXIN_WORKSPACE or ./workspace)")]
ProfileOpt = Annotated[str | None, typer.Option(help="profile: local | production (default ZHOUXIN_PROFILE or local)")]


def _engine(ws: Path | None, profile: str | None):
    from kernel.profile import load_profile
    from serving.operational import open_operational

    return open_operational(load_profile(profile).operational.resolved(ws or workspace_dir()))


def _print_table(title: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """One rich table; None prints as an empty cell."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


@contextmanager
def _clear_errors() -> Iterator[None]:
    """A platform error becomes one red line and exit status 2 (no traceback)."""
    try:
        yield
    except ZhouxinError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@serve_app.command("start")
def start(workers: Annotated[int | None, typer.Option(help="worker processes (default serving.yaml)")] = None,
          host: Annotated[str | None, typer.Option(help="bind address (default serving.yaml)")] = None,
          port: Annotated[int | None, typer.Option(help="port (default serving.yaml)")] = None,
          workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Run `bentoml serve serving.service:Zhouxin` on the workspace's stores (Ctrl-C stops it)."""
    from serving.config import load_serving_config

    cfg = load_serving_config()
    env = dict(os.environ)
    env["ZHOUXIN_WORKSPACE"] = str(workspace or workspace_dir())
    if profile:
        env["ZHOUXIN_PROFILE"] = profile
    env["OMP_NUM_THREADS"] = str(cfg.model_threads)      # read when a worker loads OpenMP, before any model
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(
        {"services": {"zhouxin": {"workers": workers or cfg.workers, "traffic": {"timeout": cfg.timeout_s}}}})
    bentoml = Path(sys.executable).with_name("bentoml")
    cmd = [str(bentoml), "serve", "serving.service:Zhouxin", "--host", host or cfg.host,
           "--port", str(port or cfg.port), "--working-dir", str(Path(__file__).resolve().parent.parent)]
    console.print(f"serving {env['ZHOUXIN_WORKSPACE']} on http://{host or cfg.host}:{port or cfg.port} "
                  f"with {workers or cfg.workers} worker(s); OpenAPI at /docs.json")
    raise typer.Exit(subprocess.call(cmd, env=env))


@keys_app.command("issue")
def keys_issue(institution: Annotated[str, typer.Argument(help="institution id, e.g. LSB1")],
               workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Issue a key; it is printed once and only its hash is kept."""
    from serving.keys import issue_key

    with _clear_errors():
        key = issue_key(_engine(workspace, profile), institution)
    console.print(f"key for {institution} (shown once, store it now):")
    typer.echo(key)


@keys_app.command("rotate")
def keys_rotate(institution: Annotated[str, typer.Argument(help="institution id")],
                grace_days: Annotated[int | None, typer.Option(help="days the old keys keep working")] = None,
                workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Issue a new key; the institution's older keys expire after the grace period."""
    from serving.config import load_serving_config
    from serving.keys import rotate_key

    grace = load_serving_config().key_grace_days if grace_days is None else grace_days
    with _clear_errors():
        key = rotate_key(_engine(workspace, profile), institution, grace)
    console.print(f"new key for {institution}; older keys expire in {grace} day(s):")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id (the part after zx_)")],
                workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Revoke a key at once."""
    from serving.keys import revoke_key

    with _clear_errors():
        revoke_key(_engine(workspace, profile), key_id)
    console.print(f"key {key_id} revoked")


@keys_app.command("list")
def keys_list(workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Every key's id, institution and state (never the secret)."""
    from serving.keys import list_keys

    _print_table("API keys", ("key id", "institution", "created", "expires", "revoked"),
                 [(k["key_id"], k["institution_id"], k["created_at"], k["expires_at"], k["revoked_at"])
                  for k in list_keys(_engine(workspace, profile))])


@consent_app.command("grant")
def consent_grant(uscc: Annotated[str, typer.Option(help="the enterprise's USCC")],
                  institution: Annotated[str, typer.Option(help="institution id")],
                  purpose: Annotated[str, typer.Option(help="loan_application | post_loan_monitoring")] = "loan_application",
                  scope: Annotated[list[str] | None, typer.Option(help="scopes (repeatable); default basic_profile")] = None,
                  days: Annotated[int, typer.Option(help="validity in days (default 12 months)")] = 365,
                  workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Record an enterprise's authorisation of an institution for a purpose."""
    from serving.config import load_serving_config
    from serving.consent import grant_consent

    with _clear_errors():
        cid = grant_consent(_engine(workspace, profile), uscc, institution, purpose, scope or ["basic_profile"],
                            days, load_serving_config().purposes)
    console.print(f"consent {cid}: {uscc} authorises {institution} for {purpose} ({days} days)")


@consent_app.command("revoke")
def consent_revoke(consent_id: Annotated[str, typer.Argument(help="consent id")],
                   workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Withdraw an authorisation at once."""
    from serving.consent import revoke_consent

    with _clear_errors():
        revoke_consent(_engine(workspace, profile), consent_id)
    console.print(f"consent {consent_id} revoked")


@consent_app.command("list")
def consent_list(uscc: Annotated[str | None, typer.Option(help="only this firm")] = None,
                 institution: Annotated[str | None, typer.Option(help="only this institution")] = None,
                 workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Consents with their validity."""
    from serving.consent import list_consents

    _print_table("consents", ("consent", "uscc", "institution", "purpose", "scope", "granted", "expires", "revoked"),
                 [(r["consent_id"], r["uscc"], r["institution_id"], r["purpose"], r["scope"], r["granted_at"][:19],
                   r["expires_at"][:19], (r["revoked_at"] or "")[:19])
                  for r in list_consents(_engine(workspace, profile), uscc, institution)])


@override_app.command("set")
def override_set(uscc: Annotated[str, typer.Option(help="the enterprise's USCC")],
                 grade: Annotated[str, typer.Option(help="the grade to publish (AAA … C)")],
                 analyst: Annotated[str, typer.Option(help="who decides (name or staff id)")],
                 reason: Annotated[str, typer.Option(help="why; required for a move of more than one notch")] = "",
                 days: Annotated[int, typer.Option(help="how long it holds")] = 90,
                 workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Override the champion's grade of one firm; it holds for this model version only."""
    from kernel.profile import load_profile
    from kernel.uscc import normalise_uscc
    from serving.config import load_serving_config
    from serving.gateway import Gateway
    from serving.overrides import set_override

    ws = workspace or workspace_dir()
    gw = Gateway(ws, load_profile(profile), load_serving_config(), watch=False)
    try:
        with _clear_errors():
            try:
                fam, answer = gw.model_answer(normalise_uscc(uscc))
            except LookupError as e:
                raise ZhouxinError(str(e)) from None
            if answer.get("in_default"):
                raise ZhouxinError(f"{uscc} is in default (grade D): a grade override does not apply")
            grades = list(fam.model.grade_names)  # type: ignore[attr-defined]
            oid = set_override(gw.engine, uscc, grade, answer["grade"], grades, analyst, fam.registered_model,
                               fam.version, reason, days)
    finally:
        gw.close()
    console.print(f"override {oid}: {uscc} {answer['grade']} -> {grade} for {fam.registered_model} "
                  f"v{fam.version}, {days} days, by {analyst}")


@override_app.command("revoke")
def override_revoke(override_id: Annotated[str, typer.Argument(help="override id")],
                    workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """End an override at once: the firm gets the model's grade again."""
    from serving.overrides import revoke_override

    with _clear_errors():
        revoke_override(_engine(workspace, profile), override_id)
    console.print(f"override {override_id} revoked")


@override_app.command("list")
def override_list(uscc: Annotated[str | None, typer.Option(help="only this firm")] = None,
                  workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Every override, live or not, with who made it, why and for which model version."""
    from serving.overrides import list_overrides

    _print_table("rating overrides", ("override", "uscc", "model", "version", "model grade", "grade", "analyst",
                                      "reason", "created", "expires", "revoked"),
                 [(r["override_id"], r["uscc"], r["model"], r["model_version"], r["model_grade"], r["grade"],
                   r["analyst"], r["reason"], r["created_at"][:19], r["expires_at"][:19],
                   (r["revoked_at"] or "")[:19]) for r in list_overrides(_engine(workspace, profile), uscc)])


@audit_app.command("verify")
def audit_verify(workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Recompute the hash chain; exit 1 and name the first bad row if anything was altered."""
    from serving.audit import verify_chain

    r = verify_chain(_engine(workspace, profile))
    if r.ok:
        console.print(f"[green]audit chain intact[/green]: {r.rows:,} rows, head {r.head_hash}")
        return
    console.print(f"[red]audit chain BROKEN at row {r.first_bad_seq}[/red]: {r.problem} "
                  f"({r.rows:,} rows check before it)")
    raise typer.Exit(1)


@audit_app.command("query")
def audit_query(uscc: Annotated[str | None, typer.Option(help="firm")] = None,
                institution: Annotated[str | None, typer.Option(help="institution id")] = None,
                since: Annotated[str | None, typer.Option(help="from (ISO date/time, UTC)")] = None,
                until: Annotated[str | None, typer.Option(help="before (ISO date/time, UTC)")] = None,
                limit: Annotated[int, typer.Option(help="at most this many rows")] = 50,
                as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
                workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Calls by firm, bank and date."""
    from serving.audit import query

    rows = query(_engine(workspace, profile), uscc, institution, since, until, limit)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False))
        return
    _print_table(f"audit log ({len(rows)} rows)",
                 ("seq", "time", "institution", "route", "purpose", "uscc", "status", "model", "receipt"),
                 [(r["seq"], r["time"][:19], r["institution_id"] or "-", r["route"], r["purpose"], r["uscc"],
                   r["status"], f"{r['model'] or ''} {r['model_version'] or ''}", r["receipt_id"]) for r in rows])


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="JSON-lines file for the provincial platform")],
                 since: Annotated[str | None, typer.Option(help="from (ISO, UTC)")] = None,
                 until: Annotated[str | None, typer.Option(help="before (ISO, UTC)")] = None,
                 workspace: WorkspaceOpt = None, profile: ProfileOpt = None) -> None:
    """Export calls (one JSON object per line) with a trailer carrying the chain's head hash."""
    from serving.audit import export_jsonl

    trailer = export_jsonl(_engine(workspace, profile), out, since, until)
    console.print(f"{trailer['rows']:,} rows -> {out}; chain intact: {trailer['chain_ok']}; "
                  f"head {trailer['head_hash']}")


def replay(receipt_id: Annotated[str, typer.Argument(help="receipt id returned with an answer (RC_…)")],
           workspace: WorkspaceOpt = None, profile: ProfileOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="print the replay as JSON")] = False) -> None:
    """Reproduce a past answer from its audit row: same model version, same feature values."""
    from kernel.profile import load_profile
    from serving.replay import replay_receipt

    with _clear_errors():
        r = replay_receipt(workspace or workspace_dir(), load_profile(profile), receipt_id)
    if as_json:
        typer.echo(json.dumps(r.__dict__, ensure_ascii=False, default=str))
    else:
        console.print(f"receipt {r.receipt_id}: route {r.route}, status {r.status}, "
                      f"model {r.model} v{r.version}; row hash {'intact' if r.row_intact else 'ALTERED'}")
        console.print(f"stored:     {json.dumps(r.stored, ensure_ascii=False)}")
        console.print(f"recomputed: {json.dumps(r.recomputed, ensure_ascii=False)}")
        console.print(("[green]" if r.matches else "[red]") + r.note)
    if not (r.matches and r.row_intact):
        raise typer.Exit(1)
