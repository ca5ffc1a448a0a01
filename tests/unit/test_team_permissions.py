"""Access per team in MLflow (issue 21): the grants services/tracking/service_users.py provisions, enforced by
MLflow's own basic-auth app. A team writes runs, versions and aliases of its own model only (403 at the other
team's), cannot create the other team's registered model first (it exists from the server's start), reads the
rest by `default_permission` READ, as the monitoring user does (tests/unit/team_permissions.py runs it)."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines.config import REPO_ROOT

EXPECTED = {
    "admin: a version of risk's model": 200,
    "mobility: a run in its experiment": 200,
    "mobility: a version of its model": 200,
    "mobility: its model's alias": 200,
    "mobility: dropping its model's alias": 200,  # deploy drops `challenger` once it serves: MANAGE on its model
    "mobility: an audit record": 200,  # the audit experiment, made at the server's start: EDIT for every team
    "mobility: creating the audit experiment first": 400,  # RESOURCE_ALREADY_EXISTS: no team can own (MANAGE) it
    "mobility: tagging its audit record": 200,
    "mobility: deleting its audit record": 403,  # EDIT cannot delete runs: a record stays (edits break the chain)
    "risk: an audit record": 200,
    "mobility: creating the monitoring experiment first": 400,  # made at start too: the monitoring job's (MANAGE)
    "mobility: a run in the monitoring experiment": 403,
    "monitoring: a report run": 200,
    "mobility: dropping risk's model's alias": 403,
    "mobility: a run in risk's experiment": 403,
    "mobility: a version of risk's model": 403,
    "mobility: risk's model's alias": 403,
    "mobility: creating risk's model first": 400,  # RESOURCE_ALREADY_EXISTS: made before the server started
    "mobility: reading risk's model": 200,
    "risk: a run in mobility's experiment": 403,
    "risk: a run in its experiment": 200,
    "monitoring: reading both models": 200,
    "monitoring: a record in the audit trail": 200,  # its retrain requests: EDIT, as a team's
    "monitoring: deleting an audit record": 403,
}


def test_a_team_writes_to_its_own_model_only_and_reads_the_rest(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tests.unit.team_permissions", str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == EXPECTED


def test_without_teams_the_monitoring_user_may_append_to_the_audit_trail_made_at_start(tmp_path):
    """Its retrain requests are audit records: EDIT on the audit experiment, which no user creates (or owns) first."""
    import configparser

    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from services.contract import AUDIT_EXPERIMENT
    from services.tracking.service_users import BackendResources, provision_all

    store, backend = SqlAlchemyStore(), f"sqlite:///{tmp_path / 'mlflow.db'}"
    store.init_db(f"sqlite:///{tmp_path / 'basic_auth.db'}")
    users = configparser.ConfigParser()
    users.read_dict({"monitoring": {"password": "monitoring-pw-0e4b"}})
    done = provision_all(store, users, {}, backend, None, (AUDIT_EXPERIMENT,), {"monitoring": ()})
    audit = BackendResources(backend).experiment_id(AUDIT_EXPERIMENT)
    assert store.get_experiment_permission(audit, "monitoring").permission == "EDIT"
    assert "monitoring: EDIT on experiment(s) audit" in done
