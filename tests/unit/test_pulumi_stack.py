"""`PulumiStack.apply` calls the Automation API as `pulumi up` needs it (no engine here: a recording stack)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi import automation

from pipelines import pulumi_stack as stack
from pipelines.pulumi_stack import POLICY_PACK, PulumiStack


class RecordingStack:
    """The `automation.Stack` calls PulumiStack makes, recording what `up` was given and the policy config it read."""

    name = "dev"

    def __init__(self, config: dict[str, str]) -> None:
        self.values = {f"mlops-platform:{key}": automation.ConfigValue(value=value) for key, value in config.items()}
        self.up_options: dict = {}
        self.policy_config: dict = {}
        self.policy_config_mode = 0

    def get_all_config(self) -> dict[str, automation.ConfigValue]:
        return self.values

    def set_config(self, key: str, value: automation.ConfigValue) -> None:
        self.values[f"mlops-platform:{key}"] = value

    def up(self, **options):
        self.up_options = options
        (path,) = options["policy_pack_configs"]
        self.policy_config = json.loads(Path(path).read_text())
        self.policy_config_mode = stat.S_IMODE(os.stat(path).st_mode)
        return SimpleNamespace(outputs={"serving_url": automation.OutputValue("http://127.0.0.1:8080", False)})


@pytest.mark.parametrize(("expose_ports", "allowed"), [("true", True), ("false", False), (None, False)])
def test_an_update_passes_the_policy_pack_a_config_that_allows_public_ports_only_when_exposed(
        monkeypatch, expose_ports, allowed):
    recording = RecordingStack({"namePrefix": "mlops"} if expose_ports is None else {"exposePorts": expose_ports})
    monkeypatch.setattr(automation, "select_stack", lambda stack_name, work_dir: recording)

    outputs = PulumiStack("dev").apply({"servingImage": "mlops-serving:v2-abc"})

    assert outputs == {"serving_url": "http://127.0.0.1:8080"}
    assert recording.up_options["policy_packs"] == [str(POLICY_PACK)]
    assert recording.policy_config == {"no-public-ports": {"allowPublicPorts": allowed}}
    assert recording.policy_config_mode == 0o600  # a policy config may one day carry more than a flag
    assert not Path(recording.up_options["policy_pack_configs"][0]).exists()  # removed after the update
    assert recording.values["mlops-platform:servingImage"].value == "mlops-serving:v2-abc"


def test_the_config_file_is_removed_when_the_update_fails(monkeypatch):
    recording = RecordingStack({"exposePorts": "true"})

    def failing_up(**options):
        recording.up_options = options
        raise automation.errors.CommandError(SimpleNamespace(stdout="", stderr="policy violation", code=255))

    recording.up = failing_up  # type: ignore[method-assign]
    monkeypatch.setattr(automation, "select_stack", lambda stack_name, work_dir: recording)
    with pytest.raises(stack.StackError, match="pulumi up of stack 'dev' failed"):
        PulumiStack("dev").apply({})
    assert not Path(recording.up_options["policy_pack_configs"][0]).exists()


def test_the_outputs_are_the_stacks_plain_ones(monkeypatch):
    recording = RecordingStack({})
    recording.outputs = lambda: {"serving_image": automation.OutputValue("mlops-serving:v2-abc", False),  # type: ignore[attr-defined]
                                 "admin_password": automation.OutputValue("hunter2-hunter2", True)}
    monkeypatch.setattr(automation, "select_stack", lambda stack_name, work_dir: recording)
    assert PulumiStack("dev").outputs() == {"serving_image": "mlops-serving:v2-abc"}
