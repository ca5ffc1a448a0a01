"""Two models on one Docker stack, released independently under load (issue 21, "Tests and load"): the demo's
classifier (the stack's default model, `/predict`) and models/bike-rentals (a regression, `/models/bike-rentals/`).

One test function, for CI's time: release A (bike-rentals, beside the default model) while B (loan-default, at
`/predict`) serves, roll A back, canary A;
4 clients on each model the whole time, every answer checked (tests/load.py): zero failed requests on either, and
B's container and the version it answers never change. Meanwhile each model's own monitoring job judges its own
traffic with the threshold of its own pipeline config (issue 21, "Monitoring"), and A's servers run the workers
its entry sets. The seam is test_release_to_stack.py's HarnessStack.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import docker
import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.bento import build
from pipelines.config import DEFAULT_CONFIG_PATH, REPO_ROOT, PipelineConfig, load_config
from pipelines.deploy import deploy, rollback
from pipelines.registry import CHAMPION, PREVIOUS, aliases_of, connect, resolve
from pipelines.stack import StackTarget
from pipelines.status import stack_serving
from services.contract import MONITORING_EXPERIMENT
from tests.example_runs import holdout_rows
from tests.load import under_load
from tests.stack.conftest import running_stack
from tests.stack.test_release_to_stack import HarnessStack, release, train_and_gate

pytestmark = pytest.mark.timeout(1500)

# A's monitoring: its own threshold, and a run a minute (the stack's default model's is conftest's policy file).
BIKES_MONITORING = {"interval_minutes": 1, "drift_share_threshold": 0.45, "min_rows": 50}
THRESHOLDS = {"loan-default": "0.3", "bike-rentals": "0.45"}  # the policy's default, and A's own


def declared_models(tmp_path: Path) -> str:
    policy = tmp_path / "bike-rentals-monitoring.yaml"
    policy.write_text(yaml.safe_dump({"model_name": "bike-rentals", "monitoring": BIKES_MONITORING}))
    return json.dumps([{"name": "loan-default"}, {"name": "bike-rentals", "servingMemoryMb": 768,
                                                  "servingWorkers": 1, "pipelineConfig": str(policy)}])


def judged_thresholds(client: MlflowClient, models: list[str], timeout_s: float = 240) -> dict[str, str]:
    """Per model, the drift threshold its newest judged window was judged with (once each model has one)."""
    deadline, found = time.monotonic() + timeout_s, {}
    while len(found) < len(models) and time.monotonic() < deadline:
        experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
        for model in models if experiment else []:
            runs = client.search_runs([experiment.experiment_id], f"tags.model_name = '{model}' and "
                                      "tags.judged = 'true'", max_results=1)
            if runs:
                found[model] = runs[0].data.params["drift_share_threshold"]
        time.sleep(0 if len(found) == len(models) else 10)
    return found


def stack_config(raw: dict, stack, state_dir: Path) -> PipelineConfig:
    raw["platform"] = {**raw.get("platform", {}), "state_dir": str(state_dir)}
    raw["tracking"] = {**raw.get("tracking", {}), "uri": stack.declared.exports["mlflow_url"]}
    raw["model"]["params"]["n_estimators"] = 30
    path = state_dir / f"{raw['model_name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_two_models_are_released_independently_under_load(docker_client: docker.DockerClient, base_image: str,
                                                         tmp_path: Path):
    with running_stack(docker_client, base_image, {"models": declared_models(tmp_path)},
                       {"smokeToken": "models-test-smoke-5e2a"}) as stack:
        loans = stack_config(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()), stack, tmp_path)
        bikes_raw = yaml.safe_load((REPO_ROOT / "models" / "bike-rentals" / "pipeline.yaml").read_text())
        bikes_raw["canary"] = {"min_requests": 100, "max_duration_s": 240}
        bikes = stack_config(bikes_raw, stack, tmp_path)
        applier = HarnessStack(stack)
        a, b = StackTarget(bikes, applier, name="stack:test"), StackTarget(loans, applier, name="stack:test")
        serving_url = stack.declared.exports["serving_url"]
        a_url = f"{serving_url}/models/bike-rentals"  # A: a model beside the default one, at its own route
        try:
            b1, a1 = release(loans, b), release(bikes, a)
            b_container = stack.container("serving").id
            a_rows, _ = holdout_rows(bikes, connect(bikes), a1, 50)
            a2 = train_and_gate(bikes)
            with under_load(serving_url, "loan-default (/predict) while bike-rentals releases", b1, b1) as b_load:
                with under_load(a_url, f"bike-rentals v{a1} -> v{a2} beside loan-default", a1, a2, a_rows) as load:
                    deploy(bikes, build(bikes, resolve(connect(bikes), bikes.model_name, version=a2)), a)
                assert set(load.versions) == {a1, a2}
                with under_load(a_url, f"bike-rentals rollback v{a2} -> v{a1}", a2, a1, a_rows) as load:
                    rollback(bikes, a)
                assert set(load.versions) == {a2, a1}
                a3 = resolve(connect(bikes), bikes.model_name, version=train_and_gate(bikes))
                with under_load(a_url, f"bike-rentals canary v{a1} -> v{a3.version}", a1, a3.version,
                                a_rows) as load:
                    result = deploy(bikes, build(bikes, a3), a, canary_percent=25)
                assert result.canary.promote and set(load.versions) == {a1, a3.version}
            assert set(b_load.versions) == {b1}  # B answered with its one version throughout
            assert stack.container("serving").id == b_container
            assert aliases_of(connect(bikes), bikes.model_name) == {CHAMPION: a3.version, PREVIOUS: a1}
            assert aliases_of(connect(loans), loans.model_name) == {CHAMPION: b1}
            exports = stack.declared.exports
            assert (exports["model_version"], exports["model_version.bike-rentals"]) == (b1, a3.version)
            status = stack_serving()[f"stack {stack.declared.config['namePrefix']}"]
            assert status == f"bike-rentals v{a3.version}; loan-default v{b1}", status
            workers = [p for p in stack.container("release-bike-rentals").top()["Processes"]
                       if "_bentoml_impl.worker" in p[-1]]
            assert len(workers) == 1, workers  # its entry's servingWorkers, not its bento's cpu_count
            assert judged_thresholds(connect(loans), list(THRESHOLDS)) == THRESHOLDS
        finally:
            for image in docker_client.images.list(name=f"{stack.declared.config['namePrefix']}-serving"):
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(image.id, force=True)
