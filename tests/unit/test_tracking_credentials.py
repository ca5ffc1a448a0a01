"""A tracking URI with `user:password@` never shows its password in MLflow's errors."""

from __future__ import annotations

import os

import mlflow
import pytest

from pipelines.config import DataConfig, PipelineConfig
from pipelines.registry import connect
from pipelines.uris import redact, split_credentials

PASSWORD = "pa%3Ass-7c1d"  # percent-encoded ':' in the URI


def test_credentials_are_split_off_the_uri():
    uri, user, password = split_credentials(f"http://alice:{PASSWORD}@127.0.0.1:5999/")
    assert (uri, user, password) == ("http://127.0.0.1:5999/", "alice", "pa:ss-7c1d")
    assert split_credentials("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None, None)
    assert redact(f"http://alice:{PASSWORD}@127.0.0.1:5999/") == "http://alice:***@127.0.0.1:5999/"


def test_a_failing_mlflow_call_does_not_quote_the_password(monkeypatch):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    config = PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]),
                            tracking={"uri": f"http://alice:{PASSWORD}@127.0.0.1:9/"})
    client = connect(config)
    assert PASSWORD not in mlflow.get_tracking_uri() and "alice" not in mlflow.get_tracking_uri()
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pa:ss-7c1d"
    with pytest.raises(Exception) as failed:  # noqa: B017 - whatever MLflow raises, its text is the point
        client.search_experiments()
    assert PASSWORD not in str(failed.value) and "pa:ss-7c1d" not in str(failed.value)
