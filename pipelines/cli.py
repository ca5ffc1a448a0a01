"""`pipelines` — the one CLI behind every Makefile target.

Exit codes: 0 done; 1 a gate, deploy, rollback or reproduction said no (nothing moved); 2 bad input
(config, data, arguments) or a platform part that is not there; 70 an unexpected error (a bug: the
traceback is printed). `monitor` exits with its verdict: 0 OK, 3 DRIFT, 4 NOT ENOUGH DATA.

Each command reads the config, calls the library, and prints a view (`pipelines.views`). Heavy libraries
(MLflow, BentoML, Evidently, scikit-learn) load inside the commands that use them.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import httpx
import typer

from pipelines import platform, steps, views
from pipelines.config import PipelineConfig, load_config
from pipelines.errors import CannotRun, Refused
from pipelines.steps import console
from services.contract import ON_DRIFT_CHOICES

if TYPE_CHECKING:
    from pipelines.deploy import ServingTarget
    from pipelines.stack import StackTarget

# Our own spinners and tables show progress and URLs; MLflow's download bars and "View run" lines
# would land inside them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

UNEXPECTED_ERROR = 70  # EX_SOFTWARE in sysexits.h

app = typer.Typer(help="Release a scikit-learn model: data -> train -> validate -> bento -> deploy.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="pipeline config (default: pipelines/pipeline.yaml)")
]


class TargetKind(StrEnum):
    local = "local"
    stack = "stack"


OnDrift = StrEnum("OnDrift", {choice: choice for choice in ON_DRIFT_CHOICES})
TargetOption = Annotated[
    TargetKind, typer.Option(help="local: bentoml serve on this machine; stack: a release image on the Pulumi stack")
]
StackOption = Annotated[str, typer.Option(help="Pulumi stack to release to (with --target stack)")]
AllowIncomparable = Annotated[bool, typer.Option(
    "--allow-incomparable",
    help="let the gate pass when the champion comparison cannot be made (recorded on the version and audited)")]
CanaryOption = Annotated[int | None, typer.Option(
    "--canary", min=1, max=50, metavar="PERCENT",
    help="stack only: serve the candidate to PERCENT of requests beside the champion first; promote it only if "
         "the canary analysis passes (pipeline config `canary`)")]


def command(name: str) -> Callable:
    """Register a command whose expected failures print one clear line instead of a traceback."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
                raise  # the command's own exit code, or a usage error click reports itself
            except Refused as exc:
                if str(exc):  # a gate says why in its own table before refusing
                    console.print(f"[red]{exc.step} failed, nothing moved:[/red] {exc}")
                raise typer.Exit(1) from None
            except CannotRun as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
            except (ConnectionError, OSError, httpx.HTTPError) as exc:
                console.print(f"[red]error:[/red] {exc} (is the platform up? `make platform`)")
                raise typer.Exit(2) from None
            except Exception as exc:
                mlflow_errors = sys.modules.get("mlflow.exceptions")  # loaded if MLflow ran at all
                if mlflow_errors and isinstance(exc, mlflow_errors.MlflowException):
                    console.print(f"[red]MLflow error:[/red] {exc.message.splitlines()[0]}")
                    raise typer.Exit(2) from None
                # A bug, not a verdict: never exit 1, which scripts read as "a gate or deploy said no".
                traceback.print_exc()
                console.print(f"[red]unexpected error[/red] ({type(exc).__name__}); the traceback is above")
                raise typer.Exit(UNEXPECTED_ERROR) from None

        return app.command(name)(run)

    return register




def _serving_target(config: PipelineConfig, kind: TargetKind, stack: str) -> ServingTarget:
    if kind is TargetKind.local:
        from pipelines.local import LocalTarget

        return LocalTarget(config)
    return _stack_target(config, stack)


def _stack_target(config: PipelineConfig, stack: str) -> StackTarget:
    from pipelines.stack import PulumiStack, StackTarget

    return StackTarget(config, PulumiStack(stack), name=f"stack:{stack}")


@command("platform")
def platform_command(config_path: ConfigOption = None) -> None:
    """Start the local MLflow server (SQLite + served artifacts) in the background. Idempotent."""
    steps.start_platform(load_config(config_path))


@command("data")
def data_command(config_path: ConfigOption = None) -> None:
    """Load and check the configured dataset; print its version (digest of the full table)."""
    steps.check_data(load_config(config_path))


@command("train")
def train_command(config_path: ConfigOption = None) -> None:
    """Train, log to MLflow and register a new version aliased @challenger."""
    config = steps.connected_config(config_path)
    steps.train_model(config, steps.check_data(config))


@command("validate")
def validate_command(config_path: ConfigOption = None, allow_incomparable: AllowIncomparable = False) -> None:
    """Gate @challenger: thresholds, non-regression vs @champion, slices, behaviour. Exit 1 on failure."""
    from pipelines.registry import CHALLENGER

    config = steps.connected_config(config_path)
    steps.gate_candidate(config, steps.resolve_version(config, alias=CHALLENGER), allow_incomparable=allow_incomparable)


@command("build")
def build_command(
    config_path: ConfigOption = None,
    version: Annotated[str | None, typer.Option(help="model version (default: @challenger)")] = None,
) -> None:
    """Build the bento for @challenger (or --version) from the MLflow registry."""
    from pipelines.registry import CHALLENGER

    config = steps.connected_config(config_path)
    steps.build_bento(config, steps.resolve_version(config, alias=None if version else CHALLENGER, version=version))


@command("deploy")
def deploy_command(
    config_path: ConfigOption = None, target: TargetOption = TargetKind.local, stack: StackOption = "dev",
    allow_incomparable: AllowIncomparable = False, canary: CanaryOption = None,
) -> None:
    """Gate, build and serve @challenger (health-gated); then promote it to @champion."""
    config = steps.connected_config(config_path)
    steps.release_candidate(config, _serving_target(config, target, stack), allow_incomparable=allow_incomparable,
                            canary_percent=canary)


@command("rollback")
def rollback_command(
    config_path: ConfigOption = None, target: TargetOption = TargetKind.local, stack: StackOption = "dev"
) -> None:
    """Serve @previous again and swap @champion and @previous back."""
    from pipelines.deploy import rollback

    config = steps.connected_config(config_path)
    where = _serving_target(config, target, stack)
    with console.status(f"Rolling back to @previous on {where.name} ..."):
        result = rollback(config, where)
    console.print(views.release(config, result, "Rolled back"))


@command("stack-up")
def stack_up_command(config_path: ConfigOption = None, stack: StackOption = "dev") -> None:
    """Apply the Pulumi stack serving what the registry says serves (@champion's release image on this
    stack), not what this checkout's stack file says: a fresh clone's file names no release."""
    config = steps.connected_config(config_path)
    target = _stack_target(config, stack)
    with console.status(f"Applying {target.name} with the registry's release pointer ..."):
        outputs = target.up()
    console.print(views.key_values(f"Stack {stack}", dict(outputs)))


@command("set-aliases")
def set_aliases_command(
    champion: Annotated[str, typer.Option(help="version that serves")],
    previous: Annotated[str | None, typer.Option(help="version that served before")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Set @champion (and @previous) by hand: what a release prints when its alias move did not finish."""
    from pipelines.registry import AliasMove, connect, move_aliases, resolve

    config = steps.connected_config(config_path)
    client = connect(config)
    for version in filter(None, (champion, previous)):
        resolve(client, config.model_name, version=version)  # refuses a version that does not exist
    move_aliases(client, config.model_name, AliasMove(champion=champion, previous=previous))
    console.print(f"@champion=v{champion}" + (f", @previous=v{previous}" if previous else ""))


@command("reproduce")
def reproduce_command(
    version: Annotated[str, typer.Argument(help="registered model version to retrain")],
    config_path: ConfigOption = None,
) -> None:
    """Retrain a version from its recorded snapshot and config; exit 1 unless the metrics are identical."""
    from pipelines.train import reproduce

    config = steps.connected_config(config_path)
    with console.status(f"Retraining v{version} from its recorded snapshot ..."):
        result = reproduce(config, version)
    console.print(views.reproduction(config, result))
    if result.recorded_git_sha != result.current_git_sha:
        console.print(f"note: trained at {result.recorded_git_sha}, code now at {result.current_git_sha}")
    if not result.identical:
        console.print("[red]metrics differ[/red]")
        raise Refused
    console.print("[green]identical metrics[/green]")


@command("promote")
def promote_command(
    version: Annotated[str, typer.Argument(help="model version in the source registry")],
    source: Annotated[str, typer.Option(
        "--from", envvar="PROMOTE_FROM_URI", show_envvar=True,
        help="tracking URI of the source registry; its login: PROMOTE_FROM_USERNAME / PROMOTE_FROM_PASSWORD "
             "(or _TOKEN), or user:password@ in the URI")],
    target: Annotated[str | None, typer.Option(
        "--to", envvar="PROMOTE_TO_URI", show_envvar=True,
        help="tracking URI of the target registry (default: the configured one, MLFLOW_TRACKING_URI); its login: "
             "PROMOTE_TO_USERNAME / PROMOTE_TO_PASSWORD (or _TOKEN), or user:password@ in the URI, else the "
             "MLFLOW_TRACKING_* login when it is the configured registry. Neither registry sees the other's.")] = None,
    config_path: ConfigOption = None,
) -> None:
    """Copy one exact model version into another registry with lineage, then gate it there; exit 1 if it fails."""
    from pipelines.promote import promote

    config = load_config(config_path)
    with console.status(f"Promoting v{version} ...") as status:
        result = promote(config, version, source_uri=source, target_uri=target or config.tracking.resolved_uri,
                         progress=lambda message: status.update(f"Promoting: {message} ..."))
    if result.report is not None:
        console.print(views.gate(result.report))
    if not result.passed:
        console.print("[red]gate failed in the target[/red]: the copy was deleted again; the target registry is "
                      "as it was")
        raise Refused
    console.print(views.key_values(f"Promoted {config.model_name} v{version}", {
        "into": f"{result.target_registry} as v{result.target_version} (@challenger)", **result.lineage,
        "next": "make deploy against the target (its release: gate again, build, roll out)"}))


@command("status")
def status_command(config_path: ConfigOption = None) -> None:
    """What runs where: MLflow, serving, aliases, memory."""
    from pipelines.status import local_status

    config = load_config(config_path)
    console.print(views.key_values(f"Status of {config.model_name}", local_status(config)))


@command("traffic")
def traffic_command(
    config_path: ConfigOption = None,
    rows: Annotated[int, typer.Option(min=1, help="rows to send")] = 800,
    drifted_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of rows shifted")] = 0.5,
) -> None:
    """Send sample traffic from the champion's eval set to the local serving URL, part of it shifted."""
    steps.send_traffic(steps.connected_config(config_path), rows=rows, drifted_share=drifted_share)


@command("demo")
def demo_command(config_path: ConfigOption = None) -> None:
    """The whole loop on this machine: MLflow, data, train, gate, bento, deploy, traffic, monitoring."""
    from pipelines.local import LocalTarget
    from pipelines.monitor import run_monitor
    from pipelines.registry import CHAMPION

    config = load_config(config_path)
    steps.start_platform(config)
    steps.train_model(config, steps.check_data(config))
    steps.release_candidate(config, LocalTarget(config))
    steps.send_traffic(config)
    with console.status("Judging the logged traffic against the training snapshot with Evidently ..."):
        monitored = run_monitor(config)
    champion = steps.resolve_version(config, alias=CHAMPION)
    console.print(views.key_values("Demo done", {
        "MLflow": config.tracking.display_uri,
        "serving": f"{config.platform.serving_url}/predict",
        "model": f"{config.model_name} v{champion.version} (@champion)",
        "data version": champion.data_version,
        "monitoring": monitored.summary,
        "drift report": monitored.report_path,
        "next": "make monitoring-ui (Evidently UI), make status, make down",
    }))


@command("down")
def down_command(config_path: ConfigOption = None) -> None:
    """Stop the local serving process and MLflow server (state is kept under the state dir)."""
    from pipelines.local import stop_serving
    from pipelines.monitor import stop_monitoring_ui

    config = load_config(config_path)
    stopped = {"serving": stop_serving(config), "Evidently UI": stop_monitoring_ui(config),
               "MLflow": platform.mlflow_process(config).stop()}
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    console.print(f"state kept in {config.platform.state_dir}")


@command("monitor")
def monitor_command(
    config_path: ConfigOption = None,
    on_drift: Annotated[
        OnDrift | None, typer.Option(help="what DRIFT triggers (default: monitoring.on_drift)")
    ] = None,
    window_rows: Annotated[
        int | None, typer.Option(min=1, help="judge the newest N rows (default: since the last report)")
    ] = None,
    window_hours: Annotated[float | None, typer.Option(min=0.001, help="judge the rows of the last N hours")] = None,
) -> None:
    """Judge logged traffic against the serving version's training snapshot: exit 0 OK, 3 DRIFT, 4 NOT ENOUGH DATA."""
    from pipelines.monitor import run_monitor, ui_process

    config = steps.connected_config(config_path)
    with console.status("Monitoring ...") as status:
        result = run_monitor(
            config, on_drift=on_drift, window_rows=window_rows, window_hours=window_hours,
            progress=lambda message: status.update(f"Monitoring: {message} ..."),
        )
    ui_url = config.platform.monitoring_ui_url if ui_process(config).pid() is not None else None
    console.print(views.monitoring(config, result, ui_url))
    raise typer.Exit(result.exit_code)


@command("monitoring-ui")
def monitoring_ui_command(config_path: ConfigOption = None) -> None:
    """Serve the Evidently workspace (monitoring reports) on the local UI port; idempotent."""
    from pipelines.monitor import monitoring_dir, start_monitoring_ui, ui_process

    config = load_config(config_path)
    with console.status("Starting the Evidently UI (about 20 s) ..."):
        url = start_monitoring_ui(config)
    process = ui_process(config)
    console.print(views.key_values("Evidently UI", {
        "URL": url, "workspace": monitoring_dir(config) / "workspace", "pid": process.pid(),
        "log": process.log_file, "stop": "make down"}))


BackupTargetOption = Annotated[
    TargetKind, typer.Option("--target", help="local: the local platform's state; stack: the stack's containers")]
BackupDirOption = Annotated[
    Path | None, typer.Option("--dir", help="where archives go (default: <state dir>/backups)")]


@command("backup")
def backup_command(
    config_path: ConfigOption = None, target: BackupTargetOption = TargetKind.local, stack: StackOption = "dev",
    directory: BackupDirOption = None,
    keep: Annotated[int, typer.Option(min=1, help="archives of this source to keep; older ones are deleted")] = 7,
) -> None:
    """Archive the tracking state (database dump + artifact store + manifest) while the platform runs."""
    from pipelines.backup import create_backup
    from pipelines.backup_stores import tracking_store

    config = load_config(config_path)
    store = tracking_store(config, target.value, stack)
    with console.status(f"Backing up {store.description} ..."):
        result = create_backup(store, directory or config.platform.state_dir / "backups", keep)
    console.print(views.key_values("Backup", {
        "archive": result.archive, "size": f"{result.archive_bytes / 2**20:.1f} MiB "
        f"({result.manifest.total_bytes / 2**20:.1f} MiB in {len(result.manifest.files)} files)",
        "backend": result.manifest.backend, "MLflow": result.manifest.mlflow_version,
        "schema": result.manifest.schema_revision, "took": f"{result.seconds:.1f} s",
        "deleted (retention)": ", ".join(path.name for path in result.pruned) or "-"}))


@command("restore")
def restore_command(
    archive: Annotated[Path, typer.Argument(help="a .tar.gz written by `pipelines backup`")],
    config_path: ConfigOption = None, target: BackupTargetOption = TargetKind.local, stack: StackOption = "dev",
    force: Annotated[bool, typer.Option(help="replace a platform that holds data (it is backed up first)")] = False,
) -> None:
    """Restore a backup into an empty platform (checked whole before anything is touched)."""
    from pipelines.backup import restore_backup
    from pipelines.backup_stores import tracking_store
    from pipelines.deploy import release_lock

    config = load_config(config_path)
    store = tracking_store(config, target.value, stack)
    # The release lock: a deploy or rollback would move aliases in, or read, a registry being replaced.
    with release_lock(config), console.status(f"Restoring {archive.name} into {store.description} ..."):
        result = restore_backup(store, archive, force=force, safety_directory=config.platform.state_dir / "backups")
    console.print(views.key_values("Restored", {
        "archive": result.archive, "into": store.description, "made by": result.manifest.source,
        "at": result.manifest.created_at, "MLflow": result.manifest.mlflow_version,
        "files": len(result.manifest.files), "took": f"{result.seconds:.1f} s",
        "previous state": result.safety_backup or "-",
        "next": "make platform" if target is TargetKind.local else "the stack's MLflow is serving again"}))


if __name__ == "__main__":
    app()
