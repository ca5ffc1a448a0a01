"""The platform as declared by infra/, running on Docker: MLflow, serving without a model, monitoring."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.demo_data import make_loans
from tests.infra.program import CONTAINER, IMAGE, REPO_ROOT, DeclaredStack, run_program
from tests.stack.harness import DockerStack

MIB = 1024 * 1024


def run_on_network(platform: DockerStack, script: str) -> str:
    """Run Python in a one-off container on the platform network (the tracking image has Python)."""
    (tracking_image,) = [i.plain["imageName"] for i in platform.declared.of_type(IMAGE) if "tracking" in i.name]
    network = platform.declared.container("mlflow").plain["networksAdvanced"][0]["name"]
    output = platform.client.containers.run(
        tracking_image, entrypoint=["python", "-c", script], network=network, user="10001:10001", remove=True,
        labels={"mlops-platform.stack": network.removesuffix("-net")},
    )
    return output.decode()


def test_mlflow_answers_on_its_published_loopback_url(platform):
    url = platform.declared.exports["mlflow_url"]
    assert url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{url}/health", timeout=10)
    assert response.status_code == 200 and response.text.strip() == "OK"


def test_services_answer_by_their_aliases_inside_the_network(platform):
    script = (
        "import urllib.request as r\n"
        "print(r.urlopen('http://mlflow:5000/api/2.0/mlflow/experiments/search?max_results=1', timeout=10).status)\n"
        "print(r.urlopen('http://serving:3000/livez', timeout=10).status)\n"
        "print(r.urlopen('http://monitoring-ui:8000/api/version', timeout=10).status)\n"
    )
    assert run_on_network(platform, script).split() == ["200", "200", "200"]


def test_a_run_logged_from_the_host_survives_replacing_the_mlflow_container(platform):
    client = MlflowClient(tracking_uri=platform.declared.exports["mlflow_url"])
    experiment_id = client.create_experiment("stack-test")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "volume", "kept")
    client.log_metric(run.info.run_id, "accuracy", 0.91)
    client.log_text(run.info.run_id, "served through --serve-artifacts", "notes/hello.txt")
    client.set_terminated(run.info.run_id)

    platform.replace(platform.declared.container("mlflow").name)

    again = client.get_run(run.info.run_id)
    assert again.data.params == {"volume": "kept"} and again.data.metrics == {"accuracy": 0.91}
    with tempfile.TemporaryDirectory() as scratch:
        path = client.download_artifacts(run.info.run_id, "notes/hello.txt", scratch)
        assert Path(path).read_text() == "served through --serve-artifacts"


def test_serving_without_a_model_says_no_model_is_deployed(platform):
    url = platform.declared.exports["serving_url"]
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
    response = httpx.post(f"{url}/predict", json={"rows": [{"age": 41}]}, timeout=10)
    assert response.status_code == 503
    assert "no model deployed" in response.json()["error"]
    assert platform.declared.exports["model_version"] == "none"


def test_monitoring_job_and_ui_are_healthy(platform):
    for alias in ("monitoring", "monitoring-ui"):
        container = platform.container(alias)
        container.reload()
        assert container.attrs["State"]["Health"]["Status"] == "healthy", alias
    response = httpx.get(f"{platform.declared.exports['monitoring_ui_url']}/api/version", timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize("alias", ["mlflow", "serving", "monitoring", "monitoring-ui"])
def test_containers_run_as_declared(platform, alias):
    declared = platform.declared.container(alias).plain
    container = platform.container(alias)
    container.reload()
    host = container.attrs["HostConfig"]
    assert container.exec_run(["id", "-u"]).output.decode().strip() == declared["user"].split(":")[0] != "0"
    assert host["Memory"] == declared["memory"] * MIB
    assert host["RestartPolicy"]["Name"] == declared["restart"] == "unless-stopped"
    bound = [b for bindings in container.attrs["NetworkSettings"]["Ports"].values() if bindings for b in bindings]
    assert all(binding["HostIp"] == "127.0.0.1" for binding in bound)
    assert len(bound) == len(declared.get("ports", []))
    assert all(c.plain["name"].startswith("mlopst-") for c in platform.declared.of_type(CONTAINER))


@contextlib.contextmanager
def released(platform: DockerStack, bento_dir: Path, model_version: str) -> Iterator[DeclaredStack]:
    """Build a release image from an extracted bento with release.Dockerfile, roll serving over to it
    through a new program run, and roll back to the previous declaration afterwards."""
    original = platform.declared
    prefix = original.config["namePrefix"]
    tag = f"{prefix}-serving:v{model_version}"
    platform.client.images.build(
        path=str(bento_dir), dockerfile=str(REPO_ROOT / "services" / "serving" / "release.Dockerfile"), tag=tag,
        buildargs={"RUNTIME_IMAGE": f"{prefix}-serving-runtime:latest", "MODEL_VERSION": model_version}, rm=True,
    )
    changed = run_program({**original.config, "servingImage": tag, "modelVersion": model_version})
    try:
        platform.roll_out(changed, "serving")
        yield changed
    finally:
        platform.roll_out(original, "serving")
        platform.client.images.remove(tag, noprune=True)


def test_a_release_image_serves_its_bento_and_rolls_back(platform, tmp_path):
    (tmp_path / "service.py").write_text(ECHO_SERVICE)
    built = subprocess.run(
        [sys.executable, "-c", "import bentoml; print(bentoml.build('service:Echo', name='echo', build_ctx='.').path)"],
        cwd=tmp_path, env={**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"},
        capture_output=True, text=True, timeout=300, check=True,
    )
    with released(platform, Path(built.stdout.strip().splitlines()[-1]), "echo") as changed:
        assert changed.exports["serving_image"].endswith(":vecho") and changed.exports["model_version"] == "echo"
        url = changed.exports["serving_url"]
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        response = httpx.post(f"{url}/predict", json={"rows": [{"age": 41, "region": "east"}]}, timeout=10)
        assert response.json() == {"predictions": [2], "model_version": "stack-test"}
        assert platform.client.images.get(changed.exports["serving_image"]).labels["mlops.model-version"] == "echo"
    # Rolled back: the runtime image again, honestly without a model.
    assert httpx.get(f"{platform.declared.exports['serving_url']}/readyz", timeout=10).status_code == 503


def test_a_pipeline_release_serves_on_the_stack_and_logs_inferences(platform, tmp_path):
    """The release loop against the stack's MLflow: train, build the bento, export it, roll it out."""
    pipeline_config = load_config()
    config_file = tmp_path / "pipeline.yaml"
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"] = str(tmp_path / "state")
    config_file.write_text(yaml.safe_dump(raw))
    mlflow_url = platform.declared.exports["mlflow_url"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url, "BENTOML_DO_NOT_TRACK": "true"}
    for step in ("train", "build"):
        done = subprocess.run([sys.executable, "-m", "pipelines", step, "--config", str(config_file)], env=env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"pipelines {step}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    version = MlflowClient(mlflow_url).get_model_version_by_alias(pipeline_config.model_name, "challenger").version
    (bento,) = (tmp_path / "state" / "bentoml" / "bentos" / pipeline_config.model_name).glob(f"v{version}-*")
    archive, extracted = tmp_path / "release.bento", tmp_path / "release"
    # `bentoml export` carries the bento's models; the store's bento directory alone does not.
    subprocess.run([sys.executable, "-c", f"import bentoml; bentoml.export_bento('{pipeline_config.model_name}:"
                    f"{bento.name}', '{archive}')"], env={**env, "BENTOML_HOME": str(tmp_path / "state" / "bentoml")},
                   capture_output=True, text=True, timeout=300, check=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(extracted, filter="data")

    with released(platform, extracted, version) as changed:
        rows = make_loans(rows=3, seed=1)[pipeline_config.data.features].to_dict(orient="records")
        response = httpx.post(f"{changed.exports['serving_url']}/predict", json={"rows": rows}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["predictions"]) == 3 and body["model_version"] == version
        # Serving wrote the inference log to the shared volume, where the monitoring job reads it.
        logged = platform.container("monitoring").exec_run(
            ["sh", "-c", "cat /var/lib/inference/*.jsonl"]).output.decode().splitlines()
        assert [json.loads(line)["request_id"] for line in logged] == [body["request_id"]] * 3


ECHO_SERVICE = '''
import bentoml


@bentoml.service
class Echo:
    @bentoml.api
    def predict(self, rows: list[dict]) -> dict:
        return {"predictions": [len(row) for row in rows], "model_version": "stack-test"}
'''
