"""Monitoring on this machine: the pipeline config mapped onto the stack's monitoring job, plus the Evidently UI.

`make monitor` runs `services.monitoring` once with settings from `pipelines/pipeline.yaml` (the same code the
stack's container loops over); `make monitoring-ui` serves the Evidently workspace on 127.0.0.1:8000 as a
background process with its pid and log under the state dir; `make down` stops it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from mlflow.exceptions import MlflowException
from rich.console import Console
from rich.table import Table

from pipelines import platform
from pipelines.config import ConfigError, PipelineConfig, load_config
from services.monitoring.job import MonitorResult, run_once
from services.monitoring.observability import job_logger, json_handler
from services.monitoring.settings import ON_DRIFT_CHOICES, MonitorSettings

__all__ = [
    "MonitorResult",
    "monitor_cli",
    "monitor_settings",
    "monitoring_ui_cli",
    "run_monitor",
    "start_monitoring_ui",
    "stop_monitoring_ui",
]

UI_PROCESS = "monitoring-ui"
console = Console()
# The command's own table names the run's URL; MLflow's "View run" line would land inside the spinner.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def monitoring_dir(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "monitoring"


def monitor_settings(
    config: PipelineConfig,
    *,
    on_drift: str | None = None,
    window_rows: int | None = None,
    window_hours: float | None = None,
) -> MonitorSettings:
    """The job's settings from the pipeline config; arguments given here override the config's window and action."""
    monitoring, state = config.monitoring, monitoring_dir(config)
    return MonitorSettings(
        tracking_uri=config.tracking.resolved_uri,
        model_name=config.model_name,
        inference_log_dir=config.platform.inference_log_dir,
        workspace_dir=state / "workspace",
        reports_dir=state / "reports",
        heartbeat_file=state / "heartbeat",
        experiment=monitoring.experiment,
        min_rows=monitoring.min_rows,
        drift_share_threshold=monitoring.drift_share_threshold,
        window_rows=window_rows if window_rows is not None else monitoring.window_rows,
        window_hours=window_hours if window_hours is not None else monitoring.window_hours,
        max_sample_rows=monitoring.max_sample_rows,
        on_drift=on_drift or monitoring.on_drift,  # type: ignore[arg-type]  # MonitorSettings checks the value
        cooldown_minutes=monitoring.cooldown_minutes,
        interval_minutes=monitoring.interval_minutes,
        seed=config.data.seed,
    )


def _log_to_file(config: PipelineConfig) -> Path:
    """The job's JSON lines go to `<state_dir>/logs/monitoring.log` locally (stdout is for the person)."""
    path = config.platform.state_dir / "logs" / "monitoring.log"
    logger = job_logger()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.addHandler(json_handler(logging.FileHandler(path)))
        logger.setLevel(logging.INFO)
    return path


def run_monitor(
    config: PipelineConfig,
    *,
    on_drift: str | None = None,
    window_rows: int | None = None,
    window_hours: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> MonitorResult:
    """Judge the logged traffic once: verdict, one-line summary, HTML report, MLflow run, retrain request."""
    settings = monitor_settings(config, on_drift=on_drift, window_rows=window_rows, window_hours=window_hours)
    _log_to_file(config)
    return run_once(settings, progress=progress)


def ui_process(config: PipelineConfig) -> platform.Process:
    return platform.Process(UI_PROCESS, config.platform.state_dir)


def start_monitoring_ui(config: PipelineConfig) -> str:
    """Serve the Evidently workspace unless it already answers; return its URL. Idempotent."""
    settings, process = config.platform, ui_process(config)
    url, workspace = settings.monitoring_ui_url, monitoring_dir(config) / "workspace"
    probe = f"{url}/api/version"  # the Evidently UI has no /health
    if process.pid() is not None and platform.url_ok(probe):
        return url
    if platform.port_in_use(settings.host, settings.monitoring_ui_port):
        raise platform.PlatformError(
            f"port {settings.host}:{settings.monitoring_ui_port} is taken by another program; "
            "stop it or set platform.monitoring_ui_port in the pipeline config"
        )
    workspace.mkdir(parents=True, exist_ok=True)
    process.start(
        [
            sys.executable, "-m", "evidently.cli", "ui",
            "--workspace", str(workspace),
            "--host", settings.host,
            "--port", str(settings.monitoring_ui_port),
        ],
        env={"DO_NOT_TRACK": "1"},  # no usage telemetry from a local tool (and no network needed)
    )
    platform.wait_until(lambda: platform.url_ok(probe), process, settings.startup_timeout_s, f"Evidently UI on {url}")
    return url


def stop_monitoring_ui(config: PipelineConfig) -> bool:
    """Stop the Evidently UI (for `make down`); True if it was running."""
    return ui_process(config).stop()


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="pipeline config (default: pipelines/pipeline.yaml)")
]


def _table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def monitor_cli(
    config_path: ConfigOption = None,
    on_drift: Annotated[
        str | None,
        typer.Option(help=f"what DRIFT triggers: {' | '.join(ON_DRIFT_CHOICES)} (default: monitoring.on_drift)"),
    ] = None,
    window_rows: Annotated[
        int | None, typer.Option(min=1, help="judge the newest N rows (default: since the last report)")
    ] = None,
    window_hours: Annotated[
        float | None, typer.Option(min=0.001, help="judge the rows of the last N hours")
    ] = None,
) -> None:
    """Judge logged traffic against the serving version's training snapshot: exit 0 OK, 3 DRIFT, 4 NOT ENOUGH DATA."""
    if on_drift is not None and on_drift not in ON_DRIFT_CHOICES:
        raise _fail(f"--on-drift must be one of {', '.join(ON_DRIFT_CHOICES)} (got {on_drift!r})")
    try:
        config = load_config(config_path)
        uri = config.tracking.resolved_uri
        # Fail in a second, not after the MLflow client's minutes of retries.
        if uri.startswith(("http://", "https://")) and not platform.url_ok(f"{uri.rstrip('/')}/health"):
            raise _fail(f"MLflow at {uri} does not answer (is the platform up? `make platform`)")
        with console.status("Monitoring ...") as status:
            result = run_monitor(
                config,
                on_drift=on_drift,
                window_rows=window_rows,
                window_hours=window_hours,
                progress=lambda message: status.update(f"Monitoring: {message} ..."),
            )
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except MlflowException as exc:
        raise _fail(f"MLflow: {exc.message.splitlines()[0]} (is the platform up? `make platform`)") from None
    except (ConnectionError, OSError) as exc:
        raise _fail(f"{exc} (is the platform up? `make platform`)") from None
    colour = {"OK": "green", "DRIFT": "red"}.get(str(result.verdict), "yellow")
    ui_running = ui_process(config).pid() is not None
    console.print(
        _table(
            f"Monitoring of {config.model_name}",
            {
                "verdict": f"[{colour}]{result.verdict}[/{colour}]",
                "summary": result.summary,
                "report": result.report_path or "none (nothing judged)",
                "MLflow run": result.mlflow_run_url or result.mlflow_run_id or "none (nothing judged)",
                "retrain requested": "yes" if result.retrain_requested else "no",
                "Evidently workspace": result.workspace_dir,
                "Evidently UI": config.platform.monitoring_ui_url if ui_running else "not running: make monitoring-ui",
                "job log (JSON)": config.platform.state_dir / "logs" / "monitoring.log",
            },
        )
    )
    raise typer.Exit(result.exit_code)


def monitoring_ui_cli(config_path: ConfigOption = None) -> None:
    """Serve the Evidently workspace (monitoring reports) on the local UI port; idempotent."""
    try:
        config = load_config(config_path)
        with console.status("Starting the Evidently UI (about 20 s) ..."):
            url = start_monitoring_ui(config)
    except (ConfigError, platform.PlatformError) as exc:
        raise _fail(str(exc)) from None
    process = ui_process(config)
    console.print(
        _table(
            "Evidently UI",
            {
                "URL": url,
                "workspace": monitoring_dir(config) / "workspace",
                "pid": process.pid(),
                "log": process.log_file,
                "stop": "make down",
            },
        )
    )
