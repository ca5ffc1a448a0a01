"""What a release leaves behind when a step fails: the stack reverts, aliases finish or say how, exit codes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from typer.testing import CliRunner

from pipelines import cli, deploy, stack
from pipelines.audit import AuditTrail
from pipelines.bento import BuiltBento
from pipelines.cli_app import UNEXPECTED_ERROR
from pipelines.config import DataConfig, PipelineConfig
from pipelines.deploy import DeployError
from pipelines.registry import CHALLENGER, CHAMPION, PREVIOUS, AliasMove, AliasMoveFailed, move_aliases
from pipelines.serving_state import Deployment
from pipelines.stack import StackError, StackTarget
from tests.unit.audit_memory import MemoryStore

CONFIG = PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]))


class FailingStack:
    """A stack from a fresh checkout (its stack file names no release) whose first apply fails: with a
    StackError, as `PulumiStack.apply` does, or by serving nothing at the URL it answers."""

    def __init__(self, failure: str) -> None:
        self.failure = failure
        self.applied: list[dict[str, str]] = []

    def config(self) -> Mapping[str, str]:
        return {"namePrefix": "mlops"}

    def secret(self, key: str) -> str | None:
        return None

    def outputs(self) -> Mapping[str, str]:
        return {}

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        self.applied.append(dict(changes))
        if len(self.applied) == 1 and self.failure == "apply":
            raise StackError("pulumi up of stack 'dev' failed: container mlops-serving-candidate is unhealthy")
        return {"serving_url": "http://127.0.0.1:9"}  # the discard port: nothing answers there


class KnownPointer:
    """The release pointer as the registry answers it (tests/integration/test_release_pointer.py has the real one)."""

    def __init__(self, serving: dict[str, str]) -> None:
        self.now, self.recorded = serving, []

    def serving(self, stack_config: Mapping[str, str], outputs) -> dict[str, str]:
        return dict(self.now)

    def record(self, stack_config: Mapping[str, str], version: str, image: str) -> None:
        self.recorded.append((version, image))


@pytest.mark.parametrize(("failure", "message"), [("apply", "unhealthy"), ("check", "candidate mlops-serving:v2-new")])
def test_a_failed_candidate_is_removed_and_the_champion_never_changes(monkeypatch, failure, message):
    monkeypatch.setattr(stack, "build_release_image", lambda *args: "mlops-serving:v2-new")
    applier, champion = FailingStack(failure), {"servingImage": "mlops-serving:v1-old", "modelVersion": "1"}
    pointer = KnownPointer(champion)
    bento = BuiltBento("m:v2-abc", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    monkeypatch.setattr(BuiltBento, "model_version", property(lambda self: "2"))
    config = CONFIG.model_copy(update={"platform": CONFIG.platform.model_copy(update={"startup_timeout_s": 1})})
    with pytest.raises(DeployError, match=message):
        StackTarget(config, applier, pointer=pointer).roll_out(bento, smoke=[])  # type: ignore[arg-type]
    # Every apply carries what the registry says serves, not the fresh checkout's empty stack file.
    assert applier.applied == [{**champion, "candidateImage": "mlops-serving:v2-new", "candidateVersion": "2"},
                               {**champion, "candidateImage": "", "candidateVersion": "none"}]
    assert pointer.recorded == []


class FlakyRegistry:
    """Alias calls of MlflowClient; the first `failures` calls raise as an unreachable server would."""

    def __init__(self, failures: int, aliases: dict[str, str]) -> None:
        self.failures, self.aliases = failures, dict(aliases)

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise MlflowException("API request failed: connection refused")

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._maybe_fail()
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._maybe_fail()
        self.aliases.pop(alias)

    def get_model_version_by_alias(self, name: str, alias: str):
        if alias not in self.aliases:
            raise MlflowException("no such alias", error_code=INVALID_PARAMETER_VALUE)
        return type("Version", (), {"version": self.aliases[alias]})()


def test_alias_moves_are_retried_and_idempotent():
    registry = FlakyRegistry(failures=2, aliases={CHAMPION: "1", CHALLENGER: "2"})
    move = AliasMove(champion="2", previous="1")
    move_aliases(registry, "m", move, pause_s=0)
    assert registry.aliases == {CHAMPION: "2", PREVIOUS: "1"}
    move_aliases(registry, "m", move, pause_s=0)  # again: same end state
    assert registry.aliases == {CHAMPION: "2", PREVIOUS: "1"}


def test_an_alias_move_that_keeps_failing_prints_the_recovery_command():
    registry = FlakyRegistry(failures=99, aliases={CHAMPION: "1", CHALLENGER: "2"})
    with pytest.raises(AliasMoveFailed, match="pipelines set-aliases --champion 2 --previous 1"):
        move_aliases(registry, "m", AliasMove(champion="2", previous="1"), attempts=2, pause_s=0)


def test_an_unexpected_error_does_not_exit_like_a_refusal(monkeypatch, tmp_path):
    def broken(config):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli.steps, "check_data", broken)
    result = CliRunner().invoke(cli.app, ["data", "--config", "pipelines/pipeline.yaml"])
    assert result.exit_code == UNEXPECTED_ERROR != 1
    assert "unexpected error" in result.output


class DownAfterFirstRecord(MemoryStore):
    """The audit trail once MLflow went away after the release's first record: every write fails then."""

    def write(self, record: Mapping[str, str], sha256: str) -> str:
        if self.runs:
            raise MlflowException("API request to http://mlflow:5000 (create_run) failed: Connection refused")
        return super().write(record, sha256)


def audit_in(store: MemoryStore, monkeypatch) -> None:
    trail = AuditTrail(store, "m")  # type: ignore[arg-type]
    monkeypatch.setattr(deploy.AuditTrail, "of", classmethod(lambda cls, *args, **kwargs: trail))


def served_locally() -> tuple[BuiltBento, Deployment, SimpleNamespace]:
    """A bento of v2, the deployment its rollout makes, and a local target whose rollout always makes it."""
    bento = BuiltBento("m:v2-abc", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    bento = dataclasses.replace(bento, model=SimpleNamespace(  # type: ignore[arg-type]
        version="2", holdout=pd.DataFrame({"x": [1.0, 2.0]}), data=SimpleNamespace(features=["x"]),
        labels={"model_version": "2"}))
    served = Deployment(bento.tag, "2", "http://127.0.0.1:3000", "now")
    return bento, served, SimpleNamespace(name="local", roll_out=lambda bento, smoke: served)


def test_with_mlflow_down_after_a_rollout_the_recovery_command_is_still_printed(monkeypatch):
    """The rollout served v2; then MLflow went away: the alias move and the audit's close both fail."""
    bento, served, target = served_locally()
    audit_in(DownAfterFirstRecord(), monkeypatch)
    monkeypatch.setattr(deploy, "connect", lambda config: FlakyRegistry(failures=99, aliases={CHAMPION: "1"}))
    monkeypatch.setattr(deploy, "move_aliases", functools.partial(move_aliases, attempts=2, pause_s=0))
    move = AliasMove(champion="2", previous="1")
    monkeypatch.setattr(cli.steps, "connected_config", lambda path: CONFIG)
    monkeypatch.setattr(cli.steps, "release_candidate",
                        lambda config, where, **options: deploy._release(
                            deploy.connect(config), config, bento, target, "deploy", move))

    result = CliRunner().invoke(cli.app, ["deploy"])

    assert result.exit_code == 2 and not isinstance(result.exception, MlflowException)
    output = " ".join(result.output.split())  # as one line: the console wraps at its width
    assert "finish it with: uv run pipelines set-aliases --champion 2 --previous 1" in output
    assert "its audit record 'deploy v2 serving, aliases not moved' could not be written" in output
    assert "Connection refused" in output
    assert "Traceback" not in output


def test_a_release_that_serves_and_moved_its_aliases_succeeds_even_if_its_last_record_cannot_be_written(monkeypatch):
    """MLflow went away after the alias move: the release is done, so it says so, and names the lost record."""
    bento, served, target = served_locally()
    audit_in(DownAfterFirstRecord(), monkeypatch)
    monkeypatch.setattr(deploy, "connect", lambda config: FlakyRegistry(failures=0, aliases={CHAMPION: "1"}))
    monkeypatch.setattr(deploy, "close_retrain_request", lambda *args, **kwargs: SimpleNamespace(text="none open"))
    move = AliasMove(champion="2", previous="1")

    result = deploy._release(deploy.connect(CONFIG), CONFIG, bento, target, "deploy", move)

    assert result.deployment is served and result.audit_run_id == ""
    assert "its audit record 'deploy v2 serving' could not be written" in result.audit_url


class DownRegistryPointer(KnownPointer):
    """The release pointer once MLflow went away after the promotion's apply: its tag write fails."""

    def record(self, stack_config: Mapping[str, str], version: str, image: str) -> None:
        raise MlflowException("API request to http://mlflow:5000 failed: Connection refused")


def test_a_promoted_image_whose_release_pointer_cannot_be_recorded_says_it_serves_and_how_to_finish(monkeypatch):
    """The candidate and the promotion passed their checks; then MLflow went away before the pointer's tag."""
    monkeypatch.setattr(stack, "build_release_image", lambda *args: "mlops-serving:v2-new")
    monkeypatch.setattr(StackTarget, "_check", lambda *args, **kwargs: None)  # the checks passed
    bento = BuiltBento("m:v2-new", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    bento = dataclasses.replace(bento, model=SimpleNamespace(  # type: ignore[arg-type]
        version="2", holdout=pd.DataFrame({"x": [1.0, 2.0]}), data=SimpleNamespace(features=["x"]),
        labels={"model_version": "2"}))
    applier = FailingStack("none")
    target = StackTarget(CONFIG, applier, name="stack:dev",  # type: ignore[arg-type]
                         pointer=DownRegistryPointer({"servingImage": "mlops-serving:v1-old", "modelVersion": "1"}))
    audit = MemoryStore()
    audit_in(audit, monkeypatch)
    move = AliasMove(champion="2", previous="1")
    monkeypatch.setattr(cli.steps, "connected_config", lambda path: CONFIG)
    monkeypatch.setattr(cli.steps, "release_candidate",
                        lambda config, where, **options: deploy._release(
                            deploy.connect(config), config, bento, target, "deploy", move))

    result = CliRunner().invoke(cli.app, ["deploy"])

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    output = " ".join(result.output.split())  # as one line: the console wraps at its width
    command = ("uv run pipelines set-aliases --champion 2 --previous 1 --serving-image mlops-serving:v2-new "
               "--name-prefix mlops")
    assert "v2 serves on stack:dev but its release pointer was not recorded" in output
    assert f"finish with: {command}" in output and "Connection refused" in output
    assert applier.applied[-1]["servingImage"] == "mlops-serving:v2-new"  # no restore: it serves
    outcome = audit.runs[audit.ordered("m")[-1]][1]
    assert outcome["outcome"] == "serving, pointer not recorded" and outcome["recovery"] == command
