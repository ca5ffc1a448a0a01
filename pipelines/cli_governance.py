"""Governance commands: the audit trail (`audit`, `audit verify`), retirement (`retire`) and retention (`gc`)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from pipelines import steps
from pipelines.cli_app import ConfigOption, TargetKind, app, command, reporting
from pipelines.errors import Refused
from pipelines.steps import console

audit_app = typer.Typer(help="The audit trail: `audit` prints a timeline, `audit verify` checks the hash chains.",
                        invoke_without_command=True, no_args_is_help=False)
app.add_typer(audit_app, name="audit")

ModelOption = Annotated[str | None, typer.Option(help="model name (default: the config's model)")]


class AuditFormat(StrEnum):
    md = "md"
    json = "json"


class ChainBroken(Refused):
    step = "audit verify"


@audit_app.callback()
@reporting
def audit_group(ctx: typer.Context, model: ModelOption = None,
                version: Annotated[str | None, typer.Option(help="only this model version's records")] = None,
                format: Annotated[AuditFormat, typer.Option("--format", help="md or json")] = AuditFormat.md,
                config_path: ConfigOption = None) -> None:
    """The timeline of a model (or of one version) from its audit records alone."""
    if ctx.invoked_subcommand is not None:
        return
    from pipelines.audit import AuditTrail
    from pipelines.audit_views import timeline_markdown

    config = steps.connected_config(config_path)
    records = AuditTrail.of(config, model=model).timeline(version)
    name = model or config.model_name
    if format is AuditFormat.json:
        print(json.dumps(records, indent=2))
    else:
        console.print(timeline_markdown(name, version, records), markup=False, highlight=False, soft_wrap=True)


@command("verify", on=audit_app)
def verify_command(model: Annotated[str | None, typer.Option(help="only this model (default: every model)")] = None,
                   config_path: ConfigOption = None) -> None:
    """Recompute every model's hash chain (or --model's); name the first broken link; exit 1 if one is broken."""
    from pipelines.audit import verify_all

    config = steps.connected_config(config_path)
    reports = verify_all(config, model)
    for report in reports:
        if report.intact:
            console.print(f"[green]intact[/green] {report.model}: {report.records} record(s), "
                          f"head sha256 {report.head_sha256}", soft_wrap=True)
        else:
            console.print(f"[red]broken[/red] {report.model}: {report.broken}", markup=True, soft_wrap=True)
    if not reports:
        console.print("no audit records yet")
    broken = [report.model for report in reports if not report.intact]
    if broken:
        raise ChainBroken(f"the audit chain of {', '.join(broken)} does not verify")


@command("retire")
def retire_command(
    version: Annotated[str, typer.Argument(help="model version to retire")],
    reason: Annotated[str, typer.Option(help="why it retires (recorded in the audit trail and the card)")],
    config_path: ConfigOption = None,
) -> None:
    """Retire a version no alias names and nothing serves: tag it, remove its bentos and release images, record it."""
    from pipelines.retire import retire
    from pipelines.views import key_values

    config = steps.connected_config(config_path)
    with console.status(f"Retiring v{version} ..."):
        done = retire(config, version, reason)
    rows: dict[str, str] = {"reason": done.reason}
    for kind, items in done.removed.items():
        freed = done.freed_bytes.get(kind)
        rows[f"removed {kind}"] = ", ".join(items) + (f" ({freed / 1e6:.1f} MB freed)" if freed else "")
    rows.update({f"note {number}": note for number, note in enumerate(done.notes, 1)})
    rows["audit record"] = done.audit_url
    console.print(key_values(f"Retired {config.model_name} v{version}", rows))


@command("gc")
def gc_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; change nothing")] = False,
    config_path: ConfigOption = None,
    target: Annotated[TargetKind, typer.Option(help="local: the state dir's monitoring output; stack: the "
                                                    "stack's volumes on this Docker host")] = TargetKind.local,
    stack: Annotated[str, typer.Option(help="Pulumi stack whose volumes to sweep (with --target stack)")] = "dev",
) -> None:
    """Retire the versions outside the config's `lifecycle`, delete monitoring output and inference logs past their
    retention; print storage per kind before and after."""
    from pipelines.backup_stack import stack_name_prefix
    from pipelines.lifecycle import collect
    from pipelines.views import collected

    config = steps.connected_config(config_path)
    prefix = stack_name_prefix(stack) if target is TargetKind.stack else None
    with console.status("Collecting what falls outside the lifecycle ..."):
        done = collect(config, dry_run=dry_run, stack_prefix=prefix)
    console.print(collected(config, done, dry_run=dry_run))
