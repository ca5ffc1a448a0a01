"""What the examples' end-to-end tests share (tests/integration/test_examples.py, tests/stack/test_release_to_stack.py):
an example's config with fresh data, the rows its champion is served, and the task's response checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.data import to_records
from pipelines.snapshots import load_snapshot
from services.contract import HOLDOUT_ARTIFACT, REGRESSION

EXAMPLES = REPO_ROOT / "examples"


def make_data(example: Path, path: Path | None, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> None:
    """Run the example's own data script, as a user does (no path: its default, next to its config)."""
    command = [sys.executable, str(example / "make_data.py"), *([str(path)] if path else [])]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def example_raw(name: str, state: Path) -> dict[str, Any]:
    """The example's committed config, its data made fresh into `state` and read from there."""
    raw = yaml.safe_load((EXAMPLES / name / "pipeline.yaml").read_text())
    data = state / f"{name}.parquet"
    make_data(EXAMPLES / name, data)
    raw["data"]["source"] = str(data)
    return raw


def plain(value: object) -> object:
    """A numpy scalar as the JSON value it stands for."""
    return value.item() if hasattr(value, "item") else value


def holdout_rows(config: PipelineConfig, client: MlflowClient, version: str, rows: int) -> tuple[list[dict], list]:
    """The first `rows` of the version's frozen eval set: the features as a client sends them, and the truth."""
    holdout = load_snapshot(client.get_model_version(config.model_name, version).run_id, HOLDOUT_ARTIFACT).head(rows)
    return to_records(holdout[config.data.features]), [plain(value) for value in holdout[config.data.target]]


def check_response(body: dict, task: str, classes: set) -> None:
    """The task's response: numbers and no probabilities (regression), a probability per class (classification)."""
    predictions = body["predictions"]
    if task == REGRESSION:
        assert all(isinstance(value, int | float) and not isinstance(value, bool) for value in predictions), body
        assert body.get("probabilities") is None, body
        return
    labels = {str(label) for label in classes}
    assert {str(label) for label in predictions} <= labels, body
    for probabilities in body["probabilities"]:
        assert set(probabilities) == labels, probabilities
        assert abs(sum(probabilities.values()) - 1) < 1e-6, probabilities
