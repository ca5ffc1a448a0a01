"""One monitoring run: read the window, judge each model version against its training snapshot, record it.

Every judged window becomes an MLflow run in the monitoring experiment (metrics per column and overall,
the HTML report, tags with model version and window) and a snapshot in the Evidently workspace. The tag
`window_end` of the newest judged run is where the next default window starts, per model version, so the
job itself keeps no state and can run anywhere. A window with too few rows is not judged and not recorded:
its rows stay in the next window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evidently.core.report import Snapshot
from mlflow.tracking import MlflowClient

from services.monitoring.drift import (
    DriftFindings,
    PreparedWindow,
    Verdict,
    decide_verdict,
    labeled_rows,
    prepare,
    read_findings,
    run_classification_report,
    run_drift_report,
)
from services.monitoring.inference_log import LogScan, VersionTraffic, WindowSpec, read_labels, read_window
from services.monitoring.observability import log_event, touch_heartbeat
from services.monitoring.records import (
    Judgement,
    add_to_workspace,
    experiment_id,
    last_judged_window_ends,
    record_in_mlflow,
    run_url,
    save_html,
)
from services.monitoring.reference import Reference, ReferenceMissing, load_reference
from services.monitoring.retrain import request_retrain_if_due
from services.monitoring.settings import MonitorSettings

Progress = Callable[[str], None]
CACHED_REFERENCES = 4


@dataclass(frozen=True)
class VersionResult:
    model_version: str
    verdict: Verdict
    summary: str
    rows: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    report_path: Path | None = None
    mlflow_run_id: str | None = None
    drifted_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MonitorResult:
    """The outcome of one run; `verdict`, `summary` and the report come from the deciding model version."""

    verdict: Verdict
    summary: str
    report_path: Path | None
    mlflow_run_id: str | None
    mlflow_run_url: str | None
    retrain_requested: bool
    versions: list[VersionResult]
    workspace_dir: Path

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


class ReferenceCache:
    """Training snapshots are immutable per model version, so a looping job downloads each once."""

    def __init__(self, size: int = CACHED_REFERENCES) -> None:
        self._size = size
        self._items: OrderedDict[str, Reference] = OrderedDict()

    def get(self, client: MlflowClient, settings: MonitorSettings, version: str) -> Reference:
        if version in self._items:
            self._items.move_to_end(version)
            return self._items[version]
        reference = load_reference(
            client, settings.model_name, version, max_rows=settings.max_sample_rows, seed=settings.seed
        )
        self._items[version] = reference
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return reference


def run_once(
    settings: MonitorSettings,
    *,
    references: ReferenceCache | None = None,
    progress: Progress | None = None,
) -> MonitorResult:
    say = progress or (lambda _message: None)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = experiment_id(client, settings.experiment)
    window = _window_spec(client, settings, experiment)
    say(f"reading the inference log in {settings.inference_log_dir}")
    scan = read_window(
        settings.inference_log_dir,
        settings.model_name,
        window,
        sample_rows=settings.max_sample_rows,
        seed=settings.seed,
    )
    log_event(
        "monitoring.scan",
        log_dir=str(settings.inference_log_dir),
        files=scan.files,
        lines=scan.lines,
        skipped_lines=scan.skipped_lines,
        rows=scan.rows,
        versions={v: t.rows for v, t in scan.versions.items()},
        problems=scan.problems,
    )
    references = references or ReferenceCache()
    results = [
        _judge_version(client, settings, scan, traffic, references, say)
        for traffic in sorted(scan.versions.values(), key=lambda t: _version_order(t.model_version), reverse=True)
    ]
    if not results:
        return _nothing_to_judge(settings, scan, window)
    deciding = _deciding(results)
    retrain_requested = False
    if deciding.verdict is Verdict.DRIFT and settings.on_drift == "retrain" and deciding.mlflow_run_id:
        retrain_requested = request_retrain_if_due(
            client,
            settings.model_name,
            reason=deciding.summary,
            monitoring_run_id=deciding.mlflow_run_id,
            cooldown=timedelta(minutes=settings.cooldown_minutes),
        )
        client.set_tag(deciding.mlflow_run_id, "retrain_requested", str(retrain_requested).lower())
    summary = _overall_summary(deciding, results, scan, settings, retrain_requested)
    result = MonitorResult(
        verdict=deciding.verdict,
        summary=summary,
        report_path=deciding.report_path,
        mlflow_run_id=deciding.mlflow_run_id,
        # The experiment may have been created by this very run.
        mlflow_run_url=run_url(
            settings.tracking_uri, experiment or experiment_id(client, settings.experiment), deciding.mlflow_run_id
        ),
        retrain_requested=retrain_requested,
        versions=results,
        workspace_dir=settings.workspace_dir,
    )
    log_event(
        "monitoring.result",
        model_name=settings.model_name,
        verdict=str(result.verdict),
        summary=summary,
        retrain_requested=retrain_requested,
        report_run_id=result.mlflow_run_id,
        report_path=str(result.report_path) if result.report_path else None,
    )
    return result


def _window_spec(client: MlflowClient, settings: MonitorSettings, experiment: str | None) -> WindowSpec:
    if settings.explicit_window:
        hours = settings.window_hours
        return WindowSpec(
            not_before=datetime.now(UTC) - timedelta(hours=hours) if hours else None,
            newest_rows=settings.window_rows,
        )
    return WindowSpec(since=last_judged_window_ends(client, settings.model_name, experiment))


def _judge_version(
    client: MlflowClient,
    settings: MonitorSettings,
    scan: LogScan,
    traffic: VersionTraffic,
    references: ReferenceCache,
    say: Progress,
) -> VersionResult:
    name, version = settings.model_name, traffic.model_version
    span = dict(rows=traffic.rows, window_start=traffic.first_at, window_end=traffic.last_at)
    if traffic.rows < settings.min_rows:
        return VersionResult(
            version,
            Verdict.NOT_ENOUGH_DATA,
            f"{name} v{version}: {traffic.rows} rows in the window, {settings.min_rows} needed",
            **span,
        )
    say(f"loading the training snapshot of {name} v{version} from MLflow")
    try:
        reference = references.get(client, settings, version)
    except ReferenceMissing as exc:
        return VersionResult(version, Verdict.NOT_ENOUGH_DATA, f"{name} v{version}: no reference, {exc}", **span)
    window = prepare(traffic.features(), reference.frame, reference.schema)
    if not window.schema.columns:
        return VersionResult(
            version,
            Verdict.NOT_ENOUGH_DATA,
            f"{name} v{version}: none of the model's features {reference.schema.columns} has values in the window",
            **span,
        )
    say(f"judging {len(window.current):,} sampled of {traffic.rows:,} rows of v{version} with Evidently")
    snapshot = run_drift_report(
        window, drift_share_threshold=settings.drift_share_threshold, min_rows=settings.min_rows
    )
    findings = read_findings(snapshot.dict())
    verdict = decide_verdict(
        traffic.rows,
        findings.drift_share,
        min_rows=settings.min_rows,
        drift_share_threshold=settings.drift_share_threshold,
    )
    quality = _classification(settings, traffic)
    summary = _version_summary(name, version, verdict, findings, window, settings)
    stamp = traffic.last_at.strftime("%Y%m%dT%H%M%S")
    report_path = save_html(snapshot, settings.reports_dir / f"{name}-v{version}-{stamp}.html")
    quality_path = (
        save_html(quality[0], settings.reports_dir / f"{name}-v{version}-{stamp}-classification.html")
        if quality
        else None
    )
    say(f"recording the report in MLflow ({settings.experiment}) and the Evidently workspace")
    judgement = Judgement(
        traffic=traffic,
        reference=reference,
        window=window,
        verdict=verdict,
        findings=findings,
        summary=summary,
        report_path=report_path,
        quality_path=quality_path,
        quality=quality[1] if quality else {},
    )
    run_id = record_in_mlflow(client, settings, judgement, skipped_lines=scan.skipped_lines)
    window_name = f"v{version} {traffic.first_at:%Y-%m-%d %H:%M}-{traffic.last_at:%H:%M} UTC"
    add_to_workspace(settings.workspace_dir, name, snapshot, window_name)
    if quality:
        add_to_workspace(settings.workspace_dir, name, quality[0], f"{window_name} classification quality")
    log_event(
        "monitoring.report",
        model_name=name,
        model_version=version,
        window_start=traffic.first_at.isoformat(),
        window_end=traffic.last_at.isoformat(),
        rows=traffic.rows,
        rows_sampled=len(traffic.sample),
        verdict=str(verdict),
        drift_share=findings.drift_share,
        drifted_columns=findings.drifted,
        report_run_id=run_id,
        report_path=str(report_path),
    )
    return VersionResult(
        version,
        verdict,
        summary,
        **span,
        report_path=report_path,
        mlflow_run_id=run_id,
        drifted_columns=findings.drifted,
    )


def _classification(settings: MonitorSettings, traffic: VersionTraffic) -> tuple[Snapshot, dict[str, float]] | None:
    """Classification quality when enough sampled rows have ground-truth feedback."""
    keys = traffic.keys()
    wanted = set(zip(keys["request_id"], keys["row"], strict=True))
    labeled = labeled_rows(keys, read_labels(settings.inference_log_dir, wanted))
    if len(labeled) < settings.min_labeled_rows:
        return None
    return run_classification_report(labeled)


def _version_summary(
    name: str,
    version: str,
    verdict: Verdict,
    findings: DriftFindings,
    window: PreparedWindow,
    settings: MonitorSettings,
) -> str:
    relation = ">=" if verdict is Verdict.DRIFT else "<"
    text = (
        f"{name} v{version}: {findings.drifted_count} of {len(findings.columns)} columns drifted "
        f"(share {findings.drift_share:.2f} {relation} {settings.drift_share_threshold:.2f})"
    )
    if findings.drifted:
        text += f": {', '.join(findings.drifted)}"
    if window.absent_columns:
        text += f"; no values for {', '.join(window.absent_columns)}"
    if window.unknown_columns:
        text += f"; ignored unknown columns {', '.join(window.unknown_columns)}"
    return text


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def _deciding(results: list[VersionResult]) -> VersionResult:
    """The newest version with the most serious verdict: DRIFT, then OK, then NOT ENOUGH DATA."""
    rank = {Verdict.DRIFT: 0, Verdict.OK: 1, Verdict.NOT_ENOUGH_DATA: 2}
    return min(results, key=lambda r: rank[r.verdict])  # min keeps the first (newest) among equals


def _overall_summary(
    deciding: VersionResult,
    results: list[VersionResult],
    scan: LogScan,
    settings: MonitorSettings,
    retrain_requested: bool,
) -> str:
    text = f"{deciding.verdict}: {deciding.summary}"
    if deciding.window_start and deciding.verdict is not Verdict.NOT_ENOUGH_DATA:
        text += f"; {deciding.rows:,} rows {deciding.window_start:%Y-%m-%d %H:%M:%S}–{deciding.window_end:%H:%M:%S} UTC"
    if deciding.verdict is Verdict.DRIFT:
        text += "; retrain requested" if retrain_requested else _no_request_reason(settings)
    others = [f"v{r.model_version} {r.verdict}" for r in results if r is not deciding]
    if others:
        text += f"; also {', '.join(others)}"
    if scan.skipped_lines:
        text += f"; {scan.skipped_lines} unreadable log lines skipped"
    return text


def _no_request_reason(settings: MonitorSettings) -> str:
    if settings.on_drift == "none":
        return "; no action (on_drift=none)"
    return f"; retrain already requested or done within the last {settings.cooldown_minutes:g} min (cooldown)"


def _nothing_to_judge(settings: MonitorSettings, scan: LogScan, window: WindowSpec) -> MonitorResult:
    since = "in the window" if settings.explicit_window or not window.since else "since the last report"
    summary = f"{Verdict.NOT_ENOUGH_DATA}: {settings.model_name}: no logged rows {since}"
    if scan.problems:
        summary += f"; {scan.problems[0]}"
    if scan.skipped_lines:
        summary += f"; {scan.skipped_lines} unreadable log lines skipped"
    log_event(
        "monitoring.result", model_name=settings.model_name, verdict=str(Verdict.NOT_ENOUGH_DATA), summary=summary
    )
    return MonitorResult(
        verdict=Verdict.NOT_ENOUGH_DATA,
        summary=summary,
        report_path=None,
        mlflow_run_id=None,
        mlflow_run_url=None,
        retrain_requested=False,
        versions=[],
        workspace_dir=settings.workspace_dir,
    )


def run_forever(settings: MonitorSettings, stop: threading.Event) -> None:
    """The stack's job: a run every interval until `stop` is set; a failed run is logged, never fatal."""
    references = ReferenceCache()
    log_event("monitoring.start", model_name=settings.model_name, interval_minutes=settings.interval_minutes)
    while not stop.is_set():
        touch_heartbeat(settings.heartbeat_file, state="running")
        try:
            result = run_once(settings, references=references)
            touch_heartbeat(settings.heartbeat_file, state="idle", verdict=str(result.verdict), summary=result.summary)
        except Exception as exc:  # the next interval may well succeed (MLflow back, log rotated): keep going
            log_event("monitoring.error", level=40, error=f"{type(exc).__name__}: {exc}")
            touch_heartbeat(settings.heartbeat_file, state="error", error=f"{type(exc).__name__}: {exc}")
        stop.wait(settings.interval_minutes * 60)
    log_event("monitoring.stop", model_name=settings.model_name)
