"""The regression and LightGBM examples served through the real images on the Docker stack.

Each example is released as test_release_to_stack.py releases the demo model (train, gate, bento, release
image on the stack's serving runtime image, candidate check, promotion), then answers its own rows with
the task's response where users reach the stack. One stack for both: the second release replaces the first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from pipelines.config import PipelineConfig, load_config
from pipelines.registry import connect
from pipelines.stack import StackTarget
from tests.example_runs import check_response, example_raw, holdout_rows
from tests.stack.harness import DockerStack
from tests.stack.test_release_to_stack import HarnessStack, release

pytestmark = pytest.mark.timeout(1200)

ROWS = 20


@pytest.fixture(scope="module")
def stack(platform: DockerStack) -> Iterator[HarnessStack]:
    """The module's stack as releases apply it; afterwards the runtime image again and no release image left."""
    applier = HarnessStack(platform)
    yield applier
    applier.apply({"servingImage": "", "modelVersion": "none"})
    for image in platform.client.images.list(name=f"{platform.declared.config['namePrefix']}-serving"):
        platform.client.images.remove(image.id, force=True)


def stack_config(name: str, platform: DockerStack, state: Path) -> PipelineConfig:
    raw = example_raw(name, state)
    raw["platform"] = {"state_dir": str(state)}
    raw["tracking"] = {"uri": platform.declared.exports["mlflow_url"]}
    path = state / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.mark.parametrize("name", ["demand", "species"])
def test_example_serves_through_the_stack_images(name, platform, stack, tmp_path):
    config = stack_config(name, platform, tmp_path)
    version = release(config, StackTarget(config, stack, name="stack:test"))
    rows, truth = holdout_rows(config, connect(config), version, ROWS)
    reply = httpx.post(f"{platform.declared.exports['serving_url']}/predict", json={"rows": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_version"] == version and len(body["predictions"]) == ROWS, body
    check_response(body, config.task, set(truth))
