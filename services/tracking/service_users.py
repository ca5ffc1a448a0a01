"""Create or update the platform's service users in MLflow's auth database, before the server starts.

Each section of the file named by `$SERVICE_USERS_FILE` (a secret uploaded by the stack) is one user:

    [monitoring]
    password = ...

A service user is not an admin and holds no grant on a registered model: the registry is where a release is
blessed (the gate's tags, the aliases deploy trusts), so a service user only reads it, by `default_permission`
(READ). What it creates (the monitoring job's experiment and runs, where its retrain requests live) MLflow
lets it manage. A registered-model grant left by an earlier version of the platform (the monitoring user
once had EDIT on the model) is revoked here, so an upgraded stack loses it at its next start.

A team's user (a section of the users file too, with its password only) owns the models the file named by
`$TEAM_GRANTS_FILE` lists for it (`[risk]` / `models = loan-default, churn`): it gets EDIT on each one's registered
model and on its experiment (named as the model), both created here when absent so that no other user can create
them first and hold MANAGE; a grant it holds on another team's model or experiment is revoked. It creates runs
and versions of its own models only: by `default_permission` (READ) it reads the rest and writes nothing there.
Idempotent: run at every start.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Collection, Mapping
from typing import Protocol

from mlflow.exceptions import MlflowException
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.permissions import EDIT
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
from mlflow.store.tracking import DEFAULT_ARTIFACTS_URI
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

KEYS = {"password"}  # nothing else: a grant in the file would be the hole this closes


class Resources(Protocol):
    """Where a team's models live: each model's experiment and registered model, created when absent."""

    def experiment_id(self, name: str) -> str: ...

    def ensure_registered_model(self, name: str) -> None: ...


def provision(store: SqlAlchemyStore, users: configparser.ConfigParser, teams: Collection[str] = ()) -> list[str]:
    """Each user as the file says, with every registered-model grant revoked but a team's (`grant_teams` sets
    those); one line per user for the log."""
    check_keys(users)
    done = []
    for username in users.sections():
        password = users[username]["password"]
        if store.has_user(username):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password)
        grants = [] if username in teams else store.list_registered_model_permissions(username)
        for grant in grants:
            store.delete_registered_model_permission(grant.name, username)
        revoked = ", ".join(f"{grant.permission} on {grant.name}" for grant in grants)
        done.append(f"{username} (revoked {revoked})" if revoked else username)
    return done


def grant_teams(store: SqlAlchemyStore, teams: Mapping[str, tuple[str, ...]], resources: Resources) -> list[str]:
    """EDIT for each team on its models' registered models and experiments, and no grant on another team's; one
    line per team for the log."""
    owned = {model: team for team, models in teams.items() for model in models}
    experiments = {model: resources.experiment_id(model) for model in owned}
    done = []
    for team, models in teams.items():
        if not store.has_user(team):
            raise ValueError(f"team {team!r} has grants but no password in the users file")
        for grant in store.list_registered_model_permissions(team):
            if owned.get(grant.name, team) != team:
                store.delete_registered_model_permission(grant.name, team)
        others = {experiments[model] for model, owner in owned.items() if owner != team}
        for grant in store.list_experiment_permissions(team):
            if grant.experiment_id in others:
                store.delete_experiment_permission(grant.experiment_id, team)
        for model in models:
            resources.ensure_registered_model(model)
            _grant_edit(store.get_registered_model_permission, store.update_registered_model_permission,
                        store.create_registered_model_permission, model, team)
            _grant_edit(store.get_experiment_permission, store.update_experiment_permission,
                        store.create_experiment_permission, experiments[model], team)
        done.append(f"team {team}: EDIT on {', '.join(models)}")
    return done


def _grant_edit(get, update, create, resource: str, username: str) -> None:
    """EDIT for `username` on `resource`, whatever it held there before."""
    try:
        get(resource, username)
    except MlflowException:  # RESOURCE_DOES_NOT_EXIST: no grant yet
        create(resource, username, EDIT.name)
    else:
        update(resource, username, EDIT.name)


def read_team_grants(path: str | os.PathLike[str]) -> dict[str, tuple[str, ...]]:
    """The grants file: each team's models."""
    grants = configparser.ConfigParser()
    if not grants.read(path):
        raise OSError(f"cannot read {path}")
    return {team: tuple(m.strip() for m in grants[team].get("models", "").split(",") if m.strip())
            for team in grants.sections()}


class BackendResources:
    """The tracking server's own stores on its backend URI (before the server starts)."""

    def __init__(self, backend_uri: str) -> None:
        # Served artifacts: the server's default root, so the experiment's artifacts go through its proxy.
        self.tracking = TrackingStore(backend_uri, DEFAULT_ARTIFACTS_URI)
        self.registry = RegistryStore(backend_uri)

    def experiment_id(self, name: str) -> str:
        found = self.tracking.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.tracking.create_experiment(name)

    def ensure_registered_model(self, name: str) -> None:
        try:
            self.registry.get_registered_model(name)
        except MlflowException:
            self.registry.create_registered_model(name)


def check_keys(users: configparser.ConfigParser) -> None:
    """Every section holds exactly `KEYS`; else a ValueError naming the section and key, before anything changes."""
    for username in users.sections():
        if missing := sorted(KEYS - set(users[username])):
            raise ValueError(f"[{username}] has no {', '.join(missing)}")
        if unknown := sorted(set(users[username]) - KEYS):
            raise ValueError(f"[{username}] has unknown key(s) {', '.join(unknown)}: a service user has only a "
                             "password (it reads the registry and writes what it creates)")


def read_users(path: str | os.PathLike[str]) -> configparser.ConfigParser:
    """The users file, read as MLflow reads the job's credentials file: with '%%' standing for '%'."""
    users = configparser.ConfigParser()
    if not users.read(path):
        raise OSError(f"cannot read {path}")
    return users


def main(argv: list[str]) -> int:
    """`service_users.py [<backend store URI>]`: the URI is needed when `$TEAM_GRANTS_FILE` names teams."""
    grants_file = os.environ.get("TEAM_GRANTS_FILE")
    try:
        users = read_users(os.environ["SERVICE_USERS_FILE"])
        teams = read_team_grants(grants_file) if grants_file else {}
    except OSError as exc:
        print(f"service users: {exc}", file=sys.stderr)
        return 1
    if teams and not argv:
        print("service users: teams need the backend store URI as the argument", file=sys.stderr)
        return 2
    store = SqlAlchemyStore()
    store.init_db(read_auth_config().database_uri)
    try:
        done = provision(store, users, teams)
        if teams:
            done = [*done, *grant_teams(store, teams, BackendResources(argv[0]))]
    except MlflowException as exc:  # e.g. a password MLflow refuses: one clear line, no traceback
        print(f"service users: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"service users: {exc}", file=sys.stderr)
        return 1
    print(f"service users provisioned: {', '.join(done) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
