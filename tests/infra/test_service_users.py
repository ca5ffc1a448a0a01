"""The platform's service users as the stack declares them and as the tracking image provisions them
(services/tracking/service_users.py, into a real MLflow auth database).

The monitoring user's password reaches MLflow's auth database exactly as the job logs in with it: the stack
writes both files with `%` doubled (configparser), so both readers must interpolate. And it is granted nothing
on the registered model, where a release is blessed; a grant an older stack gave it is revoked at start.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils import credentials

from services.tracking.service_users import BackendResources, grant_teams, provision, read_team_grants, read_users
from tests.infra.program import DeclaredStack, run_program
from tests.infra.test_stack_program import AUTH_SECRETS, env_of
from tests.infra.test_team_access_program import MODELS as MODELS_OF_TEAMS
from tests.infra.test_team_access_program import TEAM_SECRETS
from tests.kubernetes.manifests import FULL, FULL_SECRETS, manifests, named

MODEL = "loan-default"


def docker_users_file(stack: DeclaredStack) -> str:
    tracking = stack.container("mlflow")
    return {u["file"]: u["content"] for u in tracking.plain["uploads"]}[env_of(tracking)["SERVICE_USERS_FILE"]]


def kubernetes_users_file(stack: DeclaredStack) -> str:
    return named(manifests(stack), "Secret", "mlflow-auth")["stringData"]["service_users.ini"]


@pytest.fixture(scope="module")
def users_files() -> dict[str, str]:
    """The users file each target declares, with auth on."""
    return {"docker": docker_users_file(run_program({"authEnabled": "true"}, AUTH_SECRETS)),
            "kubernetes": kubernetes_users_file(run_program(FULL, FULL_SECRETS))}


@pytest.fixture
def auth_store(tmp_path) -> SqlAlchemyStore:
    """MLflow's own auth store on a fresh SQLite database, as the tracking server's basic-auth app keeps it."""
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{tmp_path / 'basic_auth.db'}")
    return store


@pytest.mark.parametrize("password", ["100%-sure-%(x)s-%%-pw", "semi;colon#hash = eq-pw"])
def test_the_provisioned_password_is_the_one_the_job_sends(tmp_path, monkeypatch, password):
    stack = run_program({"authEnabled": "true"}, {**AUTH_SECRETS, "monitoringPassword": password})
    tracking, job = stack.container("mlflow"), stack.container("monitoring")
    uploads = {upload["file"]: upload["content"] for c in (tracking, job) for upload in c.plain["uploads"]}
    users_file, credentials_file = tmp_path / "service_users.ini", tmp_path / "credentials"
    users_file.write_text(uploads[env_of(tracking)["SERVICE_USERS_FILE"]])
    credentials_file.write_text(uploads["/home/app/.mlflow/credentials"])
    monkeypatch.setattr(credentials, "_get_credentials_path", lambda: str(credentials_file))

    assert credentials._read_mlflow_creds_from_file()[1] == password
    assert read_users(users_file)["monitoring"]["password"] == password


def test_an_unreadable_users_file_names_it(tmp_path):
    with pytest.raises(OSError, match="service_users.ini"):
        read_users(tmp_path / "service_users.ini")


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_the_monitoring_user_is_granted_nothing_on_the_registered_model(users_files, target, tmp_path, auth_store):
    users_file = tmp_path / "service_users.ini"
    users_file.write_text(users_files[target])
    assert set(read_users(users_file)["monitoring"]) == {"password"}

    provision(auth_store, read_users(users_file))

    assert auth_store.list_registered_model_permissions("monitoring") == []
    assert not auth_store.get_user("monitoring").is_admin


def test_provisioning_revokes_the_edit_grant_an_older_stack_gave(users_files, tmp_path, auth_store):
    """An upgraded stack: the auth database still holds the monitoring user's EDIT on the model."""
    auth_store.create_user("monitoring", "an-older-password-3c1f")
    auth_store.create_registered_model_permission(MODEL, "monitoring", "EDIT")
    users_file = tmp_path / "service_users.ini"
    users_file.write_text(users_files["docker"])

    first = provision(auth_store, read_users(users_file))
    again = provision(auth_store, read_users(users_file))

    assert auth_store.list_registered_model_permissions("monitoring") == []
    assert first == [f"monitoring (revoked EDIT on {MODEL})"] and again == ["monitoring"]
    assert auth_store.authenticate_user("monitoring", read_users(users_file)["monitoring"]["password"])


@pytest.mark.parametrize(("section", "message"), [
    (f"password = pw-long-enough-1234\nregistered_models = {MODEL}\n", "has unknown key(s) registered_models"),
    ("user = monitoring\n", "has no password"),
])
def test_a_users_file_with_a_grant_or_without_a_password_is_refused_before_any_change(
    tmp_path, auth_store, section, message
):
    users_file = tmp_path / "service_users.ini"
    users_file.write_text(f"[monitoring]\n{section}")
    with pytest.raises(ValueError, match=rf"\[monitoring\] {re.escape(message)}"):
        provision(auth_store, read_users(users_file))
    assert not auth_store.has_user("monitoring")


def test_each_team_gets_edit_on_its_models_and_experiments_and_loses_grants_on_another_teams(tmp_path, auth_store):
    """The files a stack with two teams declares, provisioned into real stores: MLflow's auth database and the
    tracking server's backend (where each team's registered model and experiment are created before it starts)."""
    stack = run_program({"authEnabled": "true", "models": MODELS_OF_TEAMS}, {**AUTH_SECRETS, **TEAM_SECRETS})
    tracking = stack.container("mlflow")
    files = {upload["file"]: upload["content"] for upload in tracking.plain["uploads"]}
    (tmp_path / "users.ini").write_text(files[env_of(tracking)["SERVICE_USERS_FILE"]])
    (tmp_path / "grants.ini").write_text(files[env_of(tracking)["TEAM_GRANTS_FILE"]])
    users, teams = read_users(tmp_path / "users.ini"), read_team_grants(tmp_path / "grants.ini")
    backend = BackendResources(f"sqlite:///{tmp_path / 'mlflow.db'}")
    auth_store.create_user("risk", "an-older-password-7d2a")
    auth_store.create_registered_model_permission("bike-rentals", "risk", "MANAGE")  # risk owned it once

    provision(auth_store, users, teams)
    done = grant_teams(auth_store, teams, backend)
    again = grant_teams(auth_store, teams, backend)  # every start

    assert done == again == ["team mobility: MANAGE on bike-rentals", "team risk: MANAGE on loan-default"]
    for team, model in (("risk", "loan-default"), ("mobility", "bike-rentals")):
        experiment = backend.tracking.get_experiment_by_name(model)
        assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
        assert backend.registry.get_registered_model(model).name == model
        assert [(g.name, g.permission) for g in auth_store.list_registered_model_permissions(team)] == [
            (model, "MANAGE")]  # a release drops its `challenger` alias, which EDIT may not
        assert [(g.experiment_id, g.permission) for g in auth_store.list_experiment_permissions(team)] == [
            (experiment.experiment_id, "EDIT")]
        assert not auth_store.get_user(team).is_admin
        assert auth_store.authenticate_user(team, TEAM_SECRETS[f"teamPassword.{team}"])
    assert auth_store.list_registered_model_permissions("monitoring") == []  # reads all, by default_permission


def test_a_team_with_grants_but_no_user_is_refused(tmp_path, auth_store):
    with pytest.raises(ValueError, match="team 'risk' has grants but no password"):
        grant_teams(auth_store, {"risk": ("loan-default",)}, BackendResources(f"sqlite:///{tmp_path / 'mlflow.db'}"))


def test_an_experiment_another_replica_made_meanwhile_is_taken_as_it_is():
    """Two MLflow replicas provision at once (kubernetes with postgres): the create that loses reads the winner's."""
    class RacedStore:
        looked = 0

        def get_experiment_by_name(self, name):
            self.looked += 1
            return None if self.looked == 1 else SimpleNamespace(experiment_id="7")

        def create_experiment(self, name):
            raise MlflowException(f"Experiment(name={name}) already exists")

    resources = BackendResources.__new__(BackendResources)
    resources.tracking = RacedStore()
    assert resources.experiment_id("audit") == "7"
