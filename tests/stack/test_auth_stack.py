"""MLflow with basic auth on Docker: the admin password arrives as a secret file, never in env or args."""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import httpx
import pytest

from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack

ADMIN_PASSWORD = "stack-%-test-4b1d"  # a '%' on purpose: MLflow's config parser would choke on it raw


@pytest.fixture(scope="module")
def auth_platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, {"authEnabled": "true"}, {"adminPassword": ADMIN_PASSWORD}) as stack:
        yield stack


def test_mlflow_refuses_anonymous_requests_and_admits_the_admin(auth_platform):
    url = f"{auth_platform.declared.exports['mlflow_url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, auth=("admin", "wrong"), timeout=10).status_code == 401
    assert httpx.get(url, auth=("admin", ADMIN_PASSWORD), timeout=10).status_code == 200


def test_the_monitoring_job_logs_in_with_its_credentials_file(auth_platform):
    job = auth_platform.container("monitoring")
    script = ("from mlflow.tracking import MlflowClient; "
              "print(len(MlflowClient('http://mlflow:5000').search_experiments()))")
    result = job.exec_run(["python", "-c", script])
    assert result.exit_code == 0, result.output.decode()[-2000:]


def test_the_password_is_not_visible_in_docker_inspect(auth_platform):
    for alias in ("mlflow", "monitoring"):
        container = auth_platform.container(alias)
        container.reload()
        assert ADMIN_PASSWORD not in json.dumps(container.attrs), alias
    mode = auth_platform.container("mlflow").exec_run(["stat", "-c", "%a %u", "/home/app/basic_auth.ini"])
    assert mode.output.decode().split() == ["600", "10001"]
