"""Revocation of team access at the tracking server's start (services/tracking/service_users.py): what an earlier
start granted a team and this one does not is revoked, from the record the provisioner keeps on the tracking volume;
users and grants an admin made by hand are never touched. Real stores: MLflow's auth database and backend (SQLite).
"""

from __future__ import annotations

import configparser

import pytest
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

from services.contract import AUDIT_EXPERIMENT
from services.tracking.service_users import BackendResources, main, provision_all

PASSWORDS = {"monitoring": "monitoring-pw-0e4b", "risk": "risk-password-93fa", "mobility": "mobility-pw-27c8"}


@pytest.fixture
def stores(tmp_path) -> tuple[SqlAlchemyStore, BackendResources]:
    auth = SqlAlchemyStore()
    auth.init_db(f"sqlite:///{tmp_path / 'basic_auth.db'}")
    return auth, BackendResources(f"sqlite:///{tmp_path / 'mlflow.db'}")


def start(stores, tmp_path, teams: dict[str, tuple[str, ...]]) -> list[str]:
    """One start of the tracking container: the users file holds the monitoring user and the teams named."""
    auth, _ = stores
    users = configparser.ConfigParser()
    users.read_dict({user: {"password": PASSWORDS[user]} for user in ("monitoring", *teams)})
    return provision_all(auth, users, teams, f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "record.json"),
                         [AUDIT_EXPERIMENT])


def grants(auth: SqlAlchemyStore, backend: BackendResources, user: str) -> set[str]:
    names = {backend.tracking.get_experiment(g.experiment_id).name for g in auth.list_experiment_permissions(user)}
    return {f"model {g.name} {g.permission}" for g in auth.list_registered_model_permissions(user)} | {
        f"experiment {name}" for name in names}


def test_a_dropped_team_loses_its_user_and_an_admins_own_user_keeps_its_grants(stores, tmp_path):
    auth, backend = stores
    auth.create_user("alice", "alice-by-hand-pw-81c2")  # an admin's own user, with a grant of its own
    auth.create_registered_model_permission("loan-default", "alice", "READ")
    start(stores, tmp_path, {"risk": ("loan-default",), "mobility": ("bike-rentals",)})
    assert grants(auth, backend, "risk") == {"model loan-default MANAGE", "experiment loan-default",
                                             f"experiment {AUDIT_EXPERIMENT}"}

    done = start(stores, tmp_path, {"mobility": ("bike-rentals",)})

    assert "team risk: dropped, its user deleted" in done and not auth.has_user("risk")
    assert grants(auth, backend, "mobility") == {"model bike-rentals MANAGE", "experiment bike-rentals",
                                                 f"experiment {AUDIT_EXPERIMENT}"}
    assert grants(auth, backend, "alice") == {"model loan-default READ"}
    assert not [line for line in start(stores, tmp_path, {"mobility": ("bike-rentals",)}) if "revoked" in line]


def test_the_last_team_dropped_leaves_no_team_user(stores, tmp_path):
    auth, _ = stores
    start(stores, tmp_path, {"risk": ("loan-default",)})
    start(stores, tmp_path, {})  # no team left: no grants file, the record alone says what to revoke
    assert not auth.has_user("risk") and auth.has_user("monitoring")


def test_a_model_that_leaves_a_team_leaves_it_no_grant(stores, tmp_path):
    auth, backend = stores
    start(stores, tmp_path, {"risk": ("loan-default", "churn", "fraud")})

    # churn now has no team; fraud moved to mobility.
    done = start(stores, tmp_path, {"risk": ("loan-default",), "mobility": ("fraud",)})

    assert grants(auth, backend, "risk") == {"model loan-default MANAGE", "experiment loan-default",
                                             f"experiment {AUDIT_EXPERIMENT}"}
    assert "model fraud MANAGE" in grants(auth, backend, "mobility")
    assert any(line.startswith("team risk: revoked on churn") for line in done), done


def test_a_team_user_an_admin_made_by_hand_keeps_its_login_but_loses_the_teams_grants(stores, tmp_path):
    auth, backend = stores
    auth.create_user("risk", "risk-by-hand-pw-4f0a")  # before any team start: not the provisioner's user
    start(stores, tmp_path, {"risk": ("loan-default",)})
    start(stores, tmp_path, {"risk": ("loan-default",)})  # a later start remembers who made it

    start(stores, tmp_path, {})

    assert auth.has_user("risk") and grants(auth, backend, "risk") == set()


@pytest.mark.parametrize("written", ["{not json", '{"teams": {"risk": 3}}', "[]", '{"teams": []}'])
def test_an_unreadable_record_stops_the_start_naming_the_file(tmp_path, monkeypatch, capsys, written):
    (tmp_path / "record.json").write_text(written)
    (tmp_path / "users.ini").write_text("[monitoring]\npassword = monitoring-pw-0e4b\n")
    (tmp_path / "auth.ini").write_text(f"[mlflow]\ndatabase_uri = sqlite:///{tmp_path / 'basic_auth.db'}\n"
                                       "default_permission = READ\nadmin_username = admin\n"
                                       "admin_password = admin-password-5d1c\n")
    monkeypatch.setenv("SERVICE_USERS_FILE", str(tmp_path / "users.ini"))
    monkeypatch.setenv("TEAM_RECORD_FILE", str(tmp_path / "record.json"))
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "auth.ini"))

    assert main([]) == 1
    assert f"{tmp_path / 'record.json'} is not the JSON" in capsys.readouterr().err
