"""The platform's day-to-day commands: start, look, send traffic, stop, monitor, back up, restore."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from pipelines import platform, steps, views
from pipelines.cli_app import ConfigOption, StackOption, TargetKind, command
from pipelines.config import load_config
from pipelines.steps import console
from services.contract import ON_DRIFT_CHOICES

OnDrift = StrEnum("OnDrift", {choice: choice for choice in ON_DRIFT_CHOICES})


@command("platform")
def platform_command(config_path: ConfigOption = None) -> None:
    """Start the local MLflow server (SQLite + served artifacts) in the background. Idempotent."""
    steps.start_platform(load_config(config_path))


@command("status")
def status_command(config_path: ConfigOption = None) -> None:
    """What runs where: MLflow, the front, each stack; per model its aliases, local serving and monitoring."""
    from pipelines.status import platform_status
    from pipelines.storage import storage

    config = load_config(config_path)
    for table in views.status(platform_status(config), storage(config)):
        console.print(table)


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
    from pipelines.model_card import card_place
    from pipelines.monitor import run_monitor
    from pipelines.registry import CHAMPION
    from pipelines.serving_state import predict_url

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
        "serving": predict_url(config),
        "model": f"{config.model_name} v{champion.version} (@champion)",
        "data version": champion.data_version,
        "model card": card_place(config, champion),
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
    str | None, typer.Option("--dir", help="where archives go: a folder or s3://bucket/prefix (default: "
                                          "platform.backup_destination, else <state dir>/backups)")]


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
        result = create_backup(store, directory or config.platform.backups_at, keep)
    console.print(views.key_values("Backup", {
        "archive": result.archive, "size": f"{result.archive_bytes / 2**20:.1f} MiB "
        f"({result.manifest.total_bytes / 2**20:.1f} MiB in {len(result.manifest.files)} files)",
        "backend": result.manifest.backend, "MLflow": result.manifest.mlflow_version,
        "schema": result.manifest.schema_revision, "took": f"{result.seconds:.1f} s",
        "deleted (retention)": ", ".join(str(where) for where in result.pruned) or "-"}))


@command("restore")
def restore_command(
    archive: Annotated[str, typer.Argument(help="a .tar.gz written by `pipelines backup`: a path or an s3:// URL")],
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
    with release_lock(config), console.status(f"Restoring {archive} into {store.description} ..."):
        result = restore_backup(store, archive, force=force, safety_directory=config.platform.backups_at)
    console.print(views.key_values("Restored", {
        "archive": result.archive, "into": store.description, "made by": result.manifest.source,
        "at": result.manifest.created_at, "MLflow": result.manifest.mlflow_version,
        "files": len(result.manifest.files), "took": f"{result.seconds:.1f} s",
        "previous state": result.safety_backup or "-",
        "next": "make platform" if target is TargetKind.local else "the stack's MLflow is serving again"}))
