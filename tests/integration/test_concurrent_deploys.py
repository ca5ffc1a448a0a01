"""Two `pipelines deploy` processes started a second apart: one releases, the other is refused at once.

It uses the session's MLflow with a model and a state dir of its own, so the release loop's model is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from pipelines import platform
from pipelines.config import load_config
from pipelines.local import stop_serving
from pipelines.registry import aliases_of, connect

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROW = {"age": 41, "income": 52000.0, "loan_amount": 12000.0, "credit_score": 690, "debt_ratio": 0.31,
       "employment": "salaried", "region": "east", "purpose": "car"}


def test_a_second_deploy_is_refused_at_once_and_the_first_releases(local_platform, tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(local_platform.raw))
    raw["model_name"] = "concurrent-deploys"
    raw["platform"].update(state_dir=str(tmp_path / "state"), serving_port=platform.free_port())
    path = tmp_path / "concurrent.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_TRACKING", "BENTOML_"))}

    def start(command: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pipelines", command, "--config", str(path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    try:
        trained = start("train")
        assert trained.wait(timeout=300) == 0, trained.communicate()[0]
        first = start("deploy")
        time.sleep(1)
        second = start("deploy")
        outputs = {process: process.communicate(timeout=500)[0] for process in (first, second)}
        codes = sorted(process.returncode for process in outputs)
        assert codes == [0, 1], "\n\n".join(outputs.values())
        loser = max(outputs, key=lambda process: process.returncode)
        assert "another deploy or rollback is running" in outputs[loser], outputs[loser]
        assert "gate passed" not in outputs[loser]  # refused before it gated or built anything
        assert not any("Traceback" in output for output in outputs.values()), "\n\n".join(outputs.values())
        assert aliases_of(connect(config), config.model_name) == {"champion": "1"}
        reply = httpx.post(f"{config.platform.serving_url}/predict", json={"rows": [ROW]}, timeout=30)
        assert reply.status_code == 200 and reply.json()["model_version"] == "1", reply.text
    finally:
        stop_serving(config)
