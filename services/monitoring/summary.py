"""The words of a monitoring run: a line per model version and one for the run, as pure string functions.

Tests, docs and scripts match on these texts (the command line prints the run's summary as its last line),
so change them deliberately.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.contract import CHAMPION_ALIAS
from services.monitoring.drift import DriftFindings, PreparedWindow, Verdict
from services.monitoring.fairness import fairness_summary
from services.monitoring.inference_log import LogScan, WindowSpec
from services.monitoring.judge import Judgement, NotJudged, PredictionDrift, Shortfall
from services.monitoring.settings import MonitorSettings


class Outcome(Protocol):
    """What the run's summary reads of a model version's result (`results.VersionResult`)."""

    @property
    def model_version(self) -> str: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def summary(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def window_start(self) -> datetime | None: ...
    @property
    def window_end(self) -> datetime | None: ...


def version_summary(settings: MonitorSettings, judgement: Judgement) -> str:
    """One model version's line, judged or not."""
    name, version = settings.model_name, judgement.model_version
    if isinstance(judgement, NotJudged):
        return not_judged_summary(name, judgement, settings)
    text = drift_summary(name, version, judgement.verdict, judgement.findings, judgement.window, settings)
    return text + prediction_summary(judgement.prediction) + fairness_summary(judgement.fairness)


def prediction_summary(prediction: PredictionDrift | None) -> str:
    """The served predictions against the training target: apart from the feature share that decides."""
    if prediction is None:
        return ""
    drift = prediction.drift
    state = "drifted from" if drift.drifted else "in line with"
    return (f"; predictions {state} the training target ({drift.method} {drift.score:.3g}, "
            f"threshold {drift.threshold:g})")


def not_judged_summary(name: str, not_judged: NotJudged, settings: MonitorSettings) -> str:
    version = not_judged.model_version
    if not_judged.shortfall is Shortfall.TOO_FEW_ROWS:
        return f"{name} v{version}: {not_judged.rows} rows in the window, {settings.policy.min_rows} needed"
    if not_judged.shortfall is Shortfall.NO_REFERENCE:
        return f"{name} v{version}: no reference, {not_judged.problem}"
    features = not_judged.reference.schema.columns if not_judged.reference else []
    return f"{name} v{version}: none of the model's features {features} has values in the window"


def drift_summary(
    name: str,
    version: str,
    verdict: Verdict,
    findings: DriftFindings,
    window: PreparedWindow,
    settings: MonitorSettings,
) -> str:
    relation = ">=" if verdict is Verdict.DRIFT else "<"
    text = (
        f"{name} v{version}: {findings.drifted_count} of {findings.column_count} columns drifted "
        f"(share {findings.drift_share:.2f} {relation} {settings.policy.drift_share_threshold:.2f})"
    )
    gone = {m.column: m.label for m in findings.missing}
    if findings.drifted:
        text += f": {', '.join(gone.get(column, column) for column in findings.drifted)}"
    not_judged = [column for column in window.absent_columns if column not in gone]
    if not_judged:
        text += f"; no values for {', '.join(not_judged)}"
    if window.unknown_columns:
        text += f"; ignored unknown columns {', '.join(window.unknown_columns)}"
    return text


def overall_summary(
    deciding: Outcome,
    results: Sequence[Outcome],
    scan: LogScan,
    settings: MonitorSettings,
    retrain_requested: bool,
    *,
    champion: str | None = None,
) -> str:
    """The run's line: the deciding version's verdict and summary, then the other versions and skipped lines.

    `champion`: the version aliased champion, whose DRIFT alone opens a retrain request.
    """
    text = f"{deciding.verdict}: {deciding.summary}"
    if deciding.window_start and deciding.verdict is not Verdict.NOT_ENOUGH_DATA:
        text += f"; {deciding.rows:,} rows {deciding.window_start:%Y-%m-%d %H:%M:%S}–{deciding.window_end:%H:%M:%S} UTC"
    if deciding.verdict is Verdict.DRIFT:
        text += "; retrain requested" if retrain_requested else no_request_reason(settings, deciding, champion)
    others = [f"v{r.model_version} {r.verdict}" for r in results if r is not deciding]
    if others:
        text += f"; also {', '.join(others)}"
    if scan.skipped_lines:
        text += f"; {scan.skipped_lines} unreadable log lines skipped"
    return text


def no_request_reason(settings: MonitorSettings, deciding: Outcome, champion: str | None) -> str:
    if settings.policy.on_drift == "none":
        return "; no action (on_drift=none)"
    if deciding.model_version != champion:
        serving = f"v{champion} is" if champion else "no version is"
        return f"; no retrain request: v{deciding.model_version} is not @{CHAMPION_ALIAS} ({serving})"
    cooldown = settings.policy.cooldown_minutes
    return f"; retrain already requested or done within the last {cooldown:g} min (cooldown)"


def nothing_to_judge_summary(settings: MonitorSettings, scan: LogScan, window: WindowSpec) -> str:
    """The run's line when the window holds no logged rows of any version."""
    since = "in the window" if settings.policy.explicit_window or not window.since else "since the last report"
    summary = f"{Verdict.NOT_ENOUGH_DATA}: {settings.model_name}: no logged rows {since}"
    if scan.problems:
        summary += f"; {scan.problems[0]}"
    if scan.skipped_lines:
        summary += f"; {scan.skipped_lines} unreadable log lines skipped"
    return summary
