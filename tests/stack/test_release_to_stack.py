"""Releases to the stack through the product's own path (`pipelines deploy --target stack`).

Everything is real but the one seam (README, "How this is tested"): where users' `PulumiStack` runs
`pulumi up` through the Automation API, `HarnessStack` runs the same program under mocks with the new
stack config and applies it to the Docker daemon with the harness. Training, the registry, bento
export, the release image build, the health gate, alias moves and audit records are the product's code.
The stack keeps its registry in Postgres (`trackingBackend: postgres`), as a production stack does; the
SQLite stack is covered by test_platform_stack.py and test_auth_stack.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker
import httpx
import mlflow
import pytest
import yaml

from pipelines.bento import build
from pipelines.config import DEFAULT_CONFIG_PATH, PipelineConfig, load_config
from pipelines.data import data_version, load_versioned, to_records
from pipelines.deploy import AUDIT_EXPERIMENT, CanaryAborted, DeployError, deploy, rollback
from pipelines.registry import CHALLENGER, CHAMPION, PASSED, VALIDATION_TAG, aliases_of, connect, resolve
from pipelines.stack import StackError, StackTarget, runtime_image
from pipelines.status import stack_serving
from pipelines.train import train
from pipelines.validate import validate
from pipelines.views import canary_summary
from tests.infra.program import run_program
from tests.load import ROW, under_load
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack
from tests.stack.harness import StackError as HarnessError

pytestmark = pytest.mark.timeout(1200)


class HarnessStack:
    """The `StackApplier` seam in tests: a new program run with the changed config, rolled out by the harness."""

    def __init__(self, platform: DockerStack) -> None:
        self.platform = platform

    def config(self) -> Mapping[str, str]:
        return dict(self.platform.declared.config)

    def secret(self, key: str) -> str | None:
        return self.platform.declared.secrets.get(key)

    def outputs(self) -> Mapping[str, str]:
        return {key: str(value) for key, value in self.platform.declared.exports.items()}

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        declared = self.platform.declared
        try:
            self.platform.apply(run_program({**declared.config, **changes}, declared.secrets))
        except HarnessError as exc:  # as PulumiStack reports a failed `pulumi up`
            raise StackError(f"applying the stack failed: {exc}") from None
        return self.outputs()


@pytest.fixture(scope="module")
def platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, {"trackingBackend": "postgres"},
                       {"postgresPassword": "release-test-pg-4b7e"}) as stack:
        yield stack


@pytest.fixture(scope="module")
def config(platform: DockerStack, tmp_path_factory: pytest.TempPathFactory) -> PipelineConfig:
    """The committed pipeline config pointed at the stack's MLflow."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"] = str(tmp_path_factory.mktemp("release-state"))
    raw["tracking"]["uri"] = platform.declared.exports["mlflow_url"]
    raw["model"]["params"]["n_estimators"] = 40
    raw["canary"] = {"min_requests": 100, "max_duration_s": 240}
    path = Path(raw["platform"]["state_dir"]) / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture(scope="module")
def target(config: PipelineConfig, platform: DockerStack) -> Iterator[StackTarget]:
    stack = HarnessStack(platform)
    yield StackTarget(config, stack, name="stack:test")
    stack.apply({"servingImage": "", "modelVersion": "none"})  # the runtime image again, so releases can go
    for image in platform.client.images.list(name=f"{platform.declared.config['namePrefix']}-serving"):
        platform.client.images.remove(image.id, force=True)


def train_and_gate(config: PipelineConfig) -> str:
    version = train(config, load_versioned(config.data)).model_version
    assert validate(config, resolve(connect(config), config.model_name, alias=CHALLENGER)).passed
    return version


def release(config: PipelineConfig, target: StackTarget) -> str:
    """`make train deploy TARGET=stack`, in process: returns the version now serving."""
    candidate = resolve(connect(config), config.model_name, version=train_and_gate(config))
    return deploy(config, build(config, candidate), target).deployment.model_version


def url(platform: DockerStack) -> str:
    return platform.declared.exports["serving_url"]


def serving_version(platform: DockerStack) -> str:
    response = httpx.post(f"{url(platform)}/predict", json={"rows": [ROW]}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


def test_first_release_builds_an_image_and_serves_it(config, target, platform):
    assert release(config, target) == "1"
    exports = platform.declared.exports
    assert exports["model_version"] == "1" and exports["serving_image"].startswith(
        f"{platform.declared.config['namePrefix']}-serving:v1-")
    assert platform.client.images.get(exports["serving_image"]).labels["mlops.model-version"] == "1"
    assert serving_version(platform) == "1"
    assert aliases_of(connect(config), config.model_name) == {"champion": "1"}
    # The inference log lands on the volume the monitoring job reads.
    logged = platform.container("monitoring").exec_run(["sh", "-c", "cat /var/lib/inference/*.jsonl"])
    assert any(json.loads(line)["model_version"] == "1" for line in logged.output.decode().splitlines())


def test_second_release_promotes_without_dropping_a_request(config, target, platform):
    with under_load(url(platform), "stack deploy v1 -> v2", "1", "2") as load:
        assert release(config, target) == "2"
    assert set(load.versions) == {"1", "2"}
    assert serving_version(platform) == "2"
    assert aliases_of(connect(config), config.model_name) == {"champion": "2", "previous": "1"}


def test_a_release_failing_its_smoke_check_is_reverted(config, target, platform):
    train_and_gate(config)  # v3 is @challenger
    # An image that claims to hold v3 but serves v2: the health gate must catch it and put v2 back.
    v2 = build(config, resolve(connect(config), config.model_name, version="2"))
    mislabeled = dataclasses.replace(v2, model=dataclasses.replace(v2.model, version="3"))
    with under_load(url(platform), "stack deploy failing its smoke check (v2 stays)", "2", "2") as load, \
            pytest.raises(DeployError, match="expected model_version 3"):
        deploy(config, mislabeled, target)
    assert set(load.versions) == {"2"}
    assert platform.declared.exports["model_version"] == "2"
    assert serving_version(platform) == "2"
    assert aliases_of(connect(config), config.model_name) == {"champion": "2", "previous": "1", "challenger": "3"}


def test_a_release_that_never_gets_ready_never_takes_traffic(config, target, platform, monkeypatch):
    # v4 is trained and gated, but its image never answers /readyz (the runtime image has no model): the
    # replacement never gets healthy, the front never routes to it, the update fails, the old container stays.
    monkeypatch.setattr("pipelines.stack.build_release_image", lambda _config, _bento, stack: runtime_image(stack))
    with under_load(url(platform), "stack deploy never ready (v2 stays)", "2", "2") as load, \
            pytest.raises(DeployError, match="not healthy"):
        release(config, target)
    assert set(load.versions) == {"2"}
    assert platform.declared.exports["model_version"] == "2"
    assert aliases_of(connect(config), config.model_name) == {"champion": "2", "previous": "1", "challenger": "4"}


def test_rollback_serves_the_previous_image_again(config, target, platform):
    with under_load(url(platform), "stack rollback v2 -> v1", "2", "1") as load:
        result = rollback(config, target)
    assert set(load.versions) == {"1", "2"}
    assert result.deployment.model_version == "1" and serving_version(platform) == "1"
    assert aliases_of(connect(config), config.model_name) == {"champion": "1", "previous": "2", "challenger": "4"}
    connect(config)
    audits = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT])
    assert set(audits["tags.target"]) == {"stack:test"}
    assert sorted(audits["tags.outcome"]) == ["failed", "failed", "serving", "serving", "serving"]


@contextlib.contextmanager
def watching(look: Callable[[], str | None]) -> Iterator[set[str]]:
    """Everything `look` answers, once a second, while the block runs."""
    seen: set[str] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.add(str(look()))
            done.wait(1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield seen
    finally:
        done.set()
        poller.join()


def eval_rows(config: PipelineConfig) -> list[dict]:
    """Varied valid rows (the champion's eval set), so the two versions' predictions can be compared."""
    champion = resolve(connect(config), config.model_name, alias=CHAMPION)
    return to_records(champion.holdout[champion.data.features].head(300))


def test_a_sound_canary_is_promoted_without_dropping_a_request(config, target, platform):
    candidate = resolve(connect(config), config.model_name, version=train_and_gate(config))  # v5, like v1
    with under_load(url(platform), "stack canary v1 -> v5 (promoted)", "1", "5", eval_rows(config)) as load:
        result = deploy(config, build(config, candidate), target, canary_percent=25)
    print(f"canary analysis: {canary_summary(result.canary)}")
    assert result.canary.promote and result.canary.figures.requests["candidate"] >= config.canary.min_requests
    assert set(load.versions) == {"1", "5"}
    assert serving_version(platform) == "5" and platform.declared.exports["canary_version"] == "none"
    assert aliases_of(connect(config), config.model_name) == {"champion": "5", "previous": "1"}


def test_a_canary_whose_predictions_are_far_off_is_aborted(config, target, platform):
    # Trained on shuffled labels: no gate would pass it, so the test marks it passed by hand; the canary
    # analysis is what must stop it (its probabilities bunch around the base rate; the champion's spread).
    data = load_versioned(config.data)
    labels = data.frame[config.data.target].sample(frac=1.0, random_state=3).to_numpy()
    shuffled = data.frame.assign(**{config.data.target: labels})
    version = train(config, dataclasses.replace(data, frame=shuffled, version=data_version(shuffled))).model_version
    connect(config).set_model_version_tag(config.model_name, version, VALIDATION_TAG, PASSED)
    far_off = build(config, resolve(connect(config), config.model_name, version=version))
    prefix = platform.declared.config["namePrefix"]
    with under_load(url(platform), "stack canary v5 -> v6 (aborted)", "5", "6", eval_rows(config)) as load, \
            watching(lambda: stack_serving().get(f"stack {prefix}")) as status, \
            pytest.raises(CanaryAborted, match="predictions differ from the champion's"):
        deploy(config, far_off, target, canary_percent=25)
    assert "v5, canary v6 (25% of requests)" in status  # what `make status` showed meanwhile
    assert load.versions["6"] > 0 and serving_version(platform) == "5"  # it served its share, then went
    assert platform.declared.exports["canary_version"] == "none"
    assert not platform.client.containers.list(filters={"name": f"{prefix}-serving-canary"})
    assert aliases_of(connect(config), config.model_name) == {"champion": "5", "previous": "1", "challenger": "6"}
    connect(config)
    audit = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], filter_string="tags.model_version = '6'")
    assert audit.iloc[0]["tags.outcome"] == "canary aborted"
    assert float(audit.iloc[0]["tags.canary_prediction_distance"]) > config.canary.max_prediction_distance
