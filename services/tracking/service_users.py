"""Create or update the platform's service users in MLflow's auth database, before the server starts.

Each section of the file named by `$SERVICE_USERS_FILE` (a secret uploaded by the stack) is one user:

    [monitoring]
    password = ...

A service user is not an admin and holds no grant on a registered model: the registry is where a release is
blessed (the gate's tags, the aliases deploy trusts), so a service user only reads it, by `default_permission`
(READ). What it creates (the monitoring job's experiment and runs, where its retrain requests live) MLflow
lets it manage. A registered-model grant left by an earlier version of the platform (the monitoring user
once had EDIT on the model) is revoked here, so an upgraded stack loses it at its next start.
Idempotent: run at every start.
"""

from __future__ import annotations

import configparser
import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

KEYS = {"password"}  # nothing else: a grant in the file would be the hole this closes


def provision(store: SqlAlchemyStore, users: configparser.ConfigParser) -> list[str]:
    """Each user as the file says, with every registered-model grant revoked; one line per user for the log."""
    check_keys(users)
    done = []
    for username in users.sections():
        password = users[username]["password"]
        if store.has_user(username):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password)
        grants = store.list_registered_model_permissions(username)
        for grant in grants:
            store.delete_registered_model_permission(grant.name, username)
        revoked = ", ".join(f"{grant.permission} on {grant.name}" for grant in grants)
        done.append(f"{username} (revoked {revoked})" if revoked else username)
    return done


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


def main() -> int:
    try:
        users = read_users(os.environ["SERVICE_USERS_FILE"])
    except OSError as exc:
        print(f"service users: {exc}", file=sys.stderr)
        return 1
    store = SqlAlchemyStore()
    store.init_db(read_auth_config().database_uri)
    try:
        done = provision(store, users)
    except MlflowException as exc:  # e.g. a password MLflow refuses: one clear line, no traceback
        print(f"service users: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"service users: {exc}", file=sys.stderr)
        return 1
    print(f"service users provisioned: {', '.join(done) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
