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
    monkeypatch.setattr(steps, "resolve_version", step("resolve", object()))
    monkeypatch.setattr(steps, "gate_candidate", step("gate"))
    monkeypatch.setattr(steps, "build_bento", step("build", bento))
    monkeypatch.setattr(pipelines.deploy, "deploy", step("deploy", object()))
    monkeypatch.setattr(steps.views, "release", lambda *args: "")
    steps.release_candidate(config, type("Target", (), {"name": "local"})())
    assert held == {"resolve": True, "gate": True, "build": True, "deploy": True}
    assert not taken_elsewhere(config)
