"""The stack harness applies every input the program declares, so tests/stack proves what infra/ asks for."""

from __future__ import annotations

import asyncio
import dataclasses

from tests.infra.program import CONTAINER, IMAGE, DeclaredStack, run_program
from tests.infra.test_stack_program import HARDENED, HARDENED_SECRETS
from tests.stack.harness import unapplied_inputs


def test_every_declared_input_is_applied_by_the_harness():
    for stack in (run_program(), run_program({**HARDENED, "servingImage": "mlops-serving:v3"}, HARDENED_SECRETS)):
        assert unapplied_inputs(stack) == []


def test_an_input_the_harness_ignores_is_reported_by_name():
    stack = run_program()
    container = stack.of_type(CONTAINER)[0]
    image = stack.of_type(IMAGE)[0]
    changed = [
        dataclasses.replace(container, inputs={**container.inputs, "tmpfs": {"/tmp": "rw"},
                                               "ports": [{"internal": 1, "external": 2, "hostIp": "x"}]}),
        dataclasses.replace(image, inputs={**image.inputs, "build": {**image.plain["build"],
                                                                     "builderVersion": "BuilderBuildKit"}}),
    ]
    assert set(unapplied_inputs(DeclaredStack(resources=changed))) == {
        f"{container.name}.ports.hostIp",
        f"{container.name}.tmpfs",
        f"{image.name}.build.builderVersion (only the classic builder is applied)",
    }


def test_the_program_runs_after_a_test_that_left_no_event_loop():
    """Any selection passes (`pytest tests/unit tests/infra`): asyncio.run() in an earlier test leaves no loop."""
    asyncio.run(asyncio.sleep(0))
    assert run_program().container("mlflow")
