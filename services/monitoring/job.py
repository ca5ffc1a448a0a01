"""One monitoring run: read the window, judge each model version against its training snapshot, record it.

Orchestration only: judge.py judges (a value, no side effects), records.py records (the HTML report, an MLflow
run and an Evidently snapshot per judged window), summary.py words it. The job keeps no state: the next default
window starts where the newest judged run's `window_end` tag says, per model version. A window with too few
rows is not judged and not recorded: its rows stay in the next window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlflow.tracking import MlflowClient

from services.monitoring.drift import Verdict
from services.monitoring.inference_log import LogScan, VersionTraffic, WindowSpec, read_window
from services.monitoring.judge import Judgement, NotJudged, Progress, Shortfall, judge, too_few_rows
from services.monitoring.observability import log_event, touch_heartbeat
from services.monitoring.records import experiment_id, last_judged_window_ends, record_judged, run_url
from services.monitoring.reference import Reference, ReferenceMissing, load_reference
from services.monitoring.retrain import request_retrain_if_due
from services.monitoring.settings import MonitorSettings
from services.monitoring.summary import nothing_to_judge_summary, overall_summary, version_summary

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
    scan = _scan(settings, window, say)
    references = references or ReferenceCache()
    results = [
        _judge_version(client, settings, scan, traffic, references, say)
        for traffic in sorted(scan.versions.values(), key=lambda t: _version_order(t.model_version), reverse=True)
    ]
    if not results:
        return _nothing_to_judge(settings, scan, window)
    deciding = _deciding(results)
    retrain_requested = _request_retrain(client, settings, deciding)
    summary = overall_summary(deciding, results, scan, settings, retrain_requested)
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


def _scan(settings: MonitorSettings, window: WindowSpec, say: Progress) -> LogScan:
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
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def _deciding(results: list[VersionResult]) -> VersionResult:
    """The newest version with the most serious verdict: DRIFT, then OK, then NOT ENOUGH DATA."""
    rank = {Verdict.DRIFT: 0, Verdict.OK: 1, Verdict.NOT_ENOUGH_DATA: 2}
    return min(results, key=lambda r: rank[r.verdict])  # min keeps the first (newest) among equals


def _request_retrain(client: MlflowClient, settings: MonitorSettings, deciding: VersionResult) -> bool:
    """On DRIFT with on_drift=retrain, a retrain request unless one is open or within the cooldown."""
    if deciding.verdict is not Verdict.DRIFT or settings.on_drift != "retrain" or not deciding.mlflow_run_id:
        return False
    requested = request_retrain_if_due(
        client,
        settings.model_name,
        reason=deciding.summary,
        monitoring_run_id=deciding.mlflow_run_id,
        cooldown=timedelta(minutes=settings.cooldown_minutes),
    )
    client.set_tag(deciding.mlflow_run_id, "retrain_requested", str(requested).lower())
    return requested


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
