"""The monitoring job's metrics: each version's latest verdict and live fairness, runs that failed; the names the
stack's alert rules read, on the port its Prometheus scrapes."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import generate_latest

from services.monitoring.drift import Verdict
from services.monitoring.metrics import (
    DRIFT_METRIC,
    FAILURES_METRIC,
    FAIRNESS_METRIC,
    FORGET_AFTER_RUNS,
    LAST_SUCCESS_METRIC,
    JobMetrics,
)
from services.monitoring.results import MonitorResult, VersionResult
from services.monitoring.settings import METRICS_PORT_ENV, STACK_METRICS_PORT, MonitorSettings, SettingsError

PROMETHEUS = Path(__file__).resolve().parents[2] / "services" / "prometheus"


def result(*versions: VersionResult) -> MonitorResult:
    return MonitorResult(versions[0].verdict, "s", None, None, None, False, list(versions), Path("/tmp"))


def exposed(metrics: JobMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_each_version_keeps_its_latest_judged_verdict_and_fairness():
    metrics = JobMetrics("loans")
    metrics.record(result(VersionResult("3", Verdict.DRIFT, "s", 500, fairness_within_limits=False),
                          VersionResult("2", Verdict.OK, "s", 500, fairness_within_limits=True)))
    metrics.record(result(VersionResult("3", Verdict.NOT_ENOUGH_DATA, "s", 10),  # keeps v3's last verdict
                          VersionResult("2", Verdict.NOT_ENOUGH_DATA, "s", 10)))
    text = exposed(metrics)
    assert f'{DRIFT_METRIC}{{model_name="loans",model_version="3"}} 1.0' in text
    assert f'{DRIFT_METRIC}{{model_name="loans",model_version="2"}} 0.0' in text
    assert f'{FAIRNESS_METRIC}{{model_name="loans",model_version="3"}} 1.0' in text
    assert f'{FAIRNESS_METRIC}{{model_name="loans",model_version="2"}} 0.0' in text
    assert f'{LAST_SUCCESS_METRIC}{{model_name="loans"}}' in text


def test_a_version_gone_from_the_traffic_loses_its_series_so_its_alert_resolves():
    """v3 drifted, then v4 replaced it: v3's DRIFT must not fire for ever. A run without traffic, or a few runs
    without v3's (a quiet canary), keep its series: the window holds only records newer than the last judged."""
    metrics = JobMetrics("loans")
    metrics.record(result(VersionResult("3", Verdict.DRIFT, "s", 500, fairness_within_limits=False)))
    metrics.record(MonitorResult(Verdict.NOT_ENOUGH_DATA, "s", None, None, None, False, [], Path("/tmp")))
    for _ in range(FORGET_AFTER_RUNS - 1):
        metrics.record(result(VersionResult("4", Verdict.OK, "s", 500)))
    assert f'{DRIFT_METRIC}{{model_name="loans",model_version="3"}} 1.0' in exposed(metrics)
    metrics.record(result(VersionResult("4", Verdict.OK, "s", 500)))
    text = exposed(metrics)
    assert 'model_version="3"' not in text
    assert f'{DRIFT_METRIC}{{model_name="loans",model_version="4"}} 0.0' in text


def test_failed_runs_are_counted_from_zero():
    metrics = JobMetrics("loans")
    assert f'{FAILURES_METRIC}_total{{model_name="loans"}} 0.0' in exposed(metrics)
    metrics.failed()
    assert f'{FAILURES_METRIC}_total{{model_name="loans"}} 1.0' in exposed(metrics)


def test_the_alert_rules_read_the_jobs_metrics_on_the_port_prometheus_scrapes():
    rules = {rule["alert"]: rule["expr"] for path in (PROMETHEUS / "rules").glob("*.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule}
    assert DRIFT_METRIC in rules["ModelDrift"] and FAIRNESS_METRIC in rules["ModelLiveFairness"]
    assert f"{FAILURES_METRIC}_total" in rules["MonitoringRunsFailing"]
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "monitoring"]
    assert job["static_configs"] == [{"targets": [f"monitoring:{STACK_METRICS_PORT}"]}]


def test_the_metrics_port_comes_from_the_environment_and_is_checked(tmp_path):
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "INFERENCE_LOG_DIR": str(tmp_path),
           "MONITORING_WORKSPACE": str(tmp_path / "w")}
    assert MonitorSettings.from_env(env).metrics_port is None
    assert MonitorSettings.from_env({**env, METRICS_PORT_ENV: "9108"}).metrics_port == 9108
    for bad in ("0", "70000", "nine"):
        try:
            MonitorSettings.from_env({**env, METRICS_PORT_ENV: bad})
        except SettingsError as exc:
            assert METRICS_PORT_ENV in str(exc)
        else:
            raise AssertionError(f"{bad!r} was taken as a port")
