"""Judge one model version's window against its reference: a value, not a side effect.

`judge` runs Evidently (feature drift; prediction drift, the served predictions against the reference's
target; quality per task when enough sampled rows have feedback labels, and the gate's fairness figures on them,
fairness.py) and returns what it found.
It writes nothing: no HTML, no MLflow run, no Evidently workspace, no log event. Recording a `Judged` window
is `records.record_judged`; its wording is `summary.py`. A window that cannot be judged
(too few rows, no reference, no feature with values) is a `NotJudged` value, NOT ENOUGH DATA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial

from evidently.core.report import Snapshot

from services.monitoring.drift import (
    ColumnDrift,
    DriftFindings,
    PreparedWindow,
    Verdict,
    count_missing,
    decide_verdict,
    labeled_rows,
    prediction_drift,
    prepare,
    read_findings,
    run_drift_report,
    run_quality_report,
)
from services.monitoring.fairness import LiveFairness, live_fairness
from services.monitoring.feedback import Feedback, read_feedback
from services.monitoring.inference_log import VersionTraffic
from services.monitoring.observability import log_event
from services.monitoring.reference import Reference
from services.monitoring.settings import MonitorSettings
from services.monitoring.tasks import PREDICTION, MonitoredTask, monitored_task

Progress = Callable[[str], None]
LabelKey = tuple[str, int]  # (request id, row)
FeedbackReader = Callable[[set[LabelKey]], dict[LabelKey, Feedback]]  # wanted keys -> the feedback found for them


class Shortfall(StrEnum):
    """Why a window was not judged."""

    TOO_FEW_ROWS = "too few rows"
    NO_REFERENCE = "no reference"
    NO_JUDGED_COLUMNS = "no judged columns"


class _Span:
    traffic: VersionTraffic

    @property
    def model_version(self) -> str:
        return self.traffic.model_version

    @property
    def rows(self) -> int:
        return self.traffic.rows

    @property
    def window_start(self) -> datetime:
        return self.traffic.first_at

    @property
    def window_end(self) -> datetime:
        return self.traffic.last_at


@dataclass(frozen=True)
class NotJudged(_Span):
    """NOT ENOUGH DATA: the window is neither judged nor recorded, so its rows stay for the next window."""

    traffic: VersionTraffic
    shortfall: Shortfall
    problem: str = ""  # NO_REFERENCE: why the reference could not be loaded
    reference: Reference | None = None  # NO_JUDGED_COLUMNS: the reference whose features had no values

    @property
    def verdict(self) -> Verdict:
        return Verdict.NOT_ENOUGH_DATA


@dataclass(frozen=True)
class Quality:
    """Quality of the served predictions on the sampled rows with feedback labels, by the task's metrics."""

    task: str
    snapshot: Snapshot
    metrics: dict[str, float]


@dataclass(frozen=True)
class PredictionDrift:
    """The served predictions against the reference's target: reported, never part of the verdict."""

    snapshot: Snapshot
    drift: ColumnDrift


@dataclass(frozen=True)
class Judged(_Span):
    """A judged window: the verdict and everything it rests on, ready to be worded and recorded."""

    traffic: VersionTraffic
    reference: Reference
    window: PreparedWindow
    findings: DriftFindings
    verdict: Verdict
    drift: Snapshot  # the Evidently drift and data-summary report
    quality: Quality | None = None
    prediction: PredictionDrift | None = None  # None: no prediction or no target to compare
    fairness: LiveFairness | None = None  # None: no sensitive column, or too little feedback


Judgement = Judged | NotJudged


def too_few_rows(settings: MonitorSettings, traffic: VersionTraffic) -> NotJudged | None:
    """The check that needs no reference, so a thin window costs no download."""
    if traffic.rows < settings.policy.min_rows:
        return NotJudged(traffic, Shortfall.TOO_FEW_ROWS)
    return None


def judge(
    settings: MonitorSettings,
    traffic: VersionTraffic,
    reference: Reference,
    *,
    feedback: FeedbackReader | None = None,
    progress: Progress | None = None,
) -> Judgement:
    """Judge the window against the reference; `feedback` defaults to the feedback in the inference log."""
    thin = too_few_rows(settings, traffic)
    if thin:
        return thin
    window = prepare(traffic.features(), reference.frame, reference.schema)
    if not window.schema.columns:
        return NotJudged(traffic, Shortfall.NO_JUDGED_COLUMNS, reference=reference)
    if progress:
        sampled, version = len(window.current), traffic.model_version
        progress(f"judging {sampled:,} sampled of {traffic.rows:,} rows of v{version} with Evidently")
    policy = settings.policy
    drift = run_drift_report(window, drift_share_threshold=policy.drift_share_threshold, min_rows=policy.min_rows)
    # A feature gone missing is drift too (missing.py), though Evidently only compares the values there are.
    findings = count_missing(read_findings(drift.dict()), window, max_increase=policy.max_missing_share_increase)
    verdict = decide_verdict(
        traffic.rows,
        findings.drift_share,
        min_rows=policy.min_rows,
        drift_share_threshold=policy.drift_share_threshold,
    )
    task = monitored_task(reference.task)
    served = prediction_drift(traffic.keys()[PREDICTION], reference.target_values, task)
    keys = traffic.keys()
    found = (feedback or partial(read_feedback, settings.inference_log_dir))(
        set(zip(keys["request_id"], keys["row"], strict=True)))
    quality = quality_of(traffic, task, {key: given.label for key, given in found.items()},
                         min_labeled_rows=policy.min_labeled_rows)
    fairness = live_fairness(keys, found, reference.fairness, task, min_labeled_rows=policy.min_labeled_rows)
    return Judged(traffic, reference, window, findings, verdict, drift, quality,
                  PredictionDrift(*served) if served else None, fairness)


def quality_of(traffic: VersionTraffic, task: MonitoredTask, labels: dict[LabelKey, object], *,
               min_labeled_rows: int) -> Quality | None:
    """The task's quality metrics when enough sampled rows have ground-truth feedback."""
    labeled = labeled_rows(traffic.keys(), labels, task)
    if len(labeled) < min_labeled_rows:
        return None
    try:
        return Quality(task.name, *run_quality_report(labeled, task))
    except ValueError as exc:  # Evidently 0.7.23 cannot bin errors that are all but constant: judge the drift anyway
        log_event("monitoring.quality_skipped", level=30, task=task.name, rows=len(labeled), error=str(exc))
        return None
