"""Monitoring on this machine: the pipeline config mapped onto the stack's monitoring job, plus the Evidently UI.

`make monitor` runs `services.monitoring` once with settings from `pipelines/pipeline.yaml` (the same code the
stack's container loops over); `make monitoring-ui` serves the Evidently workspace on 127.0.0.1:8000 as a
background process with its pid and log under the state dir; `make down` stops it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import platform
from pipelines.config import AlertConfig, ConfigError, PipelineConfig
from pipelines.uris import split_credentials
from services.monitoring.alert import AlertConfigError, AlertSettings, load_alert
from services.monitoring.observability import job_logger, json_handler
from services.monitoring.policy import PolicyError
from services.monitoring.settings import MonitorSettings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from services.monitoring.job import MonitorResult

UI_PROCESS = "monitoring-ui"


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
    from pipelines.actor import actor
    from pipelines.registry import git_sha

    monitoring, state = config.monitoring, monitoring_dir(config)
    try:
        policy = monitoring.overridden(on_drift=on_drift, window_rows=window_rows, window_hours=window_hours)
    except PolicyError as exc:
        raise ConfigError(f"monitoring settings given to this run: {exc}") from None
    return MonitorSettings(
        # Credentials travel in MLFLOW_TRACKING_USERNAME / _PASSWORD (set by `connect`), never in the URI.
        tracking_uri=split_credentials(config.tracking.resolved_uri)[0],
        model_name=config.model_name,
        inference_log_dir=config.platform.inference_log_dir,
        workspace_dir=state / "workspace",
        reports_dir=state / "reports",
        heartbeat_file=state / "heartbeat",
        policy=policy,
        log_index_file=state / "log-index.json",
        seed=config.data.seed,
        alert=_alert(monitoring.alert),
        audit_actor={**actor(), "platform_git_sha": git_sha()},  # as every record the CLI writes
    )


def _alert(alert: AlertConfig | None) -> AlertSettings | None:
    if alert is None:
        return None
    try:
        return load_alert(alert.webhook_url_file, kind=alert.kind, token_file=alert.token_file,
                          timeout_s=alert.timeout_seconds, attempts=alert.attempts)
    except AlertConfigError as exc:
        raise ConfigError(f"pipeline config monitoring.alert: {exc}") from None


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
    """Judge the logged traffic once: verdict, one-line summary, HTML report, MLflow run, retrain request; a request
    opened is an audit record, each judged version's verdict a line of its model card."""
    from pipelines.registry import connect
    from services.monitoring.job import run_once  # Evidently: loaded only by the commands that judge

    client = connect(config)

    settings = monitor_settings(config, on_drift=on_drift, window_rows=window_rows, window_hours=window_hours)
    _log_to_file(config)
    result = run_once(settings, progress=progress)
    record_facts(config, client, result)
    return result


def record_facts(config: PipelineConfig, client: MlflowClient, result: MonitorResult) -> None:
    """The verdicts as later facts of the cards (the job itself writes a retrain request's audit record): neither
    fails the run (the job's own record, the report run, is written), a failure is said on stderr."""
    from pipelines.model_card import note_fact
    from pipelines.registry import resolve

    for judged in (version for version in result.versions if version.mlflow_run_id):
        try:
            model = resolve(client, config.model_name, version=judged.model_version)
        except Exception as exc:  # noqa: BLE001  no card to write to (a version deleted since): say so, go on
            print(f"note: no model card of v{judged.model_version} to note the verdict on: {exc}", file=sys.stderr)
            continue
        note_fact(client, model, f"monitoring {judged.verdict} on {judged.rows} rows: {judged.summary} "
                                 f"(report run {judged.mlflow_run_id})")
    if result.audit_failure:
        print(f"note: the retrain request is open (its audit record could not be written: {result.audit_failure})",
              file=sys.stderr)


def ui_process(config: PipelineConfig) -> platform.Process:
    return platform.Process(UI_PROCESS, config.platform.state_dir)


def start_monitoring_ui(config: PipelineConfig) -> str:
    """Serve the Evidently workspace unless it already answers; return its URL. Idempotent."""
    settings = config.platform
    url, workspace = settings.monitoring_ui_url, monitoring_dir(config) / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    platform.serve_once(
        ui_process(config),
        [
            sys.executable, "-m", "services.monitoring.ui",
            "--workspace", str(workspace),
            "--host", settings.host,
            "--port", str(settings.monitoring_ui_port),
        ],
        host=settings.host, port=settings.monitoring_ui_port, port_setting="platform.monitoring_ui_port",
        probe=f"{url}/api/version",  # the Evidently UI has no /health
        timeout_s=settings.startup_timeout_s, what=f"Evidently UI on {url}",
        env={"DO_NOT_TRACK": "1"},  # no usage telemetry from a local tool (and no network needed)
    )
    return url


def stop_monitoring_ui(config: PipelineConfig) -> bool:
    """Stop the Evidently UI (for `make down`); True if it was running."""
    return ui_process(config).stop()
