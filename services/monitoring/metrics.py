"""The monitoring job's own Prometheus metrics, served on `settings.metrics_port` by the stack's `--loop` job and
scraped by the stack's Prometheus (services/prometheus: the `ModelDrift` and `ModelLiveFairness` alerts read them).

Per model version, from the latest run that judged it: `monitoring_drift` (1 DRIFT, 0 OK) and
`monitoring_fairness_over_limits` (1 when live traffic breaks the gate's fairness limits, 0 within them); a
version the run could not judge keeps its last value, and one absent from `FORGET_AFTER_RUNS` runs with traffic
in a row (it no longer serves) loses its series, so its alert resolves. Per model: when a run last succeeded,
and how many failed. The verdicts say no more than the MLflow runs do, and the port is on the platform network
only (not published), like the front's exporter.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from services.monitoring.drift import Verdict
from services.monitoring.results import MonitorResult

DRIFT_METRIC = "monitoring_drift"
FAIRNESS_METRIC = "monitoring_fairness_over_limits"
LAST_SUCCESS_METRIC = "monitoring_last_success_timestamp_seconds"
FAILURES_METRIC = "monitoring_run_failures"  # a counter: exposed with the `_total` suffix
VERSION_LABELS = ["model_name", "model_version"]
# A window holds only records newer than the last judged one, so a version still serving (a small canary, a quiet
# hour) can miss a run; one missing from this many runs with traffic in a row no longer serves, and its series
# (and alert) end. At the default 5-minute interval: an hour.
FORGET_AFTER_RUNS = 12


class JobMetrics:
    """One registry of the job's series (not the process-wide default, which would add Python's own)."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.drift = Gauge(DRIFT_METRIC, "1 when the latest judged window of the version drifted, 0 when OK",
                           VERSION_LABELS, registry=self.registry)
        self.fairness = Gauge(FAIRNESS_METRIC, "1 when live traffic of the version breaks its gate's fairness limits",
                              VERSION_LABELS, registry=self.registry)
        self.last_success = Gauge(LAST_SUCCESS_METRIC, "when a monitoring run last finished", ["model_name"],
                                  registry=self.registry)
        self.failures = Counter(FAILURES_METRIC, "monitoring runs that failed", ["model_name"], registry=self.registry)
        self.failures.labels(model_name=model_name)  # a series from the start: increase() needs its zero
        self._absent: dict[str, int] = {}  # version with series -> runs with traffic in a row that lacked it

    def record(self, result: MonitorResult) -> None:
        if result.versions:  # a run without traffic says nothing of who serves
            present = {version.model_version for version in result.versions}
            self._absent = {version: 0 if version in present else runs + 1 for version, runs in self._absent.items()}
            self._forget({version for version, runs in self._absent.items() if runs >= FORGET_AFTER_RUNS})
        for version in result.versions:
            self._absent.setdefault(version.model_version, 0)
            labels = {"model_name": self.model_name, "model_version": version.model_version}
            if version.verdict in (Verdict.OK, Verdict.DRIFT):
                self.drift.labels(**labels).set(1 if version.verdict is Verdict.DRIFT else 0)
            if version.fairness_within_limits is not None:
                self.fairness.labels(**labels).set(0 if version.fairness_within_limits else 1)
        self.last_success.labels(model_name=self.model_name).set_to_current_time()

    def _forget(self, versions: set[str]) -> None:
        for version in versions:
            for gauge in (self.drift, self.fairness):
                with contextlib.suppress(KeyError):  # a version judged on drift only has no fairness series
                    gauge.remove(self.model_name, version)
            del self._absent[version]

    def failed(self) -> None:
        self.failures.labels(model_name=self.model_name).inc()

    def serve(self, port: int) -> None:
        start_http_server(port, addr="0.0.0.0", registry=self.registry)  # a daemon thread; the loop goes on
