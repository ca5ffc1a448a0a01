"""Two releases against one state dir never run at once: the lock spans the gate, the build and the switch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines import steps
from pipelines.config import DataConfig, PipelineConfig
from pipelines.deploy import DeployError, release_lock


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    return PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]),
                          platform={"state_dir": tmp_path})


def taken_elsewhere(config: PipelineConfig) -> bool:
    """Whether another thread (as another process would) is refused the lock right now."""
    def attempt() -> bool:
        try:
            with release_lock(config):
                return False
        except DeployError as error:
            assert "another deploy or rollback is running" in str(error)
            return True

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(attempt).result()


def test_a_second_release_is_refused_at_once_while_one_runs(config):
    with release_lock(config):
        assert taken_elsewhere(config)
    assert not taken_elsewhere(config)  # released again afterwards


def test_the_holder_may_take_it_again_and_keeps_it_until_its_outermost_release(config):
    with release_lock(config):
        with release_lock(config):  # a release, then the deploy inside it
            assert taken_elsewhere(config)
        assert taken_elsewhere(config)
    assert not taken_elsewhere(config)


def test_a_release_holds_the_lock_from_its_gate_to_its_switch(config, monkeypatch):
    import pipelines.deploy

    held = {}

    def step(name, result=None):
        def run(*args, **kwargs):
            held[name] = taken_elsewhere(config)
            return result
        return run

    bento = type("Bento", (), {"tag": "m:v1"})()
    candidate = type("Candidate", (), {"name": "m", "version": "1", "retired": ""})()
    monkeypatch.setattr(steps, "resolve_version", step("resolve", candidate))
    monkeypatch.setattr(steps, "gate_candidate", step("gate"))
    monkeypatch.setattr(steps, "build_bento", step("build", bento))
    monkeypatch.setattr(pipelines.deploy, "deploy", step("deploy", object()))
    monkeypatch.setattr(steps.views, "release", lambda *args: "")
    steps.release_candidate(config, type("Target", (), {"name": "local"})())
    assert held == {"resolve": True, "gate": True, "build": True, "deploy": True}
    assert not taken_elsewhere(config)


class LeftoverStack:
    """A stack whose config still names the candidate and canary of a release that was killed halfway."""

    def __init__(self, config: PipelineConfig) -> None:
        self.pipeline_config, self.applied, self.locked_while_applying = config, [], False

    def config(self) -> dict[str, str]:
        return {"namePrefix": "mlops", "candidateImage": "mlops-serving:v3-killed", "candidateVersion": "3",
                "canaryImage": "mlops-serving:v3-killed", "canaryVersion": "3"}

    def secret(self, key: str) -> None:
        return None

    def outputs(self) -> dict[str, str]:
        return {}

    def apply(self, changes: dict[str, str]) -> dict[str, str]:
        self.applied.append(dict(changes))
        self.locked_while_applying = taken_elsewhere(self.pipeline_config)
        return {"serving_url": "http://127.0.0.1:9"}


class ChampionPointer:
    def serving(self, stack_config, outputs) -> dict[str, str]:
        return {"servingImage": "mlops-serving:v2-abc", "modelVersion": "2"}


def test_stack_up_holds_the_release_lock_and_drops_a_killed_releases_candidate_and_canary(config):
    from pipelines.stack import StackTarget

    applier = LeftoverStack(config)
    StackTarget(config, applier, pointer=ChampionPointer()).up()  # type: ignore[arg-type]
    assert applier.locked_while_applying
    assert applier.applied == [{"servingImage": "mlops-serving:v2-abc", "modelVersion": "2", "candidateImage": "",
                                "candidateVersion": "none", "canaryImage": "", "canaryVersion": "none"}]


def test_stack_up_is_refused_while_a_release_runs(config):
    from pipelines.stack import StackTarget

    applier = LeftoverStack(config)
    with ThreadPoolExecutor(1) as pool, release_lock(config):
        attempt = pool.submit(StackTarget(config, applier, pointer=ChampionPointer()).up)  # type: ignore[arg-type]
        with pytest.raises(DeployError, match="another deploy or rollback is running"):
            attempt.result()
    assert applier.applied == []
