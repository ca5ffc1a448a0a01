"""The platform as declared by infra/, running on Docker: MLflow, serving without a model, monitoring."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.audit import AuditTrail
from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.lifecycle import collect
from pipelines.retire import retire
from pipelines.volume_files import stack_trees
from services.contract import CONFIG_ARTIFACT, REPORT_MODEL_TAG, REPORT_VERSION_TAG
from services.monitoring.records import JUDGED_TAG, WINDOW_END_TAG
from tests.infra.program import CONTAINER, IMAGE
from tests.stack.harness import DockerStack
from tests.stack.volume_seed import names, seed

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


@pytest.mark.parametrize("alias", ["mlflow", "serving", "front", "monitoring", "monitoring-ui", "prometheus"])
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


def log_line(model: str, version: str, at: datetime) -> str:
    return json.dumps({"request_id": "gc", "row": 0, "timestamp": at.isoformat(), "model_name": model,
                       "model_version": version, "features": {"age": 30}, "prediction": 1}) + "\n"


def test_gc_on_the_stack_deletes_what_is_past_retention_from_its_volumes(platform, tmp_path):
    """Issue 22: a version retired on the stack, then gc against it: judged old log files, old report files and
    Evidently snapshots go from the volumes (what is younger, or not judged yet, stays) and the chain verifies."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"], raw["tracking"]["uri"] = str(tmp_path), platform.declared.exports["mlflow_url"]
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    config, prefix = load_config(tmp_path / "pipeline.yaml"), platform.declared.config["namePrefix"]
    model, client = config.model_name, MlflowClient(tracking_uri=raw["tracking"]["uri"])
    run = client.create_run(client.create_experiment(f"{model}-gc-test"))
    client.log_text(run.info.run_id, config.model_dump_json(), CONFIG_ARTIFACT)  # what a training run records
    client.create_registered_model(model)
    version = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id).version
    assert retire(config, version, "stack test: nothing serves it").audit_url

    judged_until = datetime.now(UTC) - timedelta(days=60)  # monitoring judged v1 up to here, 60 days ago
    found = client.get_experiment_by_name(config.monitoring.experiment)  # the job may have made it
    experiment = found.experiment_id if found else client.create_experiment(config.monitoring.experiment)
    judged = client.create_run(experiment, tags={
        REPORT_MODEL_TAG: model, REPORT_VERSION_TAG: version, JUDGED_TAG: "true",
        WINDOW_END_TAG: judged_until.isoformat()})
    client.set_terminated(judged.info.run_id)
    old, now, day = judged_until.timestamp(), datetime.now(UTC).timestamp(), f"{judged_until:%Y%m%d}"
    young_report = f"{model}-v{version}-{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    with stack_trees(prefix, model) as trees:
        seed(trees.logs, {f"{day}-a-1.jsonl": (log_line(model, version, judged_until - timedelta(hours=1)), old),
                          f"{day}-b-1.jsonl": (log_line(model, version, judged_until + timedelta(seconds=1)), old)})
        seed(trees.reports, {f"{model}-v{version}-{day}T000000.html": ("old", old),
                             young_report: ("new", now)})
        seed(trees.workspace, {"p-gc/metadata.json": (json.dumps({"name": model}), now),
                               "p-gc/snapshots/old.json": ("{}", old), "p-gc/snapshots/new.json": ("{}", now)})

    planned = collect(config, dry_run=True, stack_prefix=prefix)
    done = collect(config, dry_run=False, stack_prefix=prefix)

    gone = {kind: swept.removed for kind, swept in done.swept.items()}
    assert gone == {kind: swept.removed for kind, swept in planned.swept.items()} == {
        "inference logs": [f"{day}-a-1.jsonl"], "monitoring reports": [f"{model}-v{version}-{day}T000000.html"],
        "Evidently snapshots": ["p-gc/old"]}
    with stack_trees(prefix, model) as trees:
        assert f"{day}-a-1.jsonl" not in names(trees.logs) and f"{day}-b-1.jsonl" in names(trees.logs)
        assert names(trees.reports, f"{model}-*.html") == {young_report}
        assert names(trees.workspace, "p-gc/**/*") == {"p-gc/metadata.json", "p-gc/snapshots/new.json"}
    before, after = done.before["inference logs"], done.after["inference logs"]
    assert before.bytes - after.bytes == len(log_line(model, version, judged_until - timedelta(hours=1)))
    trail = AuditTrail.of(config)
    assert [r["action"] for r in trail.timeline()] == ["retire"] and trail.verify().intact
