"""The job's settings from the environment, and the container health check on the heartbeat."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.monitoring.__main__ import main
from services.monitoring.observability import heartbeat_age_s, touch_heartbeat
from services.monitoring.settings import MonitorSettings, SettingsError

REQUIRED = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "INFERENCE_LOG_DIR": "/data/inference",
            "MONITORING_WORKSPACE": "/data/workspace"}


def test_defaults_match_the_pipeline_config():
    from pipelines.config import MonitoringConfig

    settings, config = MonitorSettings.from_env(REQUIRED), MonitoringConfig()
    for name in ("experiment", "min_rows", "drift_share_threshold", "window_rows", "window_hours",
                 "max_sample_rows", "on_drift", "cooldown_minutes", "interval_minutes", "max_missing_share_increase",
                 "log_retention_days"):
        assert getattr(settings, name) == getattr(config, name), name
    assert not settings.explicit_window


def test_thresholds_from_env():
    settings = MonitorSettings.from_env({**REQUIRED, "MONITORING_MIN_ROWS": "50", "MONITORING_WINDOW_HOURS": "1.5",
                                         "MONITORING_ON_DRIFT": "none", "MONITORING_INTERVAL_MINUTES": "0.5"})
    assert (settings.min_rows, settings.window_hours, settings.on_drift) == (50, 1.5, "none")
    assert settings.interval_minutes == 0.5 and settings.explicit_window


def test_missing_share_retention_and_log_index_from_env():
    defaults = MonitorSettings.from_env({**REQUIRED, "MONITORING_REPORTS_DIR": "/state/reports"})
    assert defaults.log_index_file == Path("/state/monitoring-log-index.json")  # writable state, not the log
    settings = MonitorSettings.from_env({**REQUIRED, "MONITORING_MAX_MISSING_SHARE_INCREASE": "0.25",
                                         "MONITORING_LOG_RETENTION_DAYS": "7",
                                         "MONITORING_LOG_INDEX_FILE": "/state/index.json"})
    assert (settings.max_missing_share_increase, settings.log_retention_days) == (0.25, 7)
    assert settings.log_index_file == Path("/state/index.json")


def test_the_pipeline_config_maps_onto_the_settings(tmp_path):
    from pipelines.config import DataConfig, MonitoringConfig, PipelineConfig, PlatformConfig
    from pipelines.monitor import monitor_settings

    config = PipelineConfig(
        model_name="loans", data=DataConfig(target="y", numeric_features=["x"]),
        platform=PlatformConfig(state_dir=tmp_path),
        monitoring=MonitoringConfig(max_missing_share_increase=0.2, log_retention_days=3),
    )
    settings = monitor_settings(config)
    assert (settings.max_missing_share_increase, settings.log_retention_days) == (0.2, 3)
    assert settings.log_index_file == tmp_path / "monitoring" / "log-index.json"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({k: v for k, v in REQUIRED.items() if k != "INFERENCE_LOG_DIR"}, "INFERENCE_LOG_DIR is required"),
        ({**REQUIRED, "MONITORING_MIN_ROWS": "many"}, "MONITORING_MIN_ROWS must be an integer"),
        ({**REQUIRED, "MONITORING_DRIFT_SHARE_THRESHOLD": "1.5"}, "drift_share_threshold must be in"),
        ({**REQUIRED, "MONITORING_ON_DRIFT": "page-me"}, "on_drift must be one of retrain, none"),
        ({**REQUIRED, "MONITORING_MAX_MISSING_SHARE_INCREASE": "0"}, "max_missing_share_increase must be in"),
        ({**REQUIRED, "MONITORING_LOG_RETENTION_DAYS": "0"}, "log_retention_days must be >= 1"),
        ({**REQUIRED, "MONITORING_LOG_RETENTION_DAYS": "a week"}, "MONITORING_LOG_RETENTION_DAYS must be an integer"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        MonitorSettings.from_env(env)


def test_healthcheck_follows_the_heartbeat(tmp_path, monkeypatch, capsys):
    beat = tmp_path / "heartbeat"
    for key, value in {**REQUIRED, "MONITORING_HEARTBEAT_FILE": str(beat), "MONITORING_INTERVAL_MINUTES": "1"}.items():
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
    for key, value in {**REQUIRED, "MONITORING_HEARTBEAT_FILE": str(beat), "MONITORING_INTERVAL_MINUTES": "1"}.items():
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
        return type("Result", (), {"verdict": "OK", "summary": "fine"})()

    stop = threading.Event()
    monkeypatch.setattr(job, "run_once", run_once)
    monkeypatch.setattr(stop, "wait", lambda _seconds: health_during_runs.append(main(["--healthcheck"])))
    job.run_forever(settings, stop)

    # Before the first run: healthy. After the failed one, and during the next run: unhealthy. After it: healthy.
    assert health_during_runs == [0, 1, 1, 0]
    assert "the last monitoring run failed: OverflowError: cannot convert float infinity" in capsys.readouterr().err
    assert main(["--healthcheck"]) == 0
