"""Where a judged window is recorded: HTML reports, an MLflow run in the monitoring experiment, an Evidently
snapshot and a `monitoring.report` log event (`record_judged`; the judging itself is judge.py).

The tag `window_end` of the newest judged run is where the next default window starts, per model version,
so the job keeps no state of its own and runs the same on a laptop and in the stack. The run gets that tag
and `judged` only when it finishes, after its artifacts are uploaded: a run that fails halfway leaves its
window to be judged again by the next run.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from evidently.core.report import Snapshot
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from services.monitoring.fairness import fairness_metrics
from services.monitoring.judge import Judged, Progress
from services.monitoring.observability import log_event
from services.monitoring.settings import MonitorSettings
from services.monitoring.workspace import add_to_workspace

JUDGED_TAG = "judged"
WINDOW_END_TAG = "window_end"
MAX_TAG_CHARS = 4000  # well under MLflow's tag value limit
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
SEARCH_PAGE_ROWS = 1000  # runs per page when looking for the last judged windows


@dataclass(frozen=True)
class WindowRecord:
    """A judged window as it is recorded: the judgement, its summary line and its saved HTML reports."""

    judged: Judged
    summary: str
    report_path: Path
    extra_paths: list[Path]  # the prediction drift and quality reports, when there are

    @property
    def quality(self) -> dict[str, float]:
        return self.judged.quality.metrics if self.judged.quality else {}


def _extra_reports(judged: Judged) -> list[tuple[str, Snapshot, str]]:
    """Reports beside the drift report: (file suffix, snapshot, name in the workspace)."""
    found = []
    if judged.prediction:
        found.append(("prediction", judged.prediction.snapshot, "prediction drift"))
    if judged.quality:
        found.append((judged.quality.task, judged.quality.snapshot, f"{judged.quality.task} quality"))
    return found


class Recorded(NamedTuple):
    run_id: str
    report_path: Path


def record_judged(
    client: MlflowClient,
    settings: MonitorSettings,
    judged: Judged,
    summary: str,
    *,
    skipped_lines: int,
    progress: Progress | None = None,
) -> Recorded:
    """Save the HTML reports, record the MLflow run and the Evidently snapshots, log `monitoring.report`."""
    name, version, traffic = settings.model_name, judged.model_version, judged.traffic
    stamp = traffic.last_at.strftime("%Y%m%dT%H%M%S")
    report_path = save_html(judged.drift, settings.reports_dir / f"{name}-v{version}-{stamp}.html")
    extra = _extra_reports(judged)
    extra_paths = [save_html(snapshot, settings.reports_dir / f"{name}-v{version}-{stamp}-{suffix}.html")
                   for suffix, snapshot, _ in extra]
    if progress:
        progress(f"recording the report in MLflow ({settings.policy.experiment}) and the Evidently workspace")
    record = WindowRecord(judged, summary, report_path, extra_paths)
    run_id = record_in_mlflow(client, settings, record, skipped_lines=skipped_lines)
    window_name = f"v{version} {traffic.first_at:%Y-%m-%d %H:%M}-{traffic.last_at:%H:%M} UTC"
    add_to_workspace(settings.workspace_dir, name, judged.drift, window_name)
    for _, snapshot, label in extra:
        add_to_workspace(settings.workspace_dir, name, snapshot, f"{window_name} {label}")
    log_event(
        "monitoring.report",
        model_name=name,
        model_version=version,
        window_start=traffic.first_at.isoformat(),
        window_end=traffic.last_at.isoformat(),
        rows=traffic.rows,
        rows_sampled=len(traffic.sample),
        verdict=str(judged.verdict),
        drift_share=judged.findings.drift_share,
        drifted_columns=judged.findings.drifted,
        report_run_id=run_id,
        report_path=str(report_path),
    )
    return Recorded(run_id, report_path)


def experiment_id(client: MlflowClient, name: str) -> str | None:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else None


def run_url(tracking_uri: str, experiment: str | None, run_id: str | None) -> str | None:
    if not run_id or not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def last_judged_window_ends(
    client: MlflowClient, model_name: str, experiment: str | None, *, started_after: datetime | None = None
) -> dict[str, datetime]:
    """Per model version, where the newest judged window ended: the default window starts after it.

    Pages through every judged run of the model (newest first), or every one started after `started_after`:
    the job passes the start of the log's retention, before which no row is read anyway.
    """
    if experiment is None:
        return {}
    query = f"tags.model_name = '{model_name}' and tags.{JUDGED_TAG} = 'true'"
    if started_after is not None:
        query += f" and attributes.start_time >= {int(started_after.timestamp() * 1000)}"
    ends: dict[str, datetime] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment],
            filter_string=query,
            order_by=["attributes.start_time DESC"],
            max_results=SEARCH_PAGE_ROWS,
            page_token=token,
        )
        for run in page:
            version, end = run.data.tags.get("model_version"), run.data.tags.get(WINDOW_END_TAG)
            if version and end and version not in ends:
                ends[version] = datetime.fromisoformat(end)
        token = page.token
        if not token:
            return ends


def save_html(snapshot: Snapshot, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def metric_key(text: str) -> str:
    # MLflow keys allow letters, digits and _ - . space /; anything else in a column name becomes _.
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def record_in_mlflow(
    client: MlflowClient, settings: MonitorSettings, record: WindowRecord, *, skipped_lines: int
) -> str:
    """One run per judged window: overall and per-column metrics, the HTML report, tags naming version and window."""
    judged = record.judged
    traffic, findings, window = judged.traffic, judged.findings, judged.window
    name = settings.policy.experiment
    experiment = experiment_id(client, name) or client.create_experiment(name)
    run = client.create_run(
        experiment,
        run_name=f"{settings.model_name}-v{traffic.model_version}-{traffic.last_at:%Y%m%dT%H%M%S}",
        tags={
            "model_name": settings.model_name,
            "model_version": traffic.model_version,
            "verdict": str(judged.verdict),
            "window_start": traffic.first_at.isoformat(),
            "window_rows": str(traffic.rows),
            "window_kind": "explicit" if settings.policy.explicit_window else "since_last_report",
            "reference_run_id": judged.reference.run_id,
            "task": judged.reference.task,
            **prediction_tags(judged),
            **({"fairness": "within limits" if judged.fairness.within_limits else "over limits"}
               if judged.fairness and judged.fairness.within_limits is not None else {}),
            "drifted_columns": ",".join(findings.drifted)[:MAX_TAG_CHARS],
            "missing_columns": ",".join(m.column for m in findings.missing)[:MAX_TAG_CHARS],
            "unknown_columns": ",".join(window.unknown_columns)[:MAX_TAG_CHARS],
            "absent_columns": ",".join(window.absent_columns)[:MAX_TAG_CHARS],
            "mlflow.note.content": record.summary[:MAX_TAG_CHARS],
        },
    )
    run_id = run.info.run_id
    try:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        values = {
            "drift_share": findings.drift_share,
            "drifted_columns": findings.drifted_count,
            "rows_in_window": traffic.rows,
            "rows_sampled": len(traffic.sample),
            "skipped_log_lines": skipped_lines,
            **{f"drift_score/{metric_key(c.column)}": c.score for c in findings.columns},
            **{f"missing_share/{metric_key(col)}": share for col, share in findings.missing_share.items()},
            **{f"missing_share_reference/{metric_key(c)}": share for c, share in window.missing_reference.items()},
            **({"prediction_drift_score": judged.prediction.drift.score} if judged.prediction else {}),
            **{f"{judged.reference.task}/{metric_key(key)}": value for key, value in record.quality.items()},
            **{metric_key(key): value for key, value in fairness_metrics(judged.fairness).items()},
        }
        metrics = [Metric(key, float(value), now_ms, 0) for key, value in values.items()]
        params = [
            Param("drift_share_threshold", str(settings.policy.drift_share_threshold)),
            Param("min_rows", str(settings.policy.min_rows)),
            Param("max_sample_rows", str(settings.policy.max_sample_rows)),
        ]
        client.log_batch(run_id, params=params)
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
        client.log_text(run_id, json.dumps(_findings_json(record), indent=2), "report/findings.json")
        client.log_artifact(run_id, str(record.report_path), "report")
        for path in record.extra_paths:
            client.log_artifact(run_id, str(path), "report")
        # Last: only a complete record moves the next default window past this one.
        window_tags = {WINDOW_END_TAG: traffic.last_at.isoformat(), JUDGED_TAG: "true"}
        client.log_batch(run_id, tags=[RunTag(key, value) for key, value in window_tags.items()])
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def prediction_tags(judged: Judged) -> dict[str, str]:
    """Whether the served predictions drifted from the reference's target, and by which test."""
    if not judged.prediction:
        return {}
    drift = judged.prediction.drift
    return {"prediction_drifted": str(drift.drifted).lower(), "prediction_drift_method": drift.method,
            "prediction_drift_threshold": str(drift.threshold)}


def _findings_json(record: WindowRecord) -> dict[str, object]:
    judged = record.judged
    return {
        "verdict": str(judged.verdict),
        "summary": record.summary,
        **asdict(judged.findings),
        "drifted": judged.findings.drifted,
        "unknown_columns": judged.window.unknown_columns,
        "absent_columns": judged.window.absent_columns,
        "missing_share_reference": judged.window.missing_reference,
        "task": judged.reference.task,
        "prediction_drift": asdict(judged.prediction.drift) if judged.prediction else None,
        "quality": record.quality,
        "fairness": ({"rows": judged.fairness.rows, "within_limits": judged.fairness.within_limits,
                      **asdict(judged.fairness.findings)} if judged.fairness else None),
    }
