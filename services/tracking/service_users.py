"""Create or update the platform's service users in MLflow's auth database, before the server starts.

Each section of the file named by `$SERVICE_USERS_FILE` (a secret uploaded by the stack) is one user with its
`password`. A service user is not an admin and holds no registered-model grant (the registry is where a release is
blessed; one left by an earlier platform is revoked here): it reads by `default_permission` (READ).

Made here when absent, so that no user creates one first and holds MANAGE on it: the audit trail's experiments
(`$TEAM_SHARED_EXPERIMENTS`), with EDIT for every team and `$MONITORING_USER` (each appends records, none may delete
one; an edit is what the audit's hash chain catches); with teams, the monitoring job's experiments
(`$MONITORING_EXPERIMENTS`, MANAGE for that user) and each team's models (`$TEAM_GRANTS_FILE`: `[risk]` /
`models = loan-default, churn`): MANAGE on the registered model (a release drops its `challenger` alias, which EDIT
may not) and EDIT on its experiment (named as the model); a grant on another team's is revoked. What this made for
teams is recorded in `$TEAM_RECORD_FILE`: a team dropped since the last start loses what the record holds (its user
too when this made it), a model that left a team leaves it no grant; what an admin made by hand is never touched.
Idempotent: run at every start. docs/many-models.md ("Access per team") has the whole picture.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Protocol

from mlflow.exceptions import MlflowException
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.permissions import EDIT, MANAGE
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
    """MANAGE for each team on its models' registered models, EDIT on their experiments, and no grant on another
    team's; one line per team for the log."""
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
            _grant(store.get_registered_model_permission, store.update_registered_model_permission,
                   store.create_registered_model_permission, model, team, MANAGE.name)
        for model in models:
            _grant(store.get_experiment_permission, store.update_experiment_permission,
                   store.create_experiment_permission, experiments[model], team, EDIT.name)
        done.append(f"team {team}: MANAGE on {', '.join(models)}")
    return done


def _grant(get, update, create, resource: str, username: str, permission: str) -> None:
    """`permission` for `username` on `resource`, whatever it held there before."""
    try:
        get(resource, username)
    except MlflowException:  # RESOURCE_DOES_NOT_EXIST: no grant yet
        create(resource, username, permission)
    else:
        update(resource, username, permission)


def grant_service_experiments(store: SqlAlchemyStore, grants: Mapping[str, Collection[str]],
                              resources: Resources) -> list[str]:
    """MANAGE for each service user on the experiments it records in, made here when absent; one line per user."""
    for user, names in grants.items():
        for name in names:
            _grant(store.get_experiment_permission, store.update_experiment_permission,
                   store.create_experiment_permission, resources.experiment_id(name), user, MANAGE.name)
    return [f"{user}: MANAGE on experiment(s) {', '.join(names)}" for user, names in grants.items() if names]


def grant_appends(store: SqlAlchemyStore, users: Collection[str], shared: Collection[str],
                  resources: Resources) -> list[str]:
    """EDIT for each user (every team, the monitoring user) on the `shared` experiments (the audit trail's), made here
    when absent so that no user owns them: each appends runs, none may delete one; one line per user."""
    shared_ids = [resources.experiment_id(name) for name in shared]
    for user in users:
        for experiment_id in shared_ids:
            _grant(store.get_experiment_permission, store.update_experiment_permission,
                   store.create_experiment_permission, experiment_id, user, EDIT.name)
    return [f"{user}: EDIT on experiment(s) {', '.join(shared)}" for user in users]


def team_record(teams: Mapping[str, tuple[str, ...]], resources: Resources, shared: Collection[str],
                created: Collection[str]) -> dict[str, dict]:
    """What `grant_teams` granted each team (experiments by id: a name can be reused), and whether this made its
    user (those in `created`)."""
    shared_ids = [resources.experiment_id(name) for name in shared]
    return {team: {"user_created": team in created, "registered_models": sorted(models),
                   "experiments": sorted({*(resources.experiment_id(model) for model in models), *shared_ids})}
            for team, models in teams.items()}


def revoke_stale(store: SqlAlchemyStore, before: Mapping[str, Mapping], now: Mapping[str, Mapping]) -> list[str]:
    """Revoke each grant `before` records that `now` does not; delete a dropped team's user this created. One line
    per team that lost something, for the log. Users and grants an admin made by hand are in neither record."""
    done = []
    for team, made in before.items():
        if not store.has_user(team):
            continue  # an admin removed it already
        if team not in now and made.get("user_created"):
            store.delete_user(team)  # with every grant it held
            done.append(f"team {team}: dropped, its user deleted")
            continue
        kept = now.get(team, {})
        models = sorted(set(made.get("registered_models", ())) - set(kept.get("registered_models", ())))
        experiments = sorted(set(made.get("experiments", ())) - set(kept.get("experiments", ())))
        for model in models:
            _revoke(store.get_registered_model_permission, store.delete_registered_model_permission, model, team)
        for experiment_id in experiments:
            _revoke(store.get_experiment_permission, store.delete_experiment_permission, experiment_id, team)
        if models or experiments:
            done.append(f"team {team}: revoked on {', '.join(models) or 'no model'}"
                        f" and {len(experiments)} experiment(s)")
    return done


def _revoke(get, delete, resource: str, username: str) -> None:
    try:
        get(resource, username)
    except MlflowException:  # no grant there (an admin revoked it already)
        return
    delete(resource, username)


def read_record(path: str | os.PathLike[str]) -> dict[str, dict]:
    """The record of an earlier start; none before the first."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        record = None
    teams = record.get("teams") if isinstance(record, dict) else None
    if not isinstance(teams, dict) or not all(isinstance(made, dict) for made in teams.values()):
        raise ValueError(f"{path} is not the JSON this provisioner writes; remove it to start a new record (a team "
                         "dropped before then keeps its grants until an admin revokes them)")
    return teams


def write_record(path: str | os.PathLike[str], record: Mapping[str, Mapping]) -> None:
    """Written whole, then moved into place: a crash leaves the earlier record, never half of one."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        json.dump({"teams": record}, out, indent=1, sort_keys=True)
    os.replace(partial, path)


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
        if found is not None:
            return found.experiment_id
        try:
            return self.tracking.create_experiment(name)
        except MlflowException:  # another replica's start made it first (both provision at once on kubernetes)
            again = self.tracking.get_experiment_by_name(name)
            if again is None:
                raise
            return again.experiment_id

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


def provision_all(store: SqlAlchemyStore, users: configparser.ConfigParser, teams: Mapping[str, tuple[str, ...]],
                  backend_uri: str, record_file: str | None, shared: Collection[str] = (),
                  service_experiments: Mapping[str, Collection[str]] | None = None) -> list[str]:
    """Users, teams' grants (on their models and the `shared` experiments), the service users' experiments and,
    with `record_file`, the revocation of what an earlier start granted and this one does not, and the record of
    this one's."""
    before = read_record(record_file) if record_file else {}
    # A team's user this provisioner makes now, or made at an earlier start; not one an admin made by hand.
    created = {team for team in teams if before.get(team, {}).get("user_created") or not store.has_user(team)}
    done = provision(store, users, teams)
    now: dict[str, dict] = {}
    resources = BackendResources(backend_uri) if backend_uri else None
    if teams:
        assert resources is not None, "main() refuses teams without the backend URI"
        done += grant_teams(store, teams, resources)
        done += grant_service_experiments(store, service_experiments or {}, resources)
        now = team_record(teams, resources, shared, created)
    if shared and resources is not None:  # every release and the monitoring job append to the audit trail
        done += grant_appends(store, [*teams, *(service_experiments or {})], shared, resources)
    if record_file:
        done += revoke_stale(store, before, now)
        write_record(record_file, now)
    return done


def _names(variable: str) -> list[str]:
    """A comma-separated list of experiment names in the env variable (none when unset)."""
    return [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]


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
        monitoring = {os.environ["MONITORING_USER"]: _names("MONITORING_EXPERIMENTS")} \
            if "MONITORING_USER" in os.environ else {}
        done = provision_all(store, users, teams, argv[0] if argv else "", os.environ.get("TEAM_RECORD_FILE"),
                             _names("TEAM_SHARED_EXPERIMENTS"), monitoring)
    except MlflowException as exc:  # e.g. a password MLflow refuses: one clear line, no traceback
        print(f"service users: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # e.g. the record cannot be read or written
        print(f"service users: {exc}", file=sys.stderr)
        return 1
    print(f"service users provisioned: {', '.join(done) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
