"""tests/kubernetes: the kubernetes target verified offline; the Docker run joins the stack tier."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.stack.conftest import base_image, docker_client  # noqa: F401 - the stack tier's fixtures, reused

ON_DOCKER = "test_pods_on_docker.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(item.fspath)
        if here not in path.parents:
            continue
        if path.name == ON_DOCKER:
            item.add_marker(pytest.mark.stack)
        if item.get_closest_marker("cluster") and not os.environ.get("KUBECONFIG"):
            item.add_marker(pytest.mark.skip(reason="needs a cluster: set KUBECONFIG"))


@pytest.fixture(scope="session")
def small():
    """The manifests of the default kubernetes stack (one claim, SQLite; auth, which the target requires)."""
    from tests.kubernetes.manifests import SMALL, declare, manifests

    return manifests(declare(SMALL))


@pytest.fixture(scope="session")
def full():
    """The manifests with everything on: external stores, auth, a release image, a client namespace."""
    from tests.kubernetes.manifests import FULL, FULL_SECRETS, declare, manifests

    return manifests(declare(FULL, FULL_SECRETS))


@pytest.fixture(scope="session")
def two_models():
    """The manifests with everything on and two models, each with its own serving objects and route."""
    from tests.kubernetes.manifests import FULL_SECRETS, TWO_MODELS, declare, manifests

    return manifests(declare(TWO_MODELS, FULL_SECRETS))
