"""`pipelines demo` (what `make demo` runs), twice in a row, as a user runs it: a subprocess on its own state."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys

import httpx
import pytest

from pipelines.config import load_config
from pipelines.registry import aliases_of, connect
from services.monitoring.retrain import last_retrain_request
from tests.integration.conftest import stop_all, write_test_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def run_demo(config_path) -> str:
    env = {**os.environ, "PIPELINE_CONFIG": str(config_path), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "pipelines", "demo"], env=env, capture_output=True, text=True,
                          timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_twice_gives_a_second_version_and_a_real_promotion(tmp_path):
    config_path, _ = write_test_config(tmp_path)
    config = load_config(config_path)
    try:
        first = run_demo(config_path)
        client = connect(config)
        request = functools.partial(last_retrain_request, client, config.monitoring.experiment, config.model_name)
        assert request().is_open  # the demo's shifted traffic drifts
        second = run_demo(config_path)
        # The demo retrains on the same generated table: that is no answer to drift, so the request stays open.
        assert "left open" in second and request().is_open
        for output in (first, second):
            assert config.platform.mlflow_url in output and f"{config.platform.serving_url}/predict" in output
            assert re.search(r"data version\s+│\s+[0-9a-f]{12}", output)
            assert re.search(r"monitoring\s+│\s+DRIFT", output)
            assert ".html" in output
        assert "loan-default v1 (@champion)" in first and "loan-default v2 (@champion)" in second
        assert "vs champion v1" in second
        assert aliases_of(connect(config), config.model_name) == {"champion": "2", "previous": "1"}
        reply = httpx.post(f"{config.platform.serving_url}/predict", timeout=30, json={"rows": [{
            "age": 30, "income": 40000, "loan_amount": 9000, "credit_score": 640, "debt_ratio": 0.4,
            "employment": "contract", "region": "west", "purpose": "home"}]})
        assert reply.json()["model_version"] == "2"
    finally:
        stop_all(config)
