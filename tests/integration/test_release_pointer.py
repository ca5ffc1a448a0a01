"""What a stack serves survives a fresh checkout (issue 18, item 10): the release pointer in a real registry.

Each `ClonedStack` is one working copy's view of the one stack: its own copy of the committed stack file
(which names no release) and the stack's applied state, shared, as a Pulumi backend holds it. A release
from one clone records its image in the registry; another clone, which never saw that clone's stack file
edits, serves it on `stack-up` and restores it when its own release fails. The stack tier does the same
against Docker (tests/stack/test_release_to_stack.py, the `fresh_checkout` releases).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import mlflow
import pytest
import yaml
from typer.testing import CliRunner

from pipelines import cli, stack
from pipelines.bento import BuiltBento
from pipelines.deploy import DeployError
from pipelines.registry import CHAMPION, aliases_of, connect
from pipelines.release_pointer import NO_MODEL, RegistryPointer, record_options
from pipelines.stack import StackError, StackTarget
from tests.infra.program import REPO_ROOT

MODEL = "pointer-test"


class ClonedStack:
    """A fresh clone's stack file plus the stack's state; `fail_next` makes the next apply fail as `pulumi up` can."""

    def __init__(self, clone: Path, state: dict[str, str]) -> None:
        clone.mkdir()
        self.file = Path(shutil.copy(REPO_ROOT / "Pulumi.dev.yaml", clone))
        self.state, self.applied, self.fail_next = state, [], False

    def config(self) -> Mapping[str, str]:
        raw = yaml.safe_load(self.file.read_text())["config"]
        return {key.split(":", 1)[-1]: str(value) for key, value in raw.items() if not isinstance(value, dict)}

    def secret(self, key: str) -> str | None:
        return None

    def outputs(self) -> Mapping[str, str]:
        """What the stack's last update exported (empty before the first), as the program exports it."""
        if not self.state:
            return {}
        return {"serving_url": "http://127.0.0.1:9", "model_version": self.state.get("modelVersion", "none"),
                "serving_image": self.state.get("servingImage") or "mlops-serving-runtime:latest"}

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        self.applied.append(dict(changes))
        if self.fail_next:
            self.fail_next = False
            raise StackError("pulumi up of stack 'dev' failed: container mlops-serving-candidate is unhealthy")
        self.state.clear()
        self.state.update({**self.config(), **changes})
        return {"serving_url": "http://127.0.0.1:9"}


@pytest.fixture
def config(local_platform):
    config = local_platform.config.model_copy(update={"model_name": MODEL})
    client = connect(config)
    client.create_registered_model(MODEL)
    yield config
    client.delete_registered_model(MODEL)


def champion(config, version_image: str | None, prefix: str = "mlops") -> str:
    """A new registered version made @champion, released to stack `prefix` as `version_image` (if given)."""
    client = connect(config)
    run = client.create_run(mlflow.set_experiment(MODEL).experiment_id)
    source, run_id = f"{run.info.artifact_uri}/model", run.info.run_id
    version = client.create_model_version(MODEL, source=source, run_id=run_id).version
    client.set_registered_model_alias(MODEL, CHAMPION, version)
    if version_image:
        RegistryPointer(config).record({"namePrefix": prefix}, version, version_image)
    return version


def release_v2_whose_candidate_never_gets_healthy(config, clone: ClonedStack, tag: str, monkeypatch) -> None:
    """A release of v2 from `clone` whose candidate's apply fails; it must restore what served."""
    monkeypatch.setattr(stack, "build_release_image", lambda *args: f"mlops-serving:{tag}")
    monkeypatch.setattr(BuiltBento, "model_version", property(lambda self: "2"))
    clone.fail_next = True
    bento = BuiltBento(f"{MODEL}:{tag}", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    with pytest.raises(DeployError, match="unhealthy"):
        StackTarget(config, clone).roll_out(bento, smoke=[])


def test_a_second_clone_serves_and_restores_what_the_first_released(config, tmp_path, monkeypatch):
    state: dict[str, str] = {}
    first, second = ClonedStack(tmp_path / "clone-a", state), ClonedStack(tmp_path / "clone-b", state)
    assert "servingImage" not in first.config()  # the committed stack file names no release
    v1 = champion(config, "mlops-serving:v1-aaa")  # what clone A's release recorded when it promoted v1
    StackTarget(config, first).up()
    assert (state["servingImage"], state["modelVersion"]) == ("mlops-serving:v1-aaa", v1)
    # Clone B never saw clone A's stack file: its `stack-up` keeps v1 serving rather than undeploying it.
    StackTarget(config, second).up()
    assert (state["servingImage"], state["modelVersion"]) == ("mlops-serving:v1-aaa", v1)
    # Clone B's release fails (its candidate never gets healthy): what it restores is v1, not the no-model image.
    release_v2_whose_candidate_never_gets_healthy(config, second, "v2-bbb", monkeypatch)
    assert second.applied[-1] == {"servingImage": "mlops-serving:v1-aaa", "modelVersion": v1,
                                  "candidateImage": "", "candidateVersion": "none"}
    assert (state["servingImage"], state["modelVersion"]) == ("mlops-serving:v1-aaa", v1)


def test_without_a_release_to_this_stack_the_stacks_own_state_says_what_serves(config):
    pointer = RegistryPointer(config)
    stack_file = {"namePrefix": "mlops", "servingImage": "mlops-serving:v0-file", "modelVersion": "0"}
    applied = {"serving_image": "mlops-serving:v1-old", "model_version": "1", "serving_url": "http://127.0.0.1:9"}
    assert pointer.serving(stack_file, lambda: applied) == NO_MODEL  # no @champion: nothing was released anywhere
    champion(config, "other-serving:v1-ccc", prefix="other")  # released to another stack only
    # Neither the other stack's image nor the stack file's: what this stack's last update put there.
    assert pointer.serving(stack_file, lambda: applied) == {"servingImage": "mlops-serving:v1-old", "modelVersion": "1"}
    with pytest.raises(DeployError, match="cannot tell what serves on stack 'mlops'"):
        pointer.serving(stack_file, lambda: {"serving_url": "http://127.0.0.1:9"})
    v2 = champion(config, "mlops-serving:v2-ddd")
    assert pointer.serving(stack_file, lambda: applied) == {"servingImage": "mlops-serving:v2-ddd", "modelVersion": v2}


def test_the_recovery_command_of_an_unrecorded_release_records_its_pointer_and_moves_the_aliases(config, monkeypatch):
    """What a release prints when MLflow went away after its image took over (tests/unit/test_release_failures.py)."""
    v1 = champion(config, "mlops-serving:v1-eee")
    client = connect(config)
    run = client.create_run(mlflow.set_experiment(MODEL).experiment_id)
    v2 = client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    monkeypatch.setattr(cli.steps, "connected_config", lambda path: config)
    recording = record_options({"namePrefix": "mlops"}, "mlops-serving:v2-fff")
    command = f"set-aliases --champion {v2} --previous {v1} {recording}"

    result = CliRunner().invoke(cli.app, command.split())

    assert result.exit_code == 0, result.output
    assert RegistryPointer(config).serving({"namePrefix": "mlops"}, dict) == {
        "servingImage": "mlops-serving:v2-fff", "modelVersion": v2}
    assert aliases_of(client, MODEL) == {"champion": v2, "previous": v1}


def test_a_fresh_clones_release_keeps_an_untagged_champion_the_stack_serves(config, tmp_path, monkeypatch):
    """A champion released before the pointer existed: the stack serves it; the clone's stack file names nothing."""
    state = {"servingImage": "mlops-serving:v1-old", "modelVersion": "1"}  # the stack's last update
    clone = ClonedStack(tmp_path / "clone", state)
    champion(config, version_image=None)
    release_v2_whose_candidate_never_gets_healthy(config, clone, "v2-ggg", monkeypatch)
    kept = {"servingImage": "mlops-serving:v1-old", "modelVersion": "1"}
    assert clone.applied == [{**kept, "candidateImage": "mlops-serving:v2-ggg", "candidateVersion": "2"},
                             {**kept, "candidateImage": "", "candidateVersion": "none"}]
