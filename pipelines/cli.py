"""`pipelines` — the one CLI behind every Makefile target.

Exit codes: 0 done, 1 a gate or deploy said no (nothing moved), 2 bad input (config, data, arguments)
or a platform part that is not there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from mlflow.exceptions import MlflowException
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines import platform
from pipelines.config import ConfigError, PipelineConfig, load_config
from pipelines.data import DataError, load_versioned
from pipelines.deploy import DeployError, LocalTarget, StackTarget
from pipelines.deploy import deploy as release
from pipelines.deploy import rollback as roll_back
from pipelines.monitor import monitoring_dir, run_monitor, start_monitoring_ui, stop_monitoring_ui, ui_process
from pipelines.registry import RegistryError
from pipelines.stack import PulumiStack, StackError
from pipelines.train import TrainError
from services.monitoring.settings import ON_DRIFT_CHOICES

# Our own spinners and tables show progress and URLs; MLflow's download bars and "View run" lines
# would land inside them.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

app = typer.Typer(help="Release a scikit-learn model: data -> train -> validate -> bento -> deploy.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="pipeline config (default: pipelines/pipeline.yaml)")
]


class Target(StrEnum):
    local = "local"
    stack = "stack"


OnDrift = StrEnum("OnDrift", {choice: choice for choice in ON_DRIFT_CHOICES})


class GateFailed(Exception):
    """Raised to exit 1 after the gate's own table was printed."""


def command(name: str | None = None) -> Callable:
    """Register a command whose known failures print one clear line instead of a traceback."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except GateFailed:
                raise typer.Exit(1) from None
            except DeployError as exc:
                console.print(f"[red]deploy failed, nothing moved:[/red] {exc}")
                raise typer.Exit(1) from None
            except (ConfigError, DataError, TrainError, RegistryError, platform.PlatformError, StackError) as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
            except MlflowException as exc:
                console.print(f"[red]MLflow error:[/red] {exc.message.splitlines()[0]}")
                raise typer.Exit(2) from None
            except (ConnectionError, OSError, httpx.HTTPError) as exc:
                console.print(f"[red]error:[/red] {exc} (is the platform up? `make platform`)")
                raise typer.Exit(2) from None

        return app.command(name)(run)

    return register


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def _require_mlflow(config: PipelineConfig) -> None:
    uri = config.tracking.resolved_uri
    if uri.startswith("http") and not platform.url_ok(f"{uri.rstrip('/')}/health"):
        raise platform.PlatformError(
            f"no MLflow server answers at {config.tracking.display_uri}; start one with `make platform`")


@command("platform")
def platform_up(config_path: ConfigOption = None) -> None:
    """Start the local MLflow server (SQLite + served artifacts) in the background. Idempotent."""
    config = load_config(config_path)
    with console.status(f"Starting MLflow on {config.platform.mlflow_url} ..."):
        url = platform.start_mlflow(config)
    console.print(_table("Local platform", {
        "MLflow": url, "state": config.platform.state_dir, "log": platform.mlflow_process(config).log_file}))


@command("data")
def data_version(config_path: ConfigOption = None) -> None:
    """Load and check the configured dataset; print its version (digest of the full table)."""
    config = load_config(config_path)
    data = load_versioned(config.data)
    console.print(_table("Dataset", {"source": data.source, "rows": len(data.frame),
                                     "columns": len(data.frame.columns), "data version": data.version}))


@command("train")
def train(config_path: ConfigOption = None) -> None:
    """Train, log to MLflow and register a new version aliased @challenger."""
    from pipelines.train import train as run_training

    config = load_config(config_path)
    _require_mlflow(config)
    with console.status("Loading and checking data ..."):
        data = load_versioned(config.data)
    console.print(f"data version {data.short_version} ({len(data.frame)} rows from {data.source})")
    with console.status(f"Training {config.model.estimator} and logging to {config.tracking.display_uri} ..."):
        result = run_training(config, data)
    rows = {"model": f"{config.model_name} v{result.model_version} (@challenger)", "run id": result.run_id,
            "data version": result.data_version,
            **{f"holdout {k}": f"{v:.4f}" for k, v in result.metrics.items()},
            "MLflow": f"{config.tracking.display_uri}/#/models/{config.model_name}/versions/{result.model_version}"}
    console.print(_table("Trained", rows))


def _gate(config: PipelineConfig) -> str:
    """Run the gate on @challenger; the version that passed, or GateFailed."""
    from pipelines.validate import validate as run_gate

    with console.status("Validating @challenger against the gates ..."):
        report = run_gate(config)
    table = Table(title=f"Validation of v{report.model_version}"
                  + (f" vs champion v{report.champion_version}" if report.champion_version else ""),
                  title_justify="left")
    for column in ("check", "candidate", "champion", "threshold", "result"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(escape(check.name), str(check.candidate), "" if check.champion is None else str(check.champion),
                      check.threshold, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]")
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    if not report.passed:
        console.print(f"[red]gate failed[/red]: {len(report.failures)} check(s) failed; "
                      "nothing was built or deployed, aliases unchanged")
        raise GateFailed
    console.print(f"[green]gate passed[/green]: v{report.model_version} may be released")
    return report.model_version


@command("validate")
def validate(config_path: ConfigOption = None) -> None:
    """Gate @challenger: thresholds, non-regression vs @champion, slices, behaviour. Exit 1 on failure."""
    config = load_config(config_path)
    _require_mlflow(config)
    _gate(config)


def _build(config: PipelineConfig, version: str | None = None):
    from pipelines.bento import build as build_bento

    with console.status("Building the bento from the registry ..."):
        bento = build_bento(config, version)
    console.print(_table("Bento", {"tag": bento.tag, "path": bento.path, "reused": bento.reused, **bento.labels}))
    return bento


@command("build")
def build(
    config_path: ConfigOption = None,
    version: Annotated[str | None, typer.Option(help="model version (default: @challenger)")] = None,
) -> None:
    """Build the bento for @challenger (or --version) from the MLflow registry."""
    config = load_config(config_path)
    _require_mlflow(config)
    _build(config, version)


def _print_release(config: PipelineConfig, result, title: str) -> None:
    console.print(_table(title, {
        "serving": result.deployment.url, "model": f"{config.model_name} v{result.deployment.model_version}",
        "bento": result.deployment.bento_tag, "champion": f"v{result.aliases.champion}",
        "previous": f"v{result.aliases.previous}" if result.aliases.previous else "-",
        "retrain request": "closed by this release" if result.retrain_request_closed else "none open",
        "audit run": result.audit_url}))


TargetOption = Annotated[
    Target, typer.Option(help="local: bentoml serve on this machine; stack: a release image on the Pulumi stack")
]
StackOption = Annotated[str, typer.Option(help="Pulumi stack to release to (with --target stack)")]


def _target(config: PipelineConfig, target: Target, stack: str) -> LocalTarget | StackTarget:
    if target is Target.local:
        return LocalTarget(config)
    return StackTarget(config, PulumiStack(stack), name=f"stack:{stack}")


@command("deploy")
def deploy(config_path: ConfigOption = None, target: TargetOption = Target.local, stack: StackOption = "dev") -> None:
    """Gate, build and serve @challenger (health-gated); then promote it to @champion."""
    config = load_config(config_path)
    _require_mlflow(config)
    bento = _build(config, _gate(config))  # exactly the version that passed, even if a newer one was trained since
    where = _target(config, target, stack)
    with console.status(f"Rolling out {bento.tag} to {where.name} and checking it ..."):
        result = release(config, bento, where)
    _print_release(config, result, "Deployed")


@command("rollback")
def rollback(config_path: ConfigOption = None, target: TargetOption = Target.local, stack: StackOption = "dev") -> None:
    """Serve @previous again and swap @champion and @previous back."""
    config = load_config(config_path)
    _require_mlflow(config)
    where = _target(config, target, stack)
    with console.status(f"Rolling back to @previous on {where.name} ..."):
        result = roll_back(config, where)
    _print_release(config, result, "Rolled back")


@command("reproduce")
def reproduce(
    version: Annotated[str, typer.Argument(help="registered model version to retrain")],
    config_path: ConfigOption = None,
) -> None:
    """Retrain a version from its recorded snapshot and config; exit 1 unless the metrics are identical."""
    from pipelines.train import reproduce as retrain

    config = load_config(config_path)
    _require_mlflow(config)
    with console.status(f"Retraining v{version} from its recorded snapshot ..."):
        result = retrain(config, version)
    table = Table(title=f"Reproduction of {config.model_name} v{version}", title_justify="left")
    for column in ("metric", "recorded", "reproduced"):
        table.add_column(column)
    for metric, value in result.recorded.items():
        table.add_row(metric, f"{value:.12f}", f"{result.reproduced.get(metric, float('nan')):.12f}")
    console.print(table)
    if result.recorded_git_sha != result.current_git_sha:
        console.print(f"note: trained at {result.recorded_git_sha}, code now at {result.current_git_sha}")
    if not result.identical:
        console.print("[red]metrics differ[/red]")
        raise GateFailed
    console.print("[green]identical metrics[/green]")


@command("status")
def status(config_path: ConfigOption = None) -> None:
    """What runs where: MLflow, serving, aliases, memory."""
    from pipelines.deploy import current_deployment, serving_process
    from pipelines.registry import aliases_of, connect

    config = load_config(config_path)
    rows: dict[str, Any] = {}
    mlflow_pid = platform.mlflow_process(config).pid()
    mlflow_up = platform.url_ok(f"{config.platform.mlflow_url}/health")
    rows["MLflow"] = (f"{config.platform.mlflow_url} up (pid {mlflow_pid}, "
                      f"{platform.resident_memory_mib(mlflow_pid):.0f} MiB)") if mlflow_pid and mlflow_up else "down"
    deployment = current_deployment(config)
    serving_pid = serving_process(config).pid()
    if deployment and serving_pid:
        ready = platform.url_ok(f"{deployment.url}/readyz")
        rows["serving"] = (f"{deployment.url} {'ready' if ready else 'NOT READY'} (pid {serving_pid}, "
                           f"{platform.resident_memory_mib(serving_pid):.0f} MiB)")
        rows["serving model"] = f"v{deployment.model_version} ({deployment.bento_tag}) since {deployment.started_at}"
    else:
        rows["serving"] = "down"
    if mlflow_up or not config.tracking.resolved_uri.startswith("http://127.0.0.1"):
        try:
            aliases = aliases_of(connect(config), config.model_name)
            rows["aliases"] = ", ".join(f"@{a}=v{v}" for a, v in sorted(aliases.items())) or "no model yet"
        except MlflowException as exc:
            rows["aliases"] = f"unknown ({exc.message.splitlines()[0]})"
    console.print(_table(f"Status of {config.model_name}", rows))


@command("traffic")
def traffic(
    config_path: ConfigOption = None,
    rows: Annotated[int, typer.Option(min=1, help="rows to send")] = 800,
    drifted_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of rows shifted")] = 0.5,
) -> None:
    """Send sample traffic from the champion's eval set to the local serving URL, part of it shifted."""
    from pipelines.traffic import sample_traffic

    config = load_config(config_path)
    _require_mlflow(config)
    url = config.platform.serving_url
    with console.status(f"Sending {rows} rows to {url}/predict ..."):
        result = sample_traffic(config, url, rows=rows, drifted_share=drifted_share)
    console.print(_table("Traffic", {"serving": url, "requests": result.requests, "rows": result.rows,
                                     "shifted rows": result.drifted_rows, "failed requests": result.failed_requests,
                                     "inference log": config.platform.inference_log_dir}))
    if result.failed_requests:
        raise platform.PlatformError(f"{result.failed_requests} request(s) to {url}/predict failed")


@command("demo")
def demo(config_path: ConfigOption = None) -> None:
    """The whole loop on this machine: MLflow, data, train, gate, bento, deploy, traffic, monitoring."""
    from pipelines.registry import CHAMPION, connect, require_alias

    config = load_config(config_path)
    platform_up(config_path)
    data_version(config_path)
    train(config_path)
    deploy(config_path)
    traffic(config_path)
    with console.status("Judging the logged traffic against the training snapshot with Evidently ..."):
        monitored = run_monitor(config)
    champion = require_alias(connect(config), config.model_name, CHAMPION)
    console.print(_table("Demo done", {
        "MLflow": config.tracking.display_uri,
        "serving": f"{config.platform.serving_url}/predict",
        "model": f"{config.model_name} v{champion.version} (@champion)",
        "data version": champion.tags.get("data_version", "unknown"),
        "monitoring": monitored.summary,
        "drift report": monitored.report_path,
        "next": "make monitoring-ui (Evidently UI), make status, make down",
    }))


@command("down")
def down(config_path: ConfigOption = None) -> None:
    """Stop the local serving process and MLflow server (state is kept under the state dir)."""
    from pipelines.deploy import stop_serving

    config = load_config(config_path)
    stopped = {"serving": stop_serving(config), "Evidently UI": stop_monitoring_ui(config),
               "MLflow": platform.mlflow_process(config).stop()}
    for name, was_running in stopped.items():
        console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    console.print(f"state kept in {config.platform.state_dir}")


@command("monitor")
def monitor(
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
    config = load_config(config_path)
    _require_mlflow(config)
    with console.status("Monitoring ...") as status:
        result = run_monitor(
            config, on_drift=on_drift, window_rows=window_rows, window_hours=window_hours,
            progress=lambda message: status.update(f"Monitoring: {message} ..."),
        )
    colour = {"OK": "green", "DRIFT": "red"}.get(str(result.verdict), "yellow")
    ui_running = ui_process(config).pid() is not None
    console.print(_table(f"Monitoring of {config.model_name}", {
        "verdict": f"[{colour}]{result.verdict}[/{colour}]",
        "summary": result.summary,
        "report": result.report_path or "none (nothing judged)",
        "MLflow run": result.mlflow_run_url or result.mlflow_run_id or "none (nothing judged)",
        "retrain requested": "yes" if result.retrain_requested else "no",
        "Evidently workspace": result.workspace_dir,
        "Evidently UI": config.platform.monitoring_ui_url if ui_running else "not running: make monitoring-ui",
        "job log (JSON)": config.platform.state_dir / "logs" / "monitoring.log",
    }))
    raise typer.Exit(result.exit_code)


@command("monitoring-ui")
def monitoring_ui(config_path: ConfigOption = None) -> None:
    """Serve the Evidently workspace (monitoring reports) on the local UI port; idempotent."""
    config = load_config(config_path)
    with console.status("Starting the Evidently UI (about 20 s) ..."):
        url = start_monitoring_ui(config)
    process = ui_process(config)
    console.print(_table("Evidently UI", {
        "URL": url, "workspace": monitoring_dir(config) / "workspace", "pid": process.pid(),
        "log": process.log_file, "stop": "make down"}))


if __name__ == "__main__":
    app()
