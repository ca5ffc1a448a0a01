"""Access control on Docker: with authEnabled every data endpoint needs a credential, and every secret
arrives as a file, never in env, args, outputs or logs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import httpx
import pytest

from pipelines.registry import CHAMPION
from tests.integration.test_monitoring_user import RELEASE_ALIASES, RELEASE_TAGS
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack

ADMIN_PASSWORD = "stack-%-test-4b1d"  # a '%' on purpose: MLflow's config parser would choke on it raw
SECRETS = {"adminPassword": ADMIN_PASSWORD, "servingToken": "serving-token-6a1f",
           "monitoringPassword": "monitoring-pw-9e2c", "monitoringUiSecret": "ui-secret-13d7-a5c9",
           "smokeToken": "smoke-token-5b80"}


@pytest.fixture(scope="module")
def auth_platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, {"authEnabled": "true"}, SECRETS) as stack:
        yield stack


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {SECRETS[secret]}"}


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


def test_serving_needs_its_token_except_for_health_probes(auth_platform):
    url = auth_platform.declared.exports["serving_url"]
    assert httpx.post(f"{url}/predict", json={"rows": []}, timeout=10).status_code == 401
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    assert httpx.post(f"{url}/predict", json={"rows": []}, headers={"authorization": "Bearer wrong"},
                      timeout=10).status_code == 401
    # With the token: the runtime image's own answer, "no model deployed yet".
    answer = httpx.post(f"{url}/predict", json={"rows": []}, headers=bearer("servingToken"), timeout=10)
    assert answer.status_code == 503 and "no model deployed" in answer.text
    assert httpx.get(f"{url}/metrics", headers=bearer("servingToken"), timeout=10).status_code == 200
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503  # open, and honest: no model yet


def test_the_evidently_ui_and_its_write_api_need_the_secret(auth_platform):
    url = auth_platform.declared.exports["monitoring_ui_url"]
    assert httpx.get(f"{url}/api/version", timeout=10).status_code == 200  # the health probe stays open
    assert httpx.get(f"{url}/api/projects", timeout=10).status_code == 401
    viewer = ("viewer", SECRETS["monitoringUiSecret"])  # a browser logs in with Basic auth
    assert httpx.get(f"{url}/api/projects", auth=viewer, timeout=10).status_code == 200
    doomed = f"{url}/api/projects/00000000-0000-0000-0000-000000000001"
    assert httpx.delete(doomed, timeout=10).status_code == 401
    own = {"evidently-secret": SECRETS["monitoringUiSecret"]}
    assert httpx.delete(doomed, headers=own, timeout=10).status_code not in (401, 403)


def test_the_monitoring_job_has_its_own_user_with_only_what_it_needs(auth_platform):
    """It reads the registry and writes its own experiment; every write a release trusts is refused (item 4)."""
    mlflow_url = auth_platform.declared.exports["mlflow_url"]
    admin = ("admin", ADMIN_PASSWORD)
    api = f"{mlflow_url}/api/2.0/mlflow"

    def as_admin(route: str, body: dict) -> dict:
        answer = httpx.post(f"{api}/{route}", json=body, auth=admin, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    release = as_admin("experiments/create", {"name": "release"})["experiment_id"]
    run = as_admin("runs/create", {"experiment_id": release})["run"]["info"]["run_id"]
    as_admin("registered-models/create", {"name": "loan-default"})
    as_admin("model-versions/create", {"name": "loan-default", "source": f"runs:/{run}/model", "run_id": run})
    as_admin("registered-models/alias", {"name": "loan-default", "alias": CHAMPION, "version": "1"})
    release_writes = [
        *(f"lambda: client.set_model_version_tag('loan-default', '1', {key!r}, 'passed')" for key in RELEASE_TAGS),
        f"lambda: client.delete_registered_model_alias('loan-default', {CHAMPION!r})",
        *(f"lambda: client.set_registered_model_alias('loan-default', {alias!r}, '1')" for alias in RELEASE_ALIASES),
        "lambda: client.set_registered_model_tag('loan-default', 'retrain_status', 'requested')",
        "lambda: client.delete_registered_model('loan-default')",
        f"lambda: client.create_run({release!r})",
    ]
    script = "\n".join([
        "from mlflow.exceptions import MlflowException",
        "from mlflow.tracking import MlflowClient",
        "client = MlflowClient('http://mlflow:5000')",
        "client.search_experiments()",  # READ everywhere
        f"assert client.get_model_version_by_alias('loan-default', {CHAMPION!r}).version == '1'",  # reads the champion
        "own = client.create_run(client.create_experiment('monitoring')).info.run_id",  # its own experiment
        "client.set_tag(own, 'retrain_requested', 'true')",  # where its retrain requests live
        f"for forbidden in [{', '.join(release_writes)}]:",
        "    try:",
        "        forbidden()",
        "        raise SystemExit('the monitoring user was allowed more than it needs')",
        "    except MlflowException as exc:",
        "        assert exc.error_code == 'PERMISSION_DENIED', exc.error_code",
        "print('ok')",
    ])
    result = auth_platform.container("monitoring").exec_run(["python", "-c", script])
    assert result.exit_code == 0 and result.output.decode().strip().endswith("ok"), result.output.decode()[-2000:]


def test_no_secret_is_visible_in_inspect_env_outputs_or_logs(auth_platform):
    outputs = json.dumps(auth_platform.declared.exports, default=str)
    for alias in ("mlflow", "serving", "monitoring", "monitoring-ui"):
        container = auth_platform.container(alias)
        container.reload()
        inspected = json.dumps(container.attrs)
        logs = container.logs().decode(errors="replace")
        for name, secret in SECRETS.items():
            assert secret not in inspected, f"{name} in docker inspect of {alias}"
            assert secret not in logs, f"{name} in the logs of {alias}"
            assert secret not in outputs, f"{name} in the stack outputs"
    mode = auth_platform.container("mlflow").exec_run(["stat", "-c", "%a %u", "/home/app/basic_auth.ini"])
    assert mode.output.decode().split() == ["600", "10001"]
