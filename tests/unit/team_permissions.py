"""Run in its own process by test_team_permissions.py: MLflow's own basic-auth app (in process, Flask's test client,
no server), its users and grants provisioned by services/tracking/service_users.py as the tracking image does before
the server starts. Prints what each request answered, as JSON. Its own process, because MLflow's server app and its
stores are module globals that read their settings from the env once.

    python -m tests.unit.team_permissions <empty directory>
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

ADMIN = ("admin", "admin-password-5d1c")
USERS = {"monitoring": "monitoring-pw-0e4b", "risk": "risk-password-93fa", "mobility": "mobility-pw-27c8"}
TEAMS = {"risk": ("loan-default",), "mobility": ("bike-rentals",)}


def _server_env(state: Path, backend: str) -> None:
    (state / "basic_auth.ini").write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{state / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    os.environ.update({  # what `mlflow server --serve-artifacts --app-name basic-auth` hands its app
        "_MLFLOW_SERVER_FILE_STORE": backend, "_MLFLOW_SERVER_REGISTRY_STORE": backend,
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/", "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": str(state / "artifacts"), "MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-test-only-flask-key",
        "MLFLOW_AUTH_CONFIG_PATH": str(state / "basic_auth.ini"), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def _delete(client, user: str, password: str, body: dict) -> int:
    """DELETE of an alias (the release drops `challenger` once it serves): its status."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return client.delete("/api/2.0/mlflow/registered-models/alias", json=body, headers=headers).status_code


def main(state: Path) -> dict[str, int]:
    backend = f"sqlite:///{state / 'mlflow.db'}"
    _server_env(state, backend)
    subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", backend], check=True, capture_output=True)
    from mlflow.server import app
    from mlflow.server.auth import create_app
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from services.contract import AUDIT_EXPERIMENT, MONITORING_EXPERIMENT
    from services.tracking.service_users import provision_all

    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{state / 'basic_auth.db'}")
    users = configparser.ConfigParser()
    users.read_dict({user: {"password": password} for user, password in USERS.items()})
    provision_all(store, users, TEAMS, backend, None, (AUDIT_EXPERIMENT,), {"monitoring": (MONITORING_EXPERIMENT,)})
    client = create_app(app).test_client()

    def call(user: str, route: str, body: dict, get: bool = False) -> tuple[int, dict]:
        password = ADMIN[1] if user == ADMIN[0] else USERS[user]
        headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        url = f"/api/2.0/mlflow/{route}"
        answer = client.get(url, query_string=body, headers=headers) if get else client.post(url, json=body,
                                                                                               headers=headers)
        return answer.status_code, answer.get_json(silent=True) or {}

    made = ("loan-default", "bike-rentals", AUDIT_EXPERIMENT, MONITORING_EXPERIMENT)  # all at the server's start
    experiment = {name: call("admin", "experiments/get-by-name", {"experiment_name": name}, get=True)[1]
                  ["experiment"]["experiment_id"] for name in made}
    b_run = call("admin", "runs/create", {"experiment_id": experiment["loan-default"]})[1]["run"]["info"]["run_id"]
    status = {"admin: a version of risk's model": call("admin", "model-versions/create", {
        "name": "loan-default", "source": f"runs:/{b_run}/model", "run_id": b_run})[0]}
    code, body = call("mobility", "runs/create", {"experiment_id": experiment["bike-rentals"]})
    status["mobility: a run in its experiment"] = code
    run = body["run"]["info"]["run_id"]
    version = {"source": f"runs:/{run}/model", "run_id": run}
    code, body = call("mobility", "runs/create", {"experiment_id": experiment[AUDIT_EXPERIMENT]})
    status["mobility: an audit record"] = code
    record = body["run"]["info"]["run_id"]
    status |= {
        "mobility: creating the audit experiment first": call("mobility", "experiments/create",
                                                              {"name": AUDIT_EXPERIMENT})[0],
        "mobility: tagging its audit record": call("mobility", "runs/set-tag", {
            "run_id": record, "key": "audit.model", "value": "bike-rentals"})[0],
        "mobility: deleting its audit record": call("mobility", "runs/delete", {"run_id": record})[0],
        "mobility: creating the monitoring experiment first": call("mobility", "experiments/create",
                                                                   {"name": MONITORING_EXPERIMENT})[0],
        "mobility: a run in the monitoring experiment": call("mobility", "runs/create", {
            "experiment_id": experiment[MONITORING_EXPERIMENT]})[0],
        "monitoring: a report run": call("monitoring", "runs/create", {
            "experiment_id": experiment[MONITORING_EXPERIMENT]})[0],
        "risk: an audit record": call("risk", "runs/create", {"experiment_id": experiment[AUDIT_EXPERIMENT]})[0],
        "mobility: a version of its model": call("mobility", "model-versions/create",
                                                 {"name": "bike-rentals", **version})[0],
        "mobility: its model's alias": call("mobility", "registered-models/alias",
                                            {"name": "bike-rentals", "alias": "challenger", "version": "1"})[0],
        "mobility: dropping its model's alias": _delete(client, "mobility", USERS["mobility"], {
            "name": "bike-rentals", "alias": "challenger"}),
        "mobility: a run in risk's experiment": call("mobility", "runs/create",
                                                     {"experiment_id": experiment["loan-default"]})[0],
        "mobility: a version of risk's model": call("mobility", "model-versions/create",
                                                    {"name": "loan-default", **version})[0],
        "mobility: dropping risk's model's alias": _delete(client, "mobility", USERS["mobility"], {
            "name": "loan-default", "alias": "champion"}),
        "mobility: risk's model's alias": call("mobility", "registered-models/alias",
                                               {"name": "loan-default", "alias": "champion", "version": "1"})[0],
        "mobility: creating risk's model first": call("mobility", "registered-models/create",
                                                      {"name": "loan-default"})[0],
        "mobility: reading risk's model": call("mobility", "registered-models/get", {"name": "loan-default"},
                                               get=True)[0],
        "risk: a run in mobility's experiment": call("risk", "runs/create",
                                                     {"experiment_id": experiment["bike-rentals"]})[0],
        "risk: a run in its experiment": call("risk", "runs/create", {"experiment_id": experiment["loan-default"]})[0],
        "monitoring: reading both models": max(call("monitoring", "registered-models/get", {"name": model},
                                                    get=True)[0] for model in ("loan-default", "bike-rentals")),
    }
    code, body = call("monitoring", "runs/create", {"experiment_id": experiment[AUDIT_EXPERIMENT]})
    status |= {"monitoring: a record in the audit trail": code,
               "monitoring: deleting an audit record": call("monitoring", "runs/delete",
                                                            {"run_id": body["run"]["info"]["run_id"]})[0]}
    return status


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
