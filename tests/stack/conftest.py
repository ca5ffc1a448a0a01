"""The stack tier: the declared platform on a real Docker daemon, torn down afterwards.

Skipped only when no Docker daemon answers. Reads BASE_IMAGE (default: the offline base that
.ci/setup-docker.sh builds) as the `baseImage` stack config, exactly as a user without Docker Hub would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from secrets import token_hex

import docker
import pytest
import yaml

from tests.infra.program import CONTAINER, IMAGE, NETWORK, VOLUME, DeclaredStack, run_program
from tests.stack.harness import DockerStack

DEFAULT_BASE_IMAGE = "mlops-platform-base:bookworm"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.stack)


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now, so the test stack never collides with `make demo` or a real stack."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker daemon answers ({exc}); .ci/setup-docker.sh starts one")
    return client


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    tag = os.environ.get("BASE_IMAGE", DEFAULT_BASE_IMAGE)
    present = bool(docker_client.images.list(name=tag))
    if not present:
        pytest.fail(f"base image {tag} is missing: run .ci/setup-docker.sh (or services/base-image.sh)")
    return tag


def only_services(declared: DeclaredStack, aliases: Collection[str]) -> DeclaredStack:
    """The declared containers reachable as `aliases`, with the images, network and volumes they use."""
    containers = [c for c in declared.of_type(CONTAINER)
                  if {a for n in c.plain["networksAdvanced"] for a in n["aliases"]} & set(aliases)]
    images = {c.plain["image"] for c in containers}
    volumes = {v["volumeName"] for c in containers for v in c.plain.get("volumes") or []}
    kept = [r for r in declared.resources if r in containers or r.type == NETWORK
            or (r.type == IMAGE and r.plain["imageName"] in images)
            or (r.type == VOLUME and r.plain["name"] in volumes)]
    return dataclasses.replace(declared, resources=kept)


@contextlib.contextmanager
def running_stack(
    client: docker.DockerClient, base_image: str, config: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None, *, services: Collection[str] = (),
) -> Iterator[DockerStack]:
    """The declared stack under a unique name prefix on free loopback ports, removed afterwards; with
    `services`, only the containers of those aliases (and what they use)."""
    mlflow_port, serving_port, ui_port, prometheus_port = free_ports(4)
    with tempfile.TemporaryDirectory() as folder:
        # The job's policy comes from the served model's pipeline config: a run a minute, not every 5.
        policy_file = Path(folder) / "pipeline.yaml"
        policy_file.write_text(yaml.safe_dump({"monitoring": {"interval_minutes": 1}}))
        declared = run_program({
            "namePrefix": f"mlopst-{token_hex(3)}",
            "baseImage": base_image,
            "mlflowPort": str(mlflow_port),
            "servingPort": str(serving_port),
            "monitoringUiPort": str(ui_port),
            "prometheusPort": str(prometheus_port),
            "pipelineConfig": str(policy_file),
            **(config or {}),
        }, secrets)
        stack = DockerStack(client, only_services(declared, services) if services else declared)
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


@pytest.fixture(scope="module")
def platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    """The default stack: SQLite backend, no auth, no model."""
    with running_stack(docker_client, base_image) as stack:
        yield stack
