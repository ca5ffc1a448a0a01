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
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx
import mlflow
import pytest
import yaml

from pipelines.bento import build
from pipelines.canary import CANDIDATE as CANDIDATE_ROLE
from pipelines.canary import CHAMPION as CHAMPION_ROLE
from pipelines.canary_prometheus import LOOKBACK_S, P99_QUERY, PrometheusAnswers
from pipelines.config import DEFAULT_CONFIG_PATH, PipelineConfig, load_config
from pipelines.data import data_version, load_versioned, to_records
from pipelines.deploy import CanaryAborted, DeployError, deploy, rollback
from pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    PASSED,
    PREVIOUS,
    VALIDATION_TAG,
    aliases_of,
    connect,
    resolve,
)
from pipelines.release_pointer import serving_image_tag
from pipelines.stack import StackError, StackTarget, runtime_image
from pipelines.status import stack_serving
from pipelines.train import train
from pipelines.validate import validate
from pipelines.views import canary_summary
from services.contract import AUDIT_EXPERIMENT, CANARY_ROUTE_HEADER, CANDIDATE_ROUTE_VALUE, RELEASE_VERSION_LABEL
from tests.example_runs import check_response, example_raw, holdout_rows
from tests.infra.program import run_program
from tests.load import ROW, under_load
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack
from tests.stack.harness import StackError as HarnessError

pytestmark = pytest.mark.timeout(1200)


class HarnessStack:
    """The `StackApplier` seam in tests: a new program run with the changed config, rolled out by the harness.

    A `fresh_checkout` one reads the stack file a new clone has: none of the release keys earlier applies
    set (CI's runner starts from one each time), while the stack itself still serves what they deployed.
    """

    RELEASE_KEYS = frozenset({"servingImage", "modelVersion", "canaryImage", "canaryVersion", "canaryPercent",
                              "candidateImage", "candidateVersion"})

    def __init__(self, platform: DockerStack, fresh_checkout: bool = False) -> None:
        self.platform = platform
        self.fresh_checkout = fresh_checkout

    def config(self) -> Mapping[str, str]:
        config = dict(self.platform.declared.config)
        return {k: v for k, v in config.items() if k not in self.RELEASE_KEYS} if self.fresh_checkout else config

    def secret(self, key: str) -> str | None:
        return self.platform.declared.secrets.get(key)

    def outputs(self) -> Mapping[str, str]:
        return {key: str(value) for key, value in self.platform.declared.exports.items()}

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        try:
            self.platform.apply(run_program({**self.config(), **changes}, self.platform.declared.secrets))
        except HarnessError as exc:  # as PulumiStack reports a failed `pulumi up`
            raise StackError(f"applying the stack failed: {exc}") from None
        return self.outputs()


@pytest.fixture(scope="module")
def platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    # The smoke token: the front routes a release's checks to its candidate or canary only with it.
    with running_stack(docker_client, base_image, {"trackingBackend": "postgres"},
                       {"postgresPassword": "release-test-pg-4b7e", "smokeToken": "release-test-smoke-8c3f"}) as stack:
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


@pytest.fixture
def fresh_checkout(config: PipelineConfig, platform: DockerStack, target: StackTarget) -> StackTarget:
    """A release from another clone: its stack file has never seen the releases made so far."""
    return StackTarget(config, HarnessStack(platform, fresh_checkout=True), name=target.name)


# Named scenarios: each test asks for the state it needs, so any selection of tests passes; a scenario
# already there (made by an earlier test or fixture) is reused, not made again. They answer the state as
# it is when the test starts (earlier tests move the aliases).

@pytest.fixture
def champion(config: PipelineConfig, target: StackTarget) -> str:
    """A model version released to the stack as @champion."""
    serving = aliases_of(connect(config), config.model_name).get(CHAMPION)
    return serving or release(config, target)


@pytest.fixture
def champion_and_previous(config: PipelineConfig, target: StackTarget, champion: str) -> tuple[str, str]:
    """A @champion serving on the stack and a @previous released before it."""
    aliases = aliases_of(connect(config), config.model_name)
    if PREVIOUS not in aliases:
        release(config, target)
        aliases = aliases_of(connect(config), config.model_name)
    return aliases[CHAMPION], aliases[PREVIOUS]


def train_and_gate(config: PipelineConfig) -> str:
    version = train(config, load_versioned(config)).model_version
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


def candidates(platform: DockerStack) -> list:
    return platform.client.containers.list(all=True, filters={"name": f"{platform.declared.config['namePrefix']}"
                                                                       "-serving-candidate"})


def test_first_release_builds_an_image_and_serves_it(config, platform, champion):
    exports = platform.declared.exports
    assert exports["model_version"] == champion and exports["serving_image"].startswith(
        f"{platform.declared.config['namePrefix']}-serving:v{champion}-")
    assert platform.client.images.get(exports["serving_image"]).labels[RELEASE_VERSION_LABEL] == champion
    assert serving_version(platform) == champion
    assert aliases_of(connect(config), config.model_name)[CHAMPION] == champion
    # The release image carries the version's model card, through the front.
    card = httpx.get(f"{url(platform)}/card", timeout=30)
    assert card.status_code == 200 and card.text.startswith(f"# Model card: {config.model_name} v{champion}")
    # What serves is in the registry (a fresh checkout finds it there), and the candidate is gone.
    version = connect(config).get_model_version(config.model_name, champion)
    assert version.tags[serving_image_tag(platform.declared.config)] == exports["serving_image"]
    assert candidates(platform) == []
    # The inference log lands on the volume the monitoring job reads.
    logged = platform.container("monitoring").exec_run(["sh", "-c", "cat /var/lib/inference/*.jsonl"])
    assert any(json.loads(line)["model_version"] == champion for line in logged.output.decode().splitlines())


def test_second_release_promotes_without_dropping_a_request(config, target, platform, champion):
    old, new = champion, train_and_gate(config)
    with under_load(url(platform), f"stack deploy v{old} -> v{new}", old, new) as load:
        deploy(config, build(config, resolve(connect(config), config.model_name, version=new)), target)
    assert set(load.versions) == {old, new}
    assert serving_version(platform) == new
    assert aliases_of(connect(config), config.model_name) == {CHAMPION: new, PREVIOUS: old}


def test_a_candidate_failing_its_smoke_check_never_serves_a_user(config, fresh_checkout, platform,
                                                                  champion_and_previous):
    """Issue 18, items 9 and 10: from a fresh checkout, a candidate that is ready but wrong is checked beside
    the champion and removed; the champion's container serves throughout and after, and no user saw the candidate,
    not even one asking for it with the front's routing header (only the release's checks carry the smoke token)."""
    serving, previous = champion_and_previous
    challenger = train_and_gate(config)
    # An image that claims to hold the challenger but serves @previous: ready, yet the smoke check must stop it.
    old = build(config, resolve(connect(config), config.model_name, version=previous))
    mislabeled = dataclasses.replace(old, model=dataclasses.replace(old.model, version=challenger))
    champion_container = platform.container("serving").id
    with under_load(url(platform), f"stack deploy failing its smoke check (v{serving} stays)", serving, serving,
                    headers={CANARY_ROUTE_HEADER: CANDIDATE_ROUTE_VALUE}) as load, \
            pytest.raises(DeployError, match=f"expected model_version {challenger}"):
        deploy(config, mislabeled, fresh_checkout)
    assert set(load.versions) == {serving}  # not one user request reached the candidate (it serves v{previous})
    assert platform.container("serving").id == champion_container and candidates(platform) == []
    assert platform.declared.exports["model_version"] == serving and serving_version(platform) == serving
    assert aliases_of(connect(config), config.model_name) == {CHAMPION: serving, PREVIOUS: previous,
                                                              CHALLENGER: challenger}


def test_a_release_that_never_gets_ready_never_takes_traffic(config, target, platform, monkeypatch, champion):
    # It is trained and gated, but its image never answers /readyz (the runtime image has no model): the
    # candidate never gets healthy, the update fails, the champion's container serves on.
    monkeypatch.setattr("pipelines.stack.build_release_image", lambda _config, _bento, stack: runtime_image(stack))
    before = aliases_of(connect(config), config.model_name)
    with under_load(url(platform), f"stack deploy never ready (v{champion} stays)", champion, champion) as load, \
            pytest.raises(DeployError, match="not healthy"):
        release(config, target)
    assert set(load.versions) == {champion}
    assert platform.declared.exports["model_version"] == champion and candidates(platform) == []
    challenger = aliases_of(connect(config), config.model_name)[CHALLENGER]
    assert aliases_of(connect(config), config.model_name) == {**before, CHALLENGER: challenger}


def test_rollback_serves_the_previous_image_again(config, fresh_checkout, platform, champion_and_previous):
    serving, previous = champion_and_previous
    with under_load(url(platform), f"stack rollback v{serving} -> v{previous}", serving, previous) as load:
        result = rollback(config, fresh_checkout)
    assert set(load.versions) == {serving, previous}
    assert result.deployment.model_version == previous and serving_version(platform) == previous
    aliases = aliases_of(connect(config), config.model_name)
    assert (aliases[CHAMPION], aliases[PREVIOUS]) == (previous, serving)
    connect(config)
    audits = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], order_by=["start_time DESC"])
    audits = audits[audits["tags.action"].isin(["deploy", "rollback"])]  # the releases' records, not train's
    assert set(audits["tags.target"]) == {"stack:test"}
    latest = audits.iloc[0]
    assert (latest["tags.action"], latest["tags.outcome"], latest["tags.model_version"]) == (
        "rollback", "serving", previous)


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


def prometheus_vector(platform: DockerStack, promql: str) -> list[dict]:
    response = httpx.get(f"{platform.declared.exports['prometheus_url']}/api/v1/query", params={"query": promql},
                         timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


def test_prometheus_records_the_request_rate_per_model_and_version(config, platform, champion):
    """A bounded load on /predict, then the stack's Prometheus answers the recorded per-model rate (after its
    scrapes and a rule evaluation), labelled with the model and the version that answered."""
    version = serving_version(platform)
    # As in a canary, whose candidate answers the release's routed checks first: the server's latency series
    # exist in Prometheus before the load (a series first scraped with the load in it shows no increase), and
    # the reader's lookback (LOOKBACK_S) holds none of the requests before it.
    histogram = (f'bentoml_service_request_duration_seconds_count{{endpoint="/predict"}} * on (instance) '
                 f'group_left serving_model_info{{model_version="{version}"}}')
    deadline = time.monotonic() + 60
    while not prometheus_vector(platform, histogram) and time.monotonic() < deadline:
        time.sleep(2)
    time.sleep(LOOKBACK_S)
    since = datetime.now(UTC)
    with httpx.Client(timeout=30) as client:
        for _ in range(120):
            assert client.post(f"{url(platform)}/predict", json={"rows": [ROW]}).status_code == 200
    # The canary's reader sees the load's requests of that version once scraped (it polls, as `watch` does), and
    # none of a version that does not serve; increase() extrapolates to the range's ends, so it may overshoot.
    reader = PrometheusAnswers(platform.declared.exports["prometheus_url"], config.model_name,
                               {CHAMPION_ROLE: version, CANDIDATE_ROLE: "none"}, since)
    deadline = time.monotonic() + 120
    answers, skipped = reader()
    # The p99 comes from the latency histogram, which may be scraped a beat after the request counter.
    while (answers.requests[CHAMPION_ROLE] < 110 or answers.p99_ms[CHAMPION_ROLE] <= 0) and time.monotonic() < deadline:
        time.sleep(3)
        answers, skipped = reader()
    print(f"canary reader over the load: {answers}")
    # increase() extrapolates to the range's ends: on a loaded machine it overshot 120 requests to 180.
    assert 110 <= answers.requests[CHAMPION_ROLE] <= 240 and answers.error_rates[CHAMPION_ROLE] == 0.0
    timed = prometheus_vector(platform, P99_QUERY.format(seconds=60, model=config.model_name))
    assert answers.p99_ms[CHAMPION_ROLE] > 0, f"p99 over 60 s answered {timed}"
    assert answers.requests[CANDIDATE_ROLE] == 0 and skipped == 0
    # The recorded per-model rate, after a rule evaluation (15 s), labelled with the model and the version.
    rate = f'model_version:requests:rate1m{{model_name="{config.model_name}", model_version="{version}"}}'
    found = [r for r in prometheus_vector(platform, rate) if float(r["value"][1]) > 0]
    while not found and time.monotonic() < deadline + 30:
        time.sleep(3)
        found = [r for r in prometheus_vector(platform, rate) if float(r["value"][1]) > 0]
    assert [r["metric"] for r in found] == [{"__name__": "model_version:requests:rate1m",
                                             "model_name": config.model_name, "model_version": version}]
    # The front is scraped too, through HAProxy's own exporter.
    assert [r["value"][1] for r in prometheus_vector(platform, 'up{job="front"}')] == ["1"]


def eval_rows(config: PipelineConfig) -> list[dict]:
    """Varied valid rows (the champion's eval set), so the two versions' predictions can be compared."""
    champion = resolve(connect(config), config.model_name, alias=CHAMPION)
    return to_records(champion.holdout[champion.data.features].head(300))


def test_a_sound_canary_is_promoted_without_dropping_a_request(config, target, platform, champion):
    serving = aliases_of(connect(config), config.model_name)[CHAMPION]
    candidate = resolve(connect(config), config.model_name, version=train_and_gate(config))  # like the champion
    new = candidate.version
    with under_load(url(platform), f"stack canary v{serving} -> v{new} (promoted)", serving, new,
                    eval_rows(config)) as load:
        result = deploy(config, build(config, candidate), target, canary_percent=25)
    print(f"canary analysis: {canary_summary(result.canary)}")
    assert result.canary.promote and result.canary.figures.requests["candidate"] >= config.canary.min_requests
    assert set(load.versions) == {serving, new}
    assert serving_version(platform) == new and platform.declared.exports["canary_version"] == "none"
    assert aliases_of(connect(config), config.model_name) == {CHAMPION: new, PREVIOUS: serving}


def test_a_canary_whose_predictions_are_far_off_is_aborted(config, target, platform, champion):
    # Trained on shuffled labels: no gate would pass it, so the test marks it passed by hand; the canary
    # analysis is what must stop it (its probabilities bunch around the base rate; the champion's spread).
    data = load_versioned(config)
    labels = data.frame[config.data.target].sample(frac=1.0, random_state=3).to_numpy()
    shuffled = data.frame.assign(**{config.data.target: labels})
    version = train(config, dataclasses.replace(data, frame=shuffled, version=data_version(shuffled))).model_version
    connect(config).set_model_version_tag(config.model_name, version, VALIDATION_TAG, PASSED)
    far_off = build(config, resolve(connect(config), config.model_name, version=version))
    before = aliases_of(connect(config), config.model_name)
    serving, prefix = before[CHAMPION], platform.declared.config["namePrefix"]
    with under_load(url(platform), f"stack canary v{serving} -> v{version} (aborted)", serving, version,
                    eval_rows(config)) as load, \
            watching(lambda: stack_serving().get(f"stack {prefix}")) as status, \
            pytest.raises(CanaryAborted, match="predictions differ from the champion's"):
        deploy(config, far_off, target, canary_percent=25)
    # What `make status` showed meanwhile (per model on the stack).
    assert f"{config.model_name} v{serving}, canary v{version} (25% of requests)" in status
    assert load.versions[version] > 0 and serving_version(platform) == serving  # it served its share, then went
    assert platform.declared.exports["canary_version"] == "none"
    assert not platform.client.containers.list(filters={"name": f"{prefix}-serving-canary"})
    assert aliases_of(connect(config), config.model_name) == {**before, CHALLENGER: version}
    connect(config)
    audit = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], filter_string=f"tags.model_version = '{version}'")
    assert audit.iloc[0]["tags.outcome"] == "canary aborted"
    assert float(audit.iloc[0]["tags.canary_prediction_distance"]) > config.canary.max_prediction_distance


# Last in the module: each example's release replaces the demo model on the stack's one serving slot.
@pytest.mark.parametrize("name", ["demand", "species", "team"])
def test_an_example_serves_its_task_through_the_stack_images(name, platform, target, tmp_path):
    """The regression, the LightGBM and the team's example, released as the demo is (train, gate, release image
    on the runtime image, candidate check, promotion), answer with their task's response where users reach it;
    the team's own package (model.requirements, which the runtime lacks) is installed in its release image."""
    raw = example_raw(name, tmp_path)
    raw["platform"], raw["tracking"] = {"state_dir": str(tmp_path)}, {"uri": platform.declared.exports["mlflow_url"]}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "pipeline.yaml")
    version = release(config, StackTarget(config, target.stack, name=target.name))
    rows, truth = holdout_rows(config, connect(config), version, 20)
    reply = httpx.post(f"{url(platform)}/predict", json={"rows": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["model_version"] == version and len(reply.json()["predictions"]) == 20
    check_response(reply.json(), config.task, set(truth))
    for requirement in config.model.requirements:
        name, pinned = requirement.split("==")
        probe = f"import importlib.metadata as m, {name}; print(m.version('{name}'))"
        found = platform.container("serving").exec_run(["python", "-c", probe])
        assert (found.exit_code, found.output.decode().strip()) == (0, pinned), found.output
