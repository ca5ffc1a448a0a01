"""What a stack serves when its @champion has no release pointer for it: the stack's own outputs say, never its file
(the registry side: tests/integration/test_release_pointer.py)."""

from __future__ import annotations

import pytest

from pipelines.deploy import DeployError
from pipelines.release_pointer import NO_MODEL, stack_serves
from pipelines.stack_models import StackModel

STACK_FILE = {"namePrefix": "mlops", "servingImage": "mlops-serving:v0-file", "modelVersion": "0"}
RUNTIME = "mlops-serving-runtime:latest"


@pytest.mark.parametrize(("outputs", "serving"), [
    ({"serving_image": "mlops-serving:v3-abc", "model_version": "3", "serving_url": "http://127.0.0.1:8080"},
     {"servingImage": "mlops-serving:v3-abc", "modelVersion": "3"}),  # released through the stack file
    ({"serving_image": RUNTIME, "model_version": "none"}, NO_MODEL),  # the runtime image: no model serves
    ({}, NO_MODEL),  # never updated: nothing serves
], ids=["a-release", "the-runtime-image", "never-updated"])
def test_the_stacks_outputs_say_what_serves_and_the_stack_file_never_does(outputs, serving):
    assert stack_serves(outputs, STACK_FILE, champion="4") == serving


def test_outputs_that_name_no_serving_image_are_refused_with_the_command_that_records_one():
    with pytest.raises(DeployError) as refused:
        stack_serves({"serving_url": "http://127.0.0.1:8080"}, STACK_FILE, champion="4")
    message = " ".join(str(refused.value).split())
    assert "cannot tell what serves on stack 'mlops'" in message and "serving_image.mlops" in message
    assert ("uv run pipelines set-aliases --champion 4 --serving-image <image> --name-prefix mlops`, "
            "then `make stack-up`") in message


def test_another_models_outputs_say_what_serves_it():
    bikes = StackModel("bike-rentals", "bike-rentals")
    outputs = {"serving_image": "mlops-serving:v3-abc", "model_version": "3",
               "serving_image.bike-rentals": "mlops-serving:v5-bk", "model_version.bike-rentals": "5"}
    assert stack_serves(outputs, STACK_FILE, "6", bikes) == {"servingImage": "mlops-serving:v5-bk",
                                                             "modelVersion": "5"}
    # Declared but never released: the stack's outputs name no image of it, so nothing of it serves.
    assert stack_serves({**outputs, "serving_image.bike-rentals": "", "model_version.bike-rentals": "none"},
                        STACK_FILE, "6", bikes) == NO_MODEL
