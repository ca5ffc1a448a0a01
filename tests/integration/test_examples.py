"""Each example in examples/ end to end by its config alone, against the session's MLflow server and real serving.

Per example: its data made by its own script, `train`, `deploy` (gate, bento, blue/green serve) through the
CLI, rows POSTed to `/predict` (the task's response), their ground truth written as feedback labels, and the
monitoring job, whose report must carry the task's quality figures. Then the ownership line: a copy of the
template plus only the team's folder trains and gates with the copy's own code, and git sees nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines import platform
from pipelines.config import REPO_ROOT, PipelineConfig, load_config
from pipelines.local import stop_serving
from pipelines.monitor import run_monitor
from pipelines.registry import CHALLENGER, CHAMPION, aliases_of, connect
from pipelines.team_code import code_sha256
from services.contract import CODE_SHA256_TAG
from services.monitoring.drift import Verdict
from services.monitoring.feedback import FEEDBACK_DIR
from tests.example_runs import check_response, example_raw, holdout_rows, make_data
from tests.integration.conftest import LocalPlatform
from tests.integration.test_release_loop import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TRAFFIC_ROWS, ROWS_PER_REQUEST = 240, 10  # above monitoring's min_rows (200) and min_labeled_rows (50)
# The quality figures a monitoring report must carry per task (metrics of its MLflow run).
QUALITY = {"classification": {"classification/accuracy"}, "regression": {"regression/mae", "regression/rmse"}}


def example_config(name: str, local_platform: LocalPlatform, state: Path) -> PipelineConfig:
    """The example's committed config with its data made fresh into `state`, on the session's MLflow server,
    with a state dir and serving port of its own (so examples and the release loop never share a server)."""
    raw = example_raw(name, state)
    raw["platform"] = {"state_dir": str(state), "mlflow_port": local_platform.config.platform.mlflow_port,
                       "serving_port": platform.free_port(), "monitoring_ui_port": platform.free_port()}
    raw["tracking"] = {"uri": local_platform.config.tracking.uri}
    path = state / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def run(*args: str, config: PipelineConfig) -> str:
    path = config.platform.state_dir / "pipeline.yaml"
    code, output = cli(*args, config=path)
    assert code == 0, f"`pipelines {' '.join(args)}` exited {code}:\n{output}"
    return output


@dataclass(frozen=True)
class Served:
    request_id: str
    row: int
    truth: object
    body: dict


def send_traffic(config: PipelineConfig, rows: list[dict], truth: list) -> list[Served]:
    """POST the rows in small requests; each answered row with its ground truth."""
    url, served = f"{config.platform.serving_url}/predict", []
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        reply = httpx.post(url, json={"rows": rows[start:start + ROWS_PER_REQUEST]}, timeout=30)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        served += [Served(body["request_id"], offset, truth[start + offset], body)
                   for offset in range(len(body["predictions"]))]
    return served


def write_feedback(config: PipelineConfig, served: list[Served]) -> None:
    """Ground truth for every served row, as a labelling process writes it (services/monitoring/feedback.py)."""
    folder = config.platform.inference_log_dir / FEEDBACK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.jsonl").write_text("".join(
        json.dumps({"request_id": item.request_id, "row": item.row, "label": item.truth}) + "\n" for item in served))


@pytest.mark.parametrize("name", ["demand", "species", "team"])
def test_example_trains_gates_serves_and_is_monitored(name, local_platform, tmp_path):
    config = example_config(name, local_platform, tmp_path)
    try:
        run("train", config=config)
        output = run("deploy", config=config)
        assert "gate passed" in output, output
        client = connect(config)
        champion = aliases_of(client, config.model_name)[CHAMPION]
        served = send_traffic(config, *holdout_rows(config, client, champion, TRAFFIC_ROWS))
        assert len(served) == TRAFFIC_ROWS and {item.body["model_version"] for item in served} == {champion}
        for body in {item.request_id: item.body for item in served}.values():
            check_response(body, config.task, {item.truth for item in served})
        write_feedback(config, served)

        result = run_monitor(config)
    finally:
        stop_serving(config)
    assert result.verdict is not Verdict.NOT_ENOUGH_DATA, result.summary
    metrics = MlflowClient(config.tracking.uri).get_run(result.mlflow_run_id).data.metrics
    assert QUALITY[config.task] <= set(metrics), sorted(metrics)


def tracked_files() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def git(copy: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=copy, capture_output=True, text=True, check=True).stdout


def test_a_team_adds_only_its_folder_and_config(local_platform, tmp_path, monkeypatch):
    """A copy of the template without the team's example, then only examples/team added: it trains and
    gates with the copy's own code, and the copy's only change is that folder (its config inside it)."""
    copy, team = tmp_path / "template", "examples/team/"
    for file in tracked_files():
        if not file.startswith(team) and (REPO_ROOT / file).is_file():
            (copy / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / file, copy / file)
    git(copy, "init", "--quiet")
    git(copy, "add", "--all")
    git(copy, "-c", "user.name=template", "-c", "user.email=template@example.invalid", "commit", "--quiet",
        "-m", "the template")
    shutil.copytree(REPO_ROOT / team, copy / team, ignore=shutil.ignore_patterns("__pycache__", "*.parquet"))

    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MLFLOW_TRACKING", "PIPELINE_CONFIG", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(copy), PIPELINE_CONFIG=f"{team}pipeline.yaml",
               MLFLOW_TRACKING_URI=local_platform.config.tracking.uri, COLUMNS="200")
    make_data(copy / team, None, cwd=copy, env=env)
    for step in ("train", "validate"):
        done = subprocess.run([sys.executable, "-m", "pipelines", step], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=400)
        assert done.returncode == 0, f"`pipelines {step}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
    assert "gate passed" in done.stdout, done.stdout
    client = MlflowClient(local_platform.config.tracking.uri)
    version = client.get_model_version("acme-churn", aliases_of(client, "acme-churn")[CHALLENGER])
    assert version.tags[CODE_SHA256_TAG] == code_sha256([copy / team / "acme_models"])  # its code travelled
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local_platform.config.tracking.uri)
    requirements = mlflow.pyfunc.get_model_dependencies(f"models:/acme-churn/{version.version}")
    assert "semver==3.1.2" in Path(requirements).read_text().split()  # and the model names its own packages

    changes = git(copy, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert changes and all(line.startswith(f"?? {team}") for line in changes), changes
