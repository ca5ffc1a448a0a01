"""One monitoring run: read the window, judge each model version against its training snapshot, record it.

Orchestration only: judge.py judges (a value, no side effects), records.py records (the HTML report, an MLflow
run and an Evidently snapshot per judged window), summary.py words it. The next default window starts where the
newest judged run's `window_end` tag says, per model version. A window with too few rows is not judged and not
recorded: its rows stay in the next window. The job's only state of its own is a cache, the log index
(log_index.py): which bytes of each log file were read and judged already.

A retrain request follows the champion's verdict only (retrain.py): DRIFT in leftover traffic of a retired
version is reported, not acted on.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from services.monitoring.alert import AlertSettings, DriftAlert, send_alert
from services.monitoring.drift import Verdict
from services.monitoring.inference_log import LogScan, VersionTraffic, WindowSpec, read_window, retention_start
from services.monitoring.judge import Judgement, NotJudged, Progress, Shortfall, judge, too_few_rows
from services.monitoring.log_index import LogIndex
from services.monitoring.metrics import JobMetrics
from services.monitoring.observability import log_event, touch_heartbeat
from services.monitoring.records import experiment_id, last_judged_window_ends, record_judged, run_url
from services.monitoring.reference import ReferenceCache, ReferenceMissing
from services.monitoring.results import MonitorResult, VersionResult
from services.monitoring.retrain import REQUESTED, audit_retrain_request, champion_version, request_retrain_if_due
from services.monitoring.settings import MonitorSettings
from services.monitoring.summary import nothing_to_judge_summary, overall_summary, version_summary


def run_once(
    settings: MonitorSettings,
    *,
    references: ReferenceCache | None = None,
    progress: Progress | None = None,
) -> MonitorResult:
    say = progress or (lambda _message: None)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = experiment_id(client, settings.policy.experiment)
    window = _window_spec(client, settings, experiment)
    scan = _scan(settings, window, say)
    references = references or ReferenceCache()
    results = [
        _judge_version(client, settings, scan, traffic, references, say)
        for traffic in sorted(scan.versions.values(), key=lambda t: _version_order(t.model_version), reverse=True)
    ]
    if not results:
        return _nothing_to_judge(settings, scan, window)
    champion = _champion_if_needed(client, settings, results)
    deciding = _deciding(results, champion.version if champion else None)
    retrain_requested = _request_retrain(client, settings, deciding, champion)
    # The experiment may have been created by this very run.
    report_url = run_url(
        settings.tracking_uri, experiment or experiment_id(client, settings.policy.experiment), deciding.mlflow_run_id
    )
    if retrain_requested and settings.alert is not None:  # a new drift episode: its one alert
        _alert(client, settings.alert, settings.model_name, deciding, report_url)
    summary = overall_summary(
        deciding, results, scan, settings, retrain_requested, champion=champion.version if champion else None
    )
    audit_failure = audit_retrain_request(
        client, settings.tracking_uri, settings.model_name, version=deciding.model_version,
        verdict=str(deciding.verdict), reason=summary, drifted_columns=deciding.drifted_columns,
        report_run_id=deciding.mlflow_run_id or "", report_url=report_url or "", who=settings.audit_actor,
    ) if retrain_requested else ""
    result = MonitorResult(
        verdict=deciding.verdict,
        summary=summary,
        report_path=deciding.report_path,
        mlflow_run_id=deciding.mlflow_run_id,
        mlflow_run_url=report_url,
        retrain_requested=retrain_requested,
        versions=results,
        workspace_dir=settings.workspace_dir,
        audit_failure=audit_failure,
    )
    log_event(
        "monitoring.result",
        model_name=settings.model_name,
        verdict=str(result.verdict),
        summary=summary,
        retrain_requested=retrain_requested,
        audit_failure=audit_failure or None,
        report_run_id=result.mlflow_run_id,
        report_path=str(result.report_path) if result.report_path else None,
    )
    return result


def _window_spec(client: MlflowClient, settings: MonitorSettings, experiment: str | None) -> WindowSpec:
    now = datetime.now(UTC)
    policy = settings.policy
    if policy.explicit_window:
        hours = policy.window_hours
        return WindowSpec(not_before=now - timedelta(hours=hours) if hours else None, newest_rows=policy.window_rows)
    # Reports older than the retention cannot bound a row still read (a day's margin for late-written rows).
    oldest = retention_start(now, policy.log_retention_days) - timedelta(days=1)
    return WindowSpec(since=last_judged_window_ends(client, settings.model_name, experiment, started_after=oldest))


def _scan(settings: MonitorSettings, window: WindowSpec, say: Progress) -> LogScan:
    say(f"reading the inference log in {settings.inference_log_dir}")
    index_file = settings.log_index_file
    index = LogIndex.load(index_file, settings.model_name) if index_file else None
    scan = read_window(
        settings.inference_log_dir,
        settings.model_name,
        window,
        sample_rows=settings.policy.max_sample_rows,
        seed=settings.seed,
        index=index,
        retention_days=settings.policy.log_retention_days,
    )
    index_error = None
    if index is not None and index_file is not None:
        try:
            index.save(index_file)
        except OSError as exc:  # the next run reads more, nothing worse
            index_error = f"{index_file}: {exc.strerror or exc}"
    log_event(
        "monitoring.scan",
        log_dir=str(settings.inference_log_dir),
        files=scan.files,
        unchanged_files=scan.unchanged_files,
        expired_files=scan.expired_files,
        bytes_read=scan.bytes_read,
        lines=scan.lines,
        skipped_lines=scan.skipped_lines,
        rows=scan.rows,
        versions={v: t.rows for v, t in scan.versions.items()},
        problems=scan.problems,
        index_error=index_error,
    )
    return scan


def _judge_version(
    client: MlflowClient,
    settings: MonitorSettings,
    scan: LogScan,
    traffic: VersionTraffic,
    references: ReferenceCache,
    say: Progress,
) -> VersionResult:
    """Judge, word, and (when judged) record one version's window."""
    judgement: Judgement | None = too_few_rows(settings, traffic)  # first: then a thin window loads no reference
    if judgement is None:
        say(f"loading the training snapshot of {settings.model_name} v{traffic.model_version} from MLflow")
        try:
            reference = references.get(client, settings, traffic.model_version)
        except ReferenceMissing as exc:
            judgement = NotJudged(traffic, Shortfall.NO_REFERENCE, problem=str(exc))
        else:
            judgement = judge(settings, traffic, reference, progress=say)
    summary = version_summary(settings, judgement)
    result = VersionResult(
        traffic.model_version, judgement.verdict, summary, traffic.rows, traffic.first_at, traffic.last_at
    )
    if isinstance(judgement, NotJudged):
        return result
    recorded = record_judged(client, settings, judgement, summary, skipped_lines=scan.skipped_lines, progress=say)
    return replace(
        result,
        report_path=recorded.report_path,
        mlflow_run_id=recorded.run_id,
        drifted_columns=judgement.findings.drifted,
        fairness_within_limits=judgement.fairness.within_limits if judgement.fairness else None,
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def _champion_if_needed(
    client: MlflowClient, settings: MonitorSettings, results: list[VersionResult]
) -> ModelVersion | None:
    """The serving version, looked up only when a DRIFT verdict could open a retrain request."""
    if settings.policy.on_drift != "retrain" or all(r.verdict is not Verdict.DRIFT for r in results):
        return None
    return champion_version(client, settings.model_name)


def _deciding(results: list[VersionResult], champion: str | None = None) -> VersionResult:
    """The most serious verdict (DRIFT, then OK, then NOT ENOUGH DATA): the champion's, else the newest version's."""
    rank = {Verdict.DRIFT: 0, Verdict.OK: 1, Verdict.NOT_ENOUGH_DATA: 2}
    # min keeps the first (newest) among equals
    return min(results, key=lambda r: (rank[r.verdict], r.model_version != champion))


def _request_retrain(
    client: MlflowClient, settings: MonitorSettings, deciding: VersionResult, champion: ModelVersion | None
) -> bool:
    """On the champion's DRIFT with on_drift=retrain, a retrain request unless one is open or within the cooldown."""
    if deciding.verdict is not Verdict.DRIFT or settings.policy.on_drift != "retrain" or not deciding.mlflow_run_id:
        return False
    requested = champion is not None and champion.version == deciding.model_version and request_retrain_if_due(
        client,
        settings.policy.experiment,
        report_run_id=deciding.mlflow_run_id,
        cooldown=timedelta(minutes=settings.policy.cooldown_minutes),
        champion=champion,
    )
    if not requested:  # a request tags its own run (retrain.py)
        client.set_tag(deciding.mlflow_run_id, REQUESTED, "false")
    return requested


def _alert(
    client: MlflowClient, alert: AlertSettings, model_name: str, deciding: VersionResult, report_url: str | None
) -> None:
    """Send the drift alert; how it went is logged (alert.py) and tagged on the report run, never fatal."""
    delivery = send_alert(alert, DriftAlert(
        verdict=str(deciding.verdict), model_name=model_name, model_version=deciding.model_version,
        drifted_columns=list(deciding.drifted_columns), report_url=report_url, summary=deciding.summary))
    if deciding.mlflow_run_id:
        client.set_tag(deciding.mlflow_run_id, "alert", "delivered" if delivery.delivered else delivery.outcome)


def _nothing_to_judge(settings: MonitorSettings, scan: LogScan, window: WindowSpec) -> MonitorResult:
    summary = nothing_to_judge_summary(settings, scan, window)
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
    """The stack's job: a run every interval until `stop` is set; a failed run is logged, never fatal.

    The heartbeat carries the last finished run's error (`last_error`) until a run succeeds, also while the
    next run is going: the health check fails on it, so a job whose every run fails does not look healthy.
    """
    references = ReferenceCache()
    metrics = JobMetrics(settings.model_name)
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    log_event("monitoring.start", model_name=settings.model_name, policy=settings.policy.model_dump(),
              metrics_port=settings.metrics_port)
    last_error: str | None = None
    while not stop.is_set():
        touch_heartbeat(settings.heartbeat_file, state="running", last_error=last_error)
        try:
            result = run_once(settings, references=references)
        except Exception as exc:  # the next interval may well succeed (MLflow back, log rotated): keep going
            last_error = f"{type(exc).__name__}: {exc}"
            log_event("monitoring.error", level=40, error=last_error)
            metrics.failed()
            touch_heartbeat(settings.heartbeat_file, state="error", last_error=last_error)
        else:
            last_error = None
            metrics.record(result)
            touch_heartbeat(settings.heartbeat_file, state="idle", verdict=str(result.verdict), summary=result.summary)
        stop.wait(settings.policy.interval_minutes * 60)
    log_event("monitoring.stop", model_name=settings.model_name)
