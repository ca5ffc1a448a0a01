"""The policy pack's rules (infra/policy/policies.py), called the way the Pulumi engine calls them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

POLICIES_FILE = Path(__file__).resolve().parents[2] / "infra" / "policy" / "policies.py"
_spec = importlib.util.spec_from_file_location("platform_policies", POLICIES_FILE)
assert _spec is not None and _spec.loader is not None
policies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policies)

GOOD_CONTAINER = {
    "name": "mlops-mlflow",
    "user": "10001:10001",
    "ports": [{"internal": 5000, "external": 5000, "ip": "127.0.0.1", "protocol": "tcp"}],
    "healthcheck": {"tests": ["CMD", "python", "-c", "..."], "timeout": "5s", "interval": "15s", "retries": 5},
    "envs": ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", "PGPASSFILE=/home/app/.pgpass",
             "MLFLOW_TRACKING_URI=http://mlflow:5000"],
    "command": ["--backend-store-uri", "postgresql://mlflow@postgres:5432/mlflow"],
}


def validate(policy_name: str, props: dict, *, config: dict | None = None,
             resource_type: str = policies.CONTAINER) -> list[str]:
    """Run one policy's validate callback as the engine would and collect its violations."""
    (policy,) = [p for p in policies.POLICIES if p.name == policy_name]
    # A resource policy sees one resource, a stack policy (exposed-models-need-auth) every one: here, this one.
    args = SimpleNamespace(resource_type=resource_type, props=props, get_config=lambda: config or {},
                           resources=[SimpleNamespace(resource_type=resource_type, props=props)])
    violations: list[str] = []
    policy.validate(args, lambda message, urn=None: violations.append(message))
    return violations


def with_(**changes) -> dict:
    return {**GOOD_CONTAINER, **changes}


@pytest.mark.parametrize("policy", [p.name for p in policies.POLICIES])
def test_a_compliant_container_passes_every_policy(policy):
    assert validate(policy, GOOD_CONTAINER) == []


@pytest.mark.parametrize("policy", [p.name for p in policies.POLICIES])
def test_other_resource_types_are_left_alone(policy):
    assert validate(policy, {"name": "x"}, resource_type="docker:index/volume:Volume") == []


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", None])
def test_a_port_on_every_interface_is_a_violation(ip):
    port = {"internal": 3000, "external": 3000, "ip": ip}
    (violation,) = validate("no-public-ports", with_(ports=[port]))
    assert "port 3000" in violation and "127.0.0.1" in violation


def test_public_ports_pass_when_the_policy_config_allows_them():
    port = {"internal": 3000, "external": 3000, "ip": "0.0.0.0"}
    assert validate("no-public-ports", with_(ports=[port]), config={"allowPublicPorts": True}) == []


@pytest.mark.parametrize("user", [None, "", "root", "0", "0:0", "root:app"])
def test_root_or_unset_users_are_violations(user):
    (violation,) = validate("non-root-user", with_(user=user))
    assert "root" in violation


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [
        (None, "needs a `healthcheck`"),
        ({"tests": ["NONE"]}, "needs a `healthcheck`"),
        ({"tests": ["CMD", "true"]}, "needs a `timeout`"),
    ],
)
def test_long_running_containers_need_a_health_check_with_a_timeout(healthcheck, expected):
    (violation,) = validate("health-check-required", with_(healthcheck=healthcheck))
    assert expected in violation


def test_one_shot_containers_need_no_health_check():
    assert validate("health-check-required", with_(healthcheck=None, rm=True)) == []


@pytest.mark.parametrize(
    ("envs", "command", "named"),
    [
        (["MLFLOW_TRACKING_PASSWORD=hunter2"], [], "MLFLOW_TRACKING_PASSWORD"),
        (["MLFLOW_FLASK_SERVER_SECRET_KEY=abc"], [], "MLFLOW_FLASK_SERVER_SECRET_KEY"),
        (["GITHUB_TOKEN=ghp_x"], [], "GITHUB_TOKEN"),
        (["DATABASE_URL=postgresql://mlflow:pw@postgres/mlflow"], [], "DATABASE_URL"),
        ([], ["--backend-store-uri", "postgresql://mlflow:pw@postgres/mlflow"], "command argument 1"),
    ],
)
def test_secret_looking_values_in_plain_text_are_violations(envs, command, named):
    (violation,) = validate("no-plaintext-secrets", with_(envs=envs, command=command))
    assert named in violation


@pytest.mark.parametrize(
    "env", ["POSTGRES_PASSWORD_FILE=/run/postgres-password", "MLFLOW_AUTH_CONFIG_PATH=/x.ini", "API_TOKEN="]
)
def test_pointers_to_secret_files_and_empty_values_pass(env):
    assert validate("no-plaintext-secrets", with_(envs=[env])) == []


def test_a_public_port_needs_a_container_that_requires_a_credential():
    public = [{"internal": 3000, "external": 3000, "ip": "0.0.0.0", "protocol": "tcp"}]
    open_labels = [{"label": "mlops-platform.access", "value": "open"}]
    guarded = [{"label": "mlops-platform.access", "value": "required"}]
    (violation,) = validate("public-ports-need-auth", with_(ports=public, labels=open_labels))
    assert "requires no credential" in violation and "authEnabled: true" in violation
    assert validate("public-ports-need-auth", with_(ports=public, labels=guarded)) == []
    assert validate("public-ports-need-auth", with_(labels=open_labels)) == []  # loopback is fine without auth
