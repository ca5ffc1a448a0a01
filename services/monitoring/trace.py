"""Follow one prediction from its request id to the monitoring report that judged it.

Serving logs the request id with a timestamp and the model version; every judged window is an MLflow run
tagged with its model version and `window_start` / `window_end`. The report for a request is the run of
that version whose window holds the request's timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlflow.tracking import MlflowClient

from services.inference_record import BadRecord, InferenceRecord
from services.monitoring.inference_log import log_files
from services.monitoring.records import JUDGED_TAG, WINDOW_END_TAG, experiment_id, run_url
from services.monitoring.settings import MonitorSettings


@dataclass(frozen=True)
class Trace:
    request_id: str
    model_version: str
    timestamp: datetime
    log_file: str
    report_run_id: str | None  # None: not judged yet (or its window had too few rows so far)
    report_run_url: str | None
    verdict: str | None


def find_logged_request(settings: MonitorSettings, request_id: str) -> tuple[str, datetime, str] | None:
    """(model version, timestamp, log file) of the request's first logged row, or None."""
    needle = f'"{request_id}"'
    for path in log_files(settings.inference_log_dir):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if needle not in line:  # cheap filter before parsing
                    continue
                try:
                    record = InferenceRecord.parse(line)
                except BadRecord:
                    continue
                if record.request_id == request_id and record.model_name == settings.model_name:
                    return record.model_version, record.timestamp, path.name
    return None


def trace_request(settings: MonitorSettings, request_id: str) -> Trace | None:
    """Where one prediction went: its log line and the report run that covers it; None if never logged."""
    logged = find_logged_request(settings, request_id)
    if logged is None:
        return None
    version, stamp, log_file = logged
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = experiment_id(client, settings.policy.experiment)
    covering = None
    if experiment is not None:
        runs = client.search_runs(
            [experiment],
            filter_string=(
                f"tags.model_name = '{settings.model_name}' and tags.model_version = '{version}' "
                f"and tags.{JUDGED_TAG} = 'true'"
            ),
            max_results=5000,
        )
        covering = next(
            (
                run
                for run in runs
                if datetime.fromisoformat(run.data.tags["window_start"])
                <= stamp
                <= datetime.fromisoformat(run.data.tags[WINDOW_END_TAG])
            ),
            None,
        )
    run_id = covering.info.run_id if covering else None
    return Trace(
        request_id=request_id,
        model_version=version,
        timestamp=stamp,
        log_file=log_file,
        report_run_id=run_id,
        report_run_url=run_url(settings.tracking_uri, experiment, run_id),
        verdict=covering.data.tags.get("verdict") if covering else None,
    )
