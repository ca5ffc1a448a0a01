"""With auth on, the monitoring job's own MLflow user does its job and cannot bless a model (issue 18, item 4).

A real `mlflow server --app-name basic-auth`, its users provisioned as the tracking image does before the
server starts (services/tracking/service_users.py on the users file the stack declares), over an auth
database in which an older stack had granted the monitoring user EDIT on the registered model: an upgrade.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from pipelines import platform
from pipelines.processes import Process
from pipelines.registry import (
    CHALLENGER,
    CHAMPION,
    GIT_SHA_TAG,
    ONNX_SHA256_TAG,
    PREVIOUS,
    RUN_ID_TAG,
    VALIDATION_OVERRIDE_TAG,
    VALIDATION_TAG,
)
from services.contract import DATA_VERSION_TAG, SERVING_RUNTIME_TAG
from services.monitoring.drift import Verdict
from services.monitoring.job import run_once
from services.monitoring.retrain import last_retrain_request
from tests.infra.program import run_program
from tests.infra.test_service_users import MODEL, docker_users_file
from tests.infra.test_stack_program import AUTH_SECRETS
from tests.integration.test_monitoring import (
    TrainedModel,
    _holdout_draw,
    _log_traffic,
    _settings,
    _shifted,
    _train_like_the_release,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "admin-pw-for-this-test-5e21")
# Every registry write a release trusts: the tags deploy, bento and promote read off a version.
RELEASE_TAGS = (VALIDATION_TAG, VALIDATION_OVERRIDE_TAG, ONNX_SHA256_TAG, SERVING_RUNTIME_TAG, DATA_VERSION_TAG,
                GIT_SHA_TAG, RUN_ID_TAG)
RELEASE_ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)


@dataclass(frozen=True)
class AuthServer:
    url: str
    monitoring: tuple[str, str]

    @property
    def api(self) -> str:
        return f"{self.url}/api/2.0/mlflow"


def _auth_config(directory: Path) -> Path:
    path = directory / "basic_auth.ini"
    path.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{directory / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def _as_an_older_stack_left_it(directory: Path) -> None:
    """The auth database of a stack from before this fix: the monitoring user with EDIT on the model."""
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{directory / 'basic_auth.db'}")
    store.create_user("monitoring", "an-older-password-9b3e")
    store.create_registered_model_permission(MODEL, "monitoring", "EDIT")


@pytest.fixture(scope="module")
def auth_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    state = tmp_path_factory.mktemp("auth-mlflow")
    auth_config = _auth_config(state)
    _as_an_older_stack_left_it(state)
    users_file = state / "service_users.ini"
    users_file.write_text(docker_users_file(run_program({"authEnabled": "true"}, AUTH_SECRETS)))
    users_file.chmod(0o600)
    provisioned = subprocess.run(
        [sys.executable, str(REPO_ROOT / "services/tracking/service_users.py")], capture_output=True, text=True,
        env={**os.environ, "SERVICE_USERS_FILE": str(users_file), "MLFLOW_AUTH_CONFIG_PATH": str(auth_config)},
        timeout=120)
    assert provisioned.returncode == 0, provisioned.stderr
    assert f"monitoring (revoked EDIT on {MODEL})" in provisioned.stderr

    port, backend = platform.free_port(), f"sqlite:///{state / 'mlflow.db'}"
    platform.prepare_backend_store(backend)
    process = Process("mlflow", state)
    url = f"http://127.0.0.1:{port}"
    platform.serve_once(
        process,
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", backend, "--serve-artifacts",
         "--artifacts-destination", str(state / "artifacts"), "--workers", "1"],
        host="127.0.0.1", port=port, port_setting="-", probe=f"{url}/health", timeout_s=120,
        what="MLflow with basic auth",
        env={"MLFLOW_AUTH_CONFIG_PATH": str(auth_config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    try:
        yield AuthServer(url, ("monitoring", AUTH_SECRETS["monitoringPassword"]))
    finally:
        process.stop()


@contextmanager
def logged_in(user: tuple[str, str]) -> Iterator[None]:
    """MLflow clients in this process send `user`'s credentials, as the job's do from its credentials file."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
        yield


@pytest.fixture(scope="module")
def champion(auth_mlflow: AuthServer) -> TrainedModel:
    """The stack's model, trained and registered by the admin as a release does: v1 @champion."""
    with logged_in(ADMIN):
        return _train_like_the_release(auth_mlflow.url, MODEL)


def _release_writes(url: str, trained: TrainedModel) -> list[tuple[str, str, dict[str, str]]]:
    """(method, route, body) of each write that blesses or moves a release, in an order the admin can replay."""
    version = {"name": MODEL, "version": trained.version}
    with logged_in(ADMIN):
        registered = MlflowClient(url).get_model_version(MODEL, trained.version)
    # As mlflow.register_model sends it: the logged model's id is the source's `models:/<id>`.
    new_version = {"name": MODEL, "source": registered.source, "run_id": registered.run_id,
                   "model_id": registered.source.removeprefix("models:/")}
    return [
        # The admin's replay keeps a tag training set (data_version...) as it was.
        *(("POST", "model-versions/set-tag", {**version, "key": key, "value": registered.tags.get(key, "passed")})
          for key in RELEASE_TAGS),
        ("DELETE", "model-versions/delete-tag", {**version, "key": VALIDATION_TAG}),
        # champion last, to the version it is on: after the admin's replay the serving alias is as it was
        *(("POST", "registered-models/alias", {**version, "alias": alias}) for alias in reversed(RELEASE_ALIASES)),
        *(("DELETE", "registered-models/alias", {"name": MODEL, "alias": alias}) for alias in (CHALLENGER, PREVIOUS)),
        ("POST", "registered-models/set-tag", {"name": MODEL, "key": "retrain_status", "value": "requested"}),
        ("POST", "model-versions/create", new_version),  # a version the gate never saw
    ]


def registry_state(url: str) -> tuple[object, ...]:
    """The model's tags and aliases and every version's tags, as the admin reads them."""
    with logged_in(ADMIN):
        client = MlflowClient(url)
        model = client.get_registered_model(MODEL)
        versions = client.search_model_versions(f"name = '{MODEL}'")
    return model.tags, model.aliases, sorted((v.version, v.tags) for v in versions)


def test_the_monitoring_user_is_refused_on_every_release_tag_and_alias(auth_mlflow, champion):
    for method, route, body in _release_writes(auth_mlflow.url, champion):
        before = registry_state(auth_mlflow.url)
        refused = httpx.request(method, f"{auth_mlflow.api}/{route}", json=body, auth=auth_mlflow.monitoring,
                                timeout=30)
        assert refused.status_code == 403, f"monitoring {method} {route} {body}: {refused.status_code} {refused.text}"
        assert registry_state(auth_mlflow.url) == before  # nothing moved
        # The same request from a user who may edit the model goes through: it is the permission that refuses.
        allowed = httpx.request(method, f"{auth_mlflow.api}/{route}", json=body, auth=ADMIN, timeout=30)
        assert allowed.status_code == 200, f"admin {method} {route}: {allowed.text}"


def test_the_monitoring_user_still_reads_the_champion_and_records_drift_with_a_retrain_request(
    auth_mlflow, champion, tmp_path
):
    settings = _settings(auth_mlflow.url, MODEL, tmp_path)
    _log_traffic(settings.inference_log_dir, MODEL, _shifted(_holdout_draw(champion, 600, seed=21)))

    with logged_in(auth_mlflow.monitoring):
        client = MlflowClient(auth_mlflow.url)
        assert client.get_model_version_by_alias(MODEL, CHAMPION).version == champion.version
        result = run_once(settings)  # reads the champion's snapshot, records its report run, asks for a retrain
        request = last_retrain_request(client, settings.policy.experiment, MODEL)

    assert result.verdict is Verdict.DRIFT and result.retrain_requested, result.summary
    assert request is not None and request.is_open and request.run_id == result.mlflow_run_id
    assert (request.model_version, request.data_version) == (champion.version, champion.data_version)
    with logged_in(auth_mlflow.monitoring):
        assert client.list_artifacts(result.mlflow_run_id, "report")  # its HTML report reached the artifact store

