"""Create or update the platform's service users in MLflow's auth database, before the server starts.

Each section of the file named by `$SERVICE_USERS_FILE` (a secret uploaded by the stack) is one user:

    [monitoring]
    password = ...
    registered_models = loan-default      ; EDIT: the retrain-request tags on the registered model

A service user is not an admin; `default_permission` (READ) covers what it reads, and what it creates
(the monitoring job's experiment and runs) MLflow lets it manage. Idempotent: run at every start.
"""

from __future__ import annotations

import configparser
import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

EDIT = "EDIT"


def provision(store: SqlAlchemyStore, users: configparser.ConfigParser) -> list[str]:
    done = []
    for username in users.sections():
        password = users[username]["password"]
        if store.has_user(username):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password)
        for model in filter(None, users[username].get("registered_models", "").split()):
            try:
                store.create_registered_model_permission(model, username, EDIT)
            except MlflowException:  # granted at an earlier start
                store.update_registered_model_permission(model, username, EDIT)
        done.append(username)
    return done


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
    print(f"service users provisioned: {', '.join(done) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
