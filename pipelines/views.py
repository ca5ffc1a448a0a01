"""How the CLI shows results: rich tables built from the library's result values, nothing computed here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from pipelines.estimators import import_path
from services.contract import (
    HOLDOUT_ARTIFACT,
    MONITORING_SAMPLE_ARTIFACT,
    SNAPSHOT_ARTIFACT,
    SNAPSHOT_REFERENCE_ARTIFACT,
)

if TYPE_CHECKING:  # result types only; importing them at run time would load MLflow for `--help`
    from pipelines.bento import BuiltBento
    from pipelines.canary import Verdict
    from pipelines.config import PipelineConfig
    from pipelines.deploy import DeployResult
    from pipelines.lifecycle import Collection
    from pipelines.status import PlatformStatus
    from pipelines.storage import Usage
    from pipelines.traffic import TrafficResult
    from pipelines.train import Reproduction, TrainResult
    from pipelines.validate import ValidationReport, VersionFacts
    from services.monitoring.job import MonitorResult


def key_values(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def status(found: PlatformStatus, used: dict[str, Usage]) -> list[Table]:
    """`make status`: the platform's parts, then one table per model, then storage per kind on this machine."""
    return [key_values("Platform", found.parts),
            *(key_values(f"Model {name}", rows) for name, rows in found.models.items()),
            key_values("Storage on this machine", {kind: usage.shown() for kind, usage in used.items()})]


MAX_NAMES_SHOWN = 5


def _some(items: list[str]) -> str:
    more = len(items) - MAX_NAMES_SHOWN
    return ", ".join(items[:MAX_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def collected(config: PipelineConfig, done: Collection, *, dry_run: bool) -> Table:
    """`pipelines gc`: versions retired, monitoring output deleted, and storage per kind before and after."""
    from pipelines.storage import human

    limits = config.lifecycle
    rows: dict[str, str] = {"lifecycle": ", ".join(f"{key}={'unset' if value is None else f'{value:g}'}"
                                                    for key, value in limits.model_dump().items()),
                            "would retire" if dry_run else "retired": _some([f"v{v}" for v in done.retired]) or "none"}
    rows.update({f"kept v{version}": role for version, role in done.kept.items()})
    for kind, count in done.removed.items():
        rows[f"removed {kind}"] = f"{count} ({human(done.freed_bytes.get(kind, 0))} freed)"
    for kind, swept in done.swept.items():
        rows[f"{'would delete' if dry_run else 'deleted'} {kind}"] = (
            f"{len(swept.removed)} ({human(swept.freed_bytes)}): {_some(swept.removed)}" if swept.removed else "none")
        if swept.kept:
            rows[f"kept {kind}"] = _some(swept.kept)
    for kind, before in done.before.items():
        after = done.after.get(kind)
        if after is None or before.bytes is None or after.bytes is None:  # a dry run, or a kind not counted here
            rows[f"storage {kind}"] = before.shown()
        else:
            rows[f"storage {kind}"] = f"{before.shown()} -> {after.shown()}, freed {human(before.bytes - after.bytes)}"
    return key_values(f"gc {config.model_name}" + (" (dry run: nothing deleted)" if dry_run else ""), rows)


def trained(config: PipelineConfig, result: TrainResult) -> Table:
    return key_values("Trained", {
        "model": f"{config.model_name} v{result.model_version} (@challenger)", "run id": result.run_id,
        "task": config.task, "estimator": import_path(config.model.estimator),
        "data version": result.data_version, "snapshot": snapshot_policy(config.data.snapshot),
        **{f"holdout {k}": f"{v:.4f}" for k, v in result.metrics.items()},
        "MLflow": f"{config.tracking.display_uri}/#/models/{config.model_name}/versions/{result.model_version}"})


def snapshot_policy(policy: str) -> str:
    if policy == "copy":
        return f"copy ({SNAPSHOT_ARTIFACT} and {HOLDOUT_ARTIFACT} in the run)"
    return (f"reference ({SNAPSHOT_REFERENCE_ARTIFACT} in the run: the source is re-read and checked when the "
            f"snapshot is needed; monitoring reads {MONITORING_SAMPLE_ARTIFACT})")


def gate(report: ValidationReport) -> Table:
    title = f"Validation of {_facts(report.candidate)}" + (
        f"\nvs champion {_facts(report.champion)}" if report.champion else "")
    table = Table(title=title, title_justify="left")
    for column in ("check", "candidate", "champion", "threshold", "result"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(escape(check.name), str(check.candidate), "" if check.champion is None else str(check.champion),
                      check.threshold, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]")
    return table


def _facts(version: VersionFacts) -> str:
    return f"v{version.version} ({version.task}, {version.estimator}) as served by {version.runtime}"


def bento(built: BuiltBento) -> Table:
    return key_values("Bento", {"tag": built.tag, "path": built.path, "reused": built.reused, **built.model.labels})


def release(config: PipelineConfig, result: DeployResult, title: str) -> Table:
    return key_values(title, {
        "serving": result.deployment.url, "model": f"{config.model_name} v{result.deployment.model_version}",
        "bento": result.deployment.bento_tag, "champion": f"v{result.aliases.champion}",
        "previous": f"v{result.aliases.previous}" if result.aliases.previous else "-",
        "retrain request": result.retrain_request or "-",
        **({"canary analysis": canary_summary(result.canary)} if result.canary else {}),
        "audit run": result.audit_url})


def canary_summary(verdict: Verdict) -> str:
    found = verdict.figures
    return (f"{found.requests['candidate']} vs {found.requests['champion']} requests in {found.seconds:.0f} s; "
            f"5xx {found.error_rates['candidate']:.2%} vs {found.error_rates['champion']:.2%}; "
            f"4xx {found.refusal_rates['candidate']:.2%} vs {found.refusal_rates['champion']:.2%}; "
            f"p99 {found.p99_ms['candidate']:.0f} vs {found.p99_ms['champion']:.0f} ms; "
            f"prediction distance {found.prediction_distance:.2f}")


def reproduction(config: PipelineConfig, result: Reproduction) -> Table:
    code = f" ({result.code})" if result.code else ""
    table = Table(title=f"Reproduction of {config.model_name} v{result.model_version}{code}", title_justify="left")
    for column in ("metric", "recorded", "reproduced"):
        table.add_column(column)
    for metric, value in result.recorded.items():
        table.add_row(metric, f"{value:.12f}", f"{result.reproduced.get(metric, float('nan')):.12f}")
    return table


def traffic(config: PipelineConfig, url: str, result: TrafficResult) -> Table:
    return key_values("Traffic", {
        "serving": url, "requests": result.requests, "rows": result.rows, "shifted rows": result.drifted_rows,
        "failed requests": result.failed_requests, "inference log": config.platform.inference_log_dir})


def monitoring(config: PipelineConfig, result: MonitorResult, ui_url: str | None) -> Table:
    colour = {"OK": "green", "DRIFT": "red"}.get(str(result.verdict), "yellow")
    return key_values(f"Monitoring of {config.model_name}", {
        "verdict": f"[{colour}]{result.verdict}[/{colour}]",
        "summary": result.summary,
        "report": result.report_path or "none (nothing judged)",
        "MLflow run": result.mlflow_run_url or result.mlflow_run_id or "none (nothing judged)",
        "retrain requested": "yes" if result.retrain_requested else "no",
        "Evidently workspace": result.workspace_dir,
        "Evidently UI": ui_url or "not running: make monitoring-ui",
        "job log (JSON)": config.platform.state_dir / "logs" / "monitoring.log",
    })
