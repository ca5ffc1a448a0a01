"""A fork's config that writes only the keys without defaults, kept outside the repo, runs the whole loop.

The fork is a copy of the template's packages in a temp directory (so its repo root, where the default state
dir is anchored, is its own); the config lives in another directory, which is also the working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from pipelines import platform
from pipelines.config import DEFAULT_CONFIG_PATH, REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def minimal_config(path: Path) -> dict:
    """model_name and the data keys without defaults; ports of its own, so it runs beside anything else."""
    committed = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["data"]
    raw = {"model_name": "minimal", "data": {key: committed[key] for key in
                                              ("target", "numeric_features", "categorical_features")},
           "platform": {"mlflow_port": platform.free_port(), "serving_port": platform.free_port()}}
    path.write_text(yaml.safe_dump(raw))
    return raw


def test_a_config_with_only_the_required_keys_trains_deploys_and_serves(tmp_path):
    fork, elsewhere = tmp_path / "fork", tmp_path / "elsewhere"
    for package in ("pipelines", "services"):
        shutil.copytree(REPO_ROOT / package, fork / package, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere.mkdir()
    raw = minimal_config(elsewhere / "churn.yaml")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MLFLOW_TRACKING", "BENTOML_", "PIPELINE_CONFIG"))}
    env.update(PYTHONPATH=str(fork), PIPELINE_CONFIG=str(elsewhere / "churn.yaml"), COLUMNS="200")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=400)

    def pipelines(*args: str) -> str:
        done = run(*args)
        assert done.returncode == 0, \
            f"`pipelines {' '.join(args)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    try:
        for step in ("platform", "train", "validate", "build", "deploy"):
            pipelines(step)
        reply = httpx.post(f"http://127.0.0.1:{raw['platform']['serving_port']}/predict", timeout=30, json={"rows": [{
            "age": 30, "income": 40000, "loan_amount": 9000, "credit_score": 640, "debt_ratio": 0.4,
            "employment": "contract", "region": "west", "purpose": "home"}]})
        assert reply.status_code == 200 and reply.json()["model_version"] == "1", reply.text
        assert (fork / ".platform" / "mlflow" / "mlflow.db").is_file()  # anchored to the fork's root ...
        assert not (elsewhere / ".platform").exists()  # ... not to the working directory
    finally:
        down = run("down").stdout
    assert "serving: stopped" in down and "MLflow: stopped" in down, down
