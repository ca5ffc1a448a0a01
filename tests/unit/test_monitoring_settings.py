"""The job's settings from the environment, and the container health check on the heartbeat."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from services.contract import MONITORING_POLICY_ENV
from services.monitoring.__main__ import main
from services.monitoring.observability import heartbeat_age_s, touch_heartbeat
from services.monitoring.policy import MonitoringPolicy
from services.monitoring.settings import MonitorSettings, SettingsError

REQUIRED = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "INFERENCE_LOG_DIR": "/data/inference",
            "MONITORING_WORKSPACE": "/data/workspace"}
ONE_MINUTE = '{"interval_minutes": 1}'


def test_without_a_policy_the_job_judges_by_the_policys_defaults():
    settings = MonitorSettings.from_env(REQUIRED)
    assert settings.policy == MonitoringPolicy() and not settings.policy.explicit_window


def test_the_policy_comes_as_one_json_variable():
    policy = {"min_rows": 50, "window_hours": 1.5, "on_drift": "none", "interval_minutes": 0.5,
              "max_missing_share_increase": 0.25, "log_retention_days": 7}
    settings = MonitorSettings.from_env({**REQUIRED, MONITORING_POLICY_ENV: json.dumps(policy)})
    assert settings.policy == MonitoringPolicy(**policy) and settings.policy.explicit_window


def test_log_index_from_env():
    defaults = MonitorSettings.from_env({**REQUIRED, "MONITORING_REPORTS_DIR": "/state/reports"})
    assert defaults.log_index_file == Path("/state/monitoring-log-index.json")  # writable state, not the log
    settings = MonitorSettings.from_env({**REQUIRED, "MONITORING_LOG_INDEX_FILE": "/state/index.json"})
    assert settings.log_index_file == Path("/state/index.json")


def test_the_pipeline_config_maps_onto_the_settings(tmp_path):
    from pipelines.config import DataConfig, MonitoringConfig, PipelineConfig, PlatformConfig
    from pipelines.monitor import monitor_settings

    config = PipelineConfig(
        model_name="loans", data=DataConfig(target="y", numeric_features=["x"]),
        platform=PlatformConfig(state_dir=tmp_path),
        monitoring=MonitoringConfig(max_missing_share_increase=0.2, log_retention_days=3, min_labeled_rows=9),
    )
    settings = monitor_settings(config, window_rows=400)
    assert settings.policy == MonitoringPolicy(max_missing_share_increase=0.2, log_retention_days=3,
                                               min_labeled_rows=9, window_rows=400)
    assert settings.log_index_file == tmp_path / "monitoring" / "log-index.json"
    # `make monitor`'s audit records name the actor and the platform's commit, as every record the CLI writes.
    assert {"who", "platform_git_sha"} <= set(settings.audit_actor or {})
    assert MonitorSettings.from_env(REQUIRED).audit_actor is None  # the stack's job: its own MLflow user


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({k: v for k, v in REQUIRED.items() if k != "INFERENCE_LOG_DIR"}, "INFERENCE_LOG_DIR is required"),
        ({**REQUIRED, MONITORING_POLICY_ENV: '{"drift_share_threshold": 1.5}'},
         r"^environment variable MONITORING_POLICY: monitoring\.drift_share_threshold: Input should be less than or "
         r"equal to 1 \(got 1\.5\)$"),
        ({**REQUIRED, MONITORING_POLICY_ENV: '{"on_drift": "page-me"}'}, r"monitoring\.on_drift: Input should be"),
        ({**REQUIRED, MONITORING_POLICY_ENV: '{"min_rows": 1, "minrows": 2}'}, r"monitoring\.minrows: unknown key"),
        ({**REQUIRED, MONITORING_POLICY_ENV: "min_rows=5"}, "MONITORING_POLICY: not a JSON object"),
        # The variables of old images and setups are refused, so no setting is silently dropped.
        ({**REQUIRED, "MONITORING_MIN_ROWS": "50"}, "MONITORING_MIN_ROWS is no longer read: .* MONITORING_POLICY"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        MonitorSettings.from_env(env)


def test_a_bad_policy_stops_the_job_with_one_line(monkeypatch, capsys):
    for key, value in {**REQUIRED, MONITORING_POLICY_ENV: '{"min_rows": 0}'}.items():
        monkeypatch.setenv(key, value)
    assert main([]) == 2
    assert capsys.readouterr().err == ("monitoring: environment variable MONITORING_POLICY: monitoring.min_rows: "
                                       "Input should be greater than or equal to 1 (got 0)\n")


def test_a_bad_override_is_named(monkeypatch, capsys):
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    assert main(["--window-rows", "0"]) == 2
    assert "monitoring.window_rows: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_healthcheck_follows_the_heartbeat(tmp_path, monkeypatch, capsys):
    beat = tmp_path / "heartbeat"
    for key, value in {**REQUIRED, "MONITORING_HEARTBEAT_FILE": str(beat), MONITORING_POLICY_ENV: ONE_MINUTE}.items():
        monkeypatch.setenv(key, value)

    assert main(["--healthcheck"]) == 1 and "no heartbeat" in capsys.readouterr().err
    touch_heartbeat(beat, state="idle")
    assert main(["--healthcheck"]) == 0 and heartbeat_age_s(beat) < 5
    stale = time.time() - 2 * 60 - 121
    os.utime(beat, (stale, stale))
    assert main(["--healthcheck"]) == 1 and "old" in capsys.readouterr().err


def test_bad_environment_exits_2_with_one_line(monkeypatch, capsys):
    for key, value in REQUIRED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MONITORING_WORKSPACE")
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == "monitoring: environment variable MONITORING_WORKSPACE is required"


def test_a_failing_run_fails_the_healthcheck_until_a_run_succeeds(tmp_path, monkeypatch, capsys):
    """The loop goes on after a failed run, but the container must not look healthy while every run fails."""
    import threading

    from services.monitoring import job

    beat = tmp_path / "heartbeat"
    for key, value in {**REQUIRED, "MONITORING_HEARTBEAT_FILE": str(beat), MONITORING_POLICY_ENV: ONE_MINUTE}.items():
        monkeypatch.setenv(key, value)
    settings = MonitorSettings.from_env()
    outcomes = iter([OverflowError("cannot convert float infinity to integer"), None])
    health_during_runs: list[int] = []

    def run_once(_settings, **_kwargs):
        health_during_runs.append(main(["--healthcheck"]))  # while the run is going, the last outcome counts
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        stop.set()
        return type("Result", (), {"verdict": "OK", "summary": "fine", "versions": []})()

    stop = threading.Event()
    monkeypatch.setattr(job, "run_once", run_once)
    monkeypatch.setattr(stop, "wait", lambda _seconds: health_during_runs.append(main(["--healthcheck"])))
    job.run_forever(settings, stop)

    # Before the first run: healthy. After the failed one, and during the next run: unhealthy. After it: healthy.
    assert health_during_runs == [0, 1, 1, 0]
    assert "the last monitoring run failed: OverflowError: cannot convert float infinity" in capsys.readouterr().err
    assert main(["--healthcheck"]) == 0
