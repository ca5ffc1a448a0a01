"""The monitoring job's drift alert end to end: real MLflow, real Evidently, a real local HTTP receiver.
A drift episode sends one alert; the next drifted window of the same episode sends none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlflow.tracking import MlflowClient

from services.monitoring.alert import AlertSettings
from services.monitoring.drift import Verdict
from services.monitoring.job import run_once
from tests.integration.test_monitoring import _holdout_draw, _log_traffic, _settings, _shifted, model_name, trained
from tests.receiver import receiving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
__all__ = ["model_name", "trained"]  # fixtures shared with test_monitoring.py


def test_a_drift_episode_sends_one_alert(mlflow_server, trained, model_name, tmp_path):
    with receiving("/hooks/drift") as receiver:
        settings = _settings(mlflow_server, model_name, tmp_path,
                             alert=AlertSettings(url=receiver.url, timeout_s=5.0, backoff_s=0.0))
        _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 600, seed=4)))
        first = run_once(settings)
        later = datetime.now(UTC) + timedelta(seconds=5)
        _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 400, seed=5)),
                     start=later)
        second = run_once(settings)

    assert first.verdict is Verdict.DRIFT and first.retrain_requested
    assert second.verdict is Verdict.DRIFT and not second.retrain_requested  # same episode
    ((_, body),) = receiver.received
    assert body["verdict"] == "DRIFT" and body["model_name"] == model_name and body["model_version"] == "1"
    assert set(body["drifted_columns"]) == set(first.versions[0].drifted_columns) and body["drifted_columns"]
    assert body["report_url"] == first.mlflow_run_url and first.mlflow_run_url in body["text"]
    assert MlflowClient(mlflow_server).get_run(first.mlflow_run_id).data.tags["alert"] == "delivered"
