"""The drift alert against a real local HTTP receiver: delivered once, retried on 500, gives up cleanly,
times out, a bad URL is a config error, and neither the URL nor the token reaches a log line or an error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipelines.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from pipelines.monitor import monitor_settings
from services.monitoring.alert import DISPATCH_EVENT, AlertSettings, DriftAlert, send_alert
from services.monitoring.observability import LOGGER_NAME
from services.monitoring.settings import MonitorSettings, SettingsError
from tests.receiver import Receiver, receiving

ALERT = DriftAlert(verdict="DRIFT", model_name="loan-default", model_version="3",
                   drifted_columns=["income", "credit_score"], report_url="http://mlflow:5000/#/experiments/2/runs/ab",
                   summary="DRIFT: 2 of 8 columns drifted")
SECRET_PATH = "/hooks/T000/B000/s3cr3t-path"
TOKEN = "ghp_not-a-real-token-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(SECRET_PATH) as made:
        yield made


@pytest.fixture
def job_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    return caplog


def alert_settings(receiver: Receiver, **overrides: object) -> AlertSettings:
    return AlertSettings(**{"url": receiver.url, "timeout_s": 2.0, "backoff_s": 0.0, **overrides})  # type: ignore[arg-type]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET_PATH not in text and TOKEN not in text


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)


def test_delivered_once_with_slack_text_and_the_fields(receiver, job_log):
    delivery = send_alert(alert_settings(receiver), ALERT)
    assert delivery.delivered and delivery.attempts == 1
    ((headers, body),) = receiver.received
    assert headers["Content-Type"] == "application/json" and "Authorization" not in headers
    assert body["verdict"] == "DRIFT" and body["model_version"] == "3"
    assert body["drifted_columns"] == ["income", "credit_score"] and body["report_url"] == ALERT.report_url
    assert "loan-default v3" in body["text"] and "income, credit_score" in body["text"]
    assert ALERT.report_url in body["text"]
    assert_no_secret(logged(job_log))


def test_retried_on_500_then_delivered(receiver, job_log):
    receiver.answers = [500, 503, 200]
    pauses: list[float] = []
    delivery = send_alert(alert_settings(receiver, backoff_s=0.5), ALERT, sleep=pauses.append)
    assert delivery.delivered and delivery.attempts == 3 and len(receiver.received) == 3
    assert pauses == [0.5, 1.0]  # doubling backoff


def test_gives_up_cleanly_after_its_attempts(receiver, job_log):
    receiver.answers = [500]
    delivery = send_alert(alert_settings(receiver, attempts=3), ALERT, sleep=lambda _: None)
    assert not delivery.delivered and delivery.outcome == "gave up after 3 attempts: 500"
    assert len(receiver.received) == 3
    assert "monitoring.alert" in logged(job_log)
    assert_no_secret(logged(job_log), repr(delivery))


def test_a_client_error_is_not_retried(receiver, job_log):
    receiver.answers = [404]
    delivery = send_alert(alert_settings(receiver), ALERT, sleep=lambda _: None)
    assert not delivery.delivered and delivery.outcome == "refused: 404" and len(receiver.received) == 1


def test_a_receiver_that_does_not_answer_in_time_is_given_up(receiver, job_log):
    receiver.delay_s = 1.0
    delivery = send_alert(alert_settings(receiver, timeout_s=0.2, attempts=2), ALERT, sleep=lambda _: None)
    assert not delivery.delivered and "no answer within 0.2 s" in delivery.outcome


def test_nothing_listening_is_given_up_without_the_url_in_the_outcome(job_log):
    settings = AlertSettings(url=f"http://127.0.0.1:9{SECRET_PATH}", token=TOKEN, attempts=2, backoff_s=0)
    delivery = send_alert(settings, ALERT, sleep=lambda _: None)
    assert not delivery.delivered and "cannot connect" in delivery.outcome
    assert_no_secret(delivery.outcome, logged(job_log), repr(settings))


def test_github_mode_sends_a_repository_dispatch_with_the_token(receiver, job_log):
    settings = alert_settings(receiver, url=receiver.url.replace(SECRET_PATH, "/repos/acme/models/dispatches"),
                                 kind="github", token=TOKEN)
    assert settings.problems() == []
    assert send_alert(settings, ALERT).delivered
    ((headers, body),) = receiver.received
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert body["event_type"] == DISPATCH_EVENT == "drift-detected"
    assert body["client_payload"]["model_version"] == "3" and body["client_payload"]["verdict"] == "DRIFT"
    assert len(body["client_payload"]) <= 10  # GitHub's limit on client_payload's top-level keys
    assert_no_secret(logged(job_log), repr(settings))


def env_with_alert(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    (tmp_path / "url").write_text(url + "\n")
    return {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MONITORING_WORKSPACE": str(tmp_path / "ws"),
            "INFERENCE_LOG_DIR": str(tmp_path / "log"), "MONITORING_ALERT_WEBHOOK_URL_FILE": str(tmp_path / "url"),
            **extra}


def test_the_job_reads_the_webhook_from_files(tmp_path):
    (tmp_path / "token").write_text(TOKEN)
    settings = MonitorSettings.from_env(env_with_alert(
        tmp_path, "https://api.github.com/repos/acme/models/dispatches", MONITORING_ALERT_KIND="github",
        MONITORING_ALERT_TOKEN_FILE=str(tmp_path / "token"), MONITORING_ALERT_ATTEMPTS="2"))
    assert settings.alert is not None and settings.alert.token == TOKEN and settings.alert.attempts == 2
    assert_no_secret(repr(settings))
    assert MonitorSettings.from_env({k: v for k, v in env_with_alert(tmp_path, "https://x.example/h").items()
                                     if "ALERT" not in k}).alert is None


@pytest.mark.parametrize(("url", "extra", "message"), [
    (f"ftp://hooks.example{SECRET_PATH}", {}, "must be one http(s)://host/... URL"),
    (f"hooks.example{SECRET_PATH}", {}, "must be one http(s)://host/... URL"),
    (f"https://{SECRET_PATH}", {}, "must be one http(s)://host/... URL"),
    (f"https://api.github.com/repos/acme/models/dispatches?{SECRET_PATH}", {"MONITORING_ALERT_KIND": "github"},
     "needs a token"),
    (f"https://hooks.example{SECRET_PATH}", {"MONITORING_ALERT_KIND": "teams"}, "must be one of slack, github"),
    (f"https://hooks.example{SECRET_PATH}", {"MONITORING_ALERT_ATTEMPTS": "0"}, "attempts >= 1"),
])
def test_a_bad_webhook_is_a_config_error_that_does_not_show_it(tmp_path, url, extra, message):
    with pytest.raises(SettingsError, match="MONITORING_ALERT_") as raised:
        MonitorSettings.from_env(env_with_alert(tmp_path, url, **extra))
    assert message in str(raised.value)
    assert_no_secret(str(raised.value))


def test_a_missing_url_file_is_a_config_error(tmp_path):
    env = env_with_alert(tmp_path, "https://hooks.example/x")
    env["MONITORING_ALERT_WEBHOOK_URL_FILE"] = str(tmp_path / "absent")
    with pytest.raises(SettingsError, match="webhook URL file .*absent cannot be read"):
        MonitorSettings.from_env(env)


def test_the_pipeline_config_names_the_alert_key(tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    (tmp_path / "url").write_text(f"not a url {SECRET_PATH}")
    raw.setdefault("monitoring", {})["alert"] = {"webhook_url_file": str(tmp_path / "url")}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="monitoring.alert: the alert webhook URL must be") as raised:
        monitor_settings(load_config(path))
    assert_no_secret(str(raised.value))
