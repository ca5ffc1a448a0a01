"""Access per team on the docker stack, under mocks (issue 21, "Access per team"): each team's password reaches
MLflow's users file only, its serving token its own models' containers only, the other teams' tokens reach a
container as SHA-256 digests only, and the config loader refuses a team it cannot guard."""

from __future__ import annotations

import configparser
import hashlib
import json

import pulumi
import pytest

from services.contract import (
    AUDIT_EXPERIMENT,
    MONITORING_EXPERIMENT,
    MONITORING_USER,
    REFUSED_TOKENS_FILE_ENV,
    TEAM_TOKEN_FILE_ENV,
)
from tests.infra.program import CONTAINER, REPO_ROOT, run_program
from tests.infra.test_stack_program import AUTH_SECRETS, env_of, load_module, mounts_of
from tests.kubernetes.manifests import FULL, FULL_SECRETS

MODELS = json.dumps([{"name": name, "team": team, "pipelineConfig": f"tests/infra/fixtures/{name}-team-pipeline.yaml"}
                     for name, team in (("loan-default", "risk"), ("bike-rentals", "mobility"))] + [
                     {"name": "churn", "pipelineConfig": "tests/infra/fixtures/churn-pipeline.yaml"}])
RELEASES = {"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
            "servingImage.bike-rentals": "mlops-serving:v3-b", "modelVersion.bike-rentals": "3",
            "servingImage.churn": "mlops-serving:v1-c", "modelVersion.churn": "1"}
TEAM_SECRETS = {"teamPassword.risk": "risk-password-4e1a", "teamServingToken.risk": "risk-token-77c2-0b9d",
                "teamPassword.mobility": "mobility-pw-2f8c", "teamServingToken.mobility": "mobility-token-5a31-e6"}
TEAMS = {"authEnabled": "true", "models": MODELS, **RELEASES}
RISK_SECRETS = {key: value for key, value in TEAM_SECRETS.items() if key.endswith(".risk")}


def uploads(container) -> dict[str, str]:
    return {upload["file"]: upload["content"] for upload in container.plain["uploads"]}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def stack():
    return run_program(TEAMS, {**AUTH_SECRETS, **TEAM_SECRETS})


def test_each_teams_password_reaches_the_users_file_and_its_models_the_grants_file(stack):
    tracking = stack.container("mlflow")
    env, files = env_of(tracking), uploads(tracking)
    users = configparser.ConfigParser()
    users.read_string(files[env["SERVICE_USERS_FILE"]])
    assert {user: users[user]["password"] for user in users.sections()} == {
        "monitoring": AUTH_SECRETS["monitoringPassword"], "risk": TEAM_SECRETS["teamPassword.risk"],
        "mobility": TEAM_SECRETS["teamPassword.mobility"]}
    grants = configparser.ConfigParser()
    grants.read_string(files[env["TEAM_GRANTS_FILE"]])
    assert {team: grants[team]["models"] for team in grants.sections()} == {
        "mobility": "bike-rentals", "risk": "loan-default"}
    assert env["TEAM_SHARED_EXPERIMENTS"] == AUDIT_EXPERIMENT  # every release appends to the audit trail
    # Every model's monitoring experiment (these keep the default), made at start for the job's user.
    assert (env["MONITORING_USER"], env["MONITORING_EXPERIMENTS"]) == (MONITORING_USER, MONITORING_EXPERIMENT)


def test_a_models_container_holds_its_teams_token_and_only_digests_of_the_others(stack):
    expected = {"serving": ("risk", ["mobility"]), "release-bike-rentals": ("mobility", ["risk"]),
                "release-churn": (None, ["mobility", "risk"])}  # a model without a team: every team's is refused
    for alias, (team, refused) in expected.items():
        container = stack.container(alias)
        env, files = env_of(container), uploads(container)
        admitted = files.get(env.get(TEAM_TOKEN_FILE_ENV, ""))
        assert admitted == (TEAM_SECRETS[f"teamServingToken.{team}"] if team else None), alias
        assert files[env[REFUSED_TOKENS_FILE_ENV]].split() == [
            digest(TEAM_SECRETS[f"teamServingToken.{other}"]) for other in refused], alias
        contents = json.dumps(container.plain, default=str)
        for other in {"risk", "mobility"} - {team}:
            assert TEAM_SECRETS[f"teamServingToken.{other}"] not in contents, (alias, other)
        for secret in (f"teamPassword.{t}" for t in ("risk", "mobility")):
            assert TEAM_SECRETS[secret] not in contents, (alias, secret)
        for upload in container.plain["uploads"]:
            if upload["file"] in (admitted and env[TEAM_TOKEN_FILE_ENV], env[REFUSED_TOKENS_FILE_ENV]):
                assert upload["permissions"] == "0600", (alias, upload["file"])


def test_team_secrets_stay_out_of_env_args_and_outputs_and_other_containers(stack):
    holders = {"mlflow": {"teamPassword.risk", "teamPassword.mobility"}, "serving": {"teamServingToken.risk"},
               "release-bike-rentals": {"teamServingToken.mobility"}}
    exports = json.dumps(stack.exports, default=str)
    for container in stack.of_type(CONTAINER):
        aliases = {a for n in container.plain["networksAdvanced"] for a in n["aliases"]}
        allowed = set().union(*(holders.get(alias, set()) for alias in aliases))
        visible = json.dumps({key: container.plain.get(key) for key in ("envs", "command", "labels", "name")})
        files = json.dumps(uploads(container))
        for key, secret in TEAM_SECRETS.items():
            assert secret not in visible, (aliases, key)
            assert secret not in exports, key
            assert (secret in files) == (key in allowed), (aliases, key)


def test_a_stack_without_teams_declares_no_team_files():
    stack = run_program({"authEnabled": "true"}, AUTH_SECRETS)
    assert "TEAM_GRANTS_FILE" not in env_of(stack.container("mlflow"))
    # The record of what earlier starts granted teams, on a volume: a stack whose last team left revokes it.
    record = env_of(stack.container("mlflow"))["TEAM_RECORD_FILE"]
    assert any(record.startswith(f"{path}/") for path in mounts_of(stack.container("mlflow"))), record
    assert not {TEAM_TOKEN_FILE_ENV, REFUSED_TOKENS_FILE_ENV} & set(env_of(stack.container("serving")))


@pytest.mark.parametrize(("config", "secrets", "message"), [
    ({"authEnabled": "true", "models": MODELS}, RISK_SECRETS, "teamPassword.mobility: is required for team 'mobility'"),
    ({"authEnabled": "true", "models": MODELS}, {k: v for k, v in TEAM_SECRETS.items() if k != "teamServingToken.risk"},
     "teamServingToken.risk: is required for team 'risk'"),
    ({"models": MODELS}, TEAM_SECRETS, "need authEnabled: true"),
    ({"authEnabled": "true", "models": json.dumps([{"name": "loan-default", "team": "Risk_Team"}])}, {},
     "models[0].team 'Risk_Team' is not a DNS label"),
    ({"authEnabled": "true", "models": json.dumps([{"name": "loan-default", "team": "monitoring"}])}, {},
     "team 'monitoring' has the name of the platform's monitoring user"),
    ({"authEnabled": "true", "models": json.dumps([{"name": "loan-default", "team": "risk"}])},
     {**TEAM_SECRETS}, "teamPassword.mobility is the key of team 'mobility', which models does not declare"),
    ({"authEnabled": "true", "models": MODELS}, {**TEAM_SECRETS, "teamServingToken.risk": "short"},
     "teamServingToken.risk: must be at least 16 characters"),
    ({**FULL, "models": json.dumps([{"name": "loan-default", "team": "risk"}])}, {**FULL_SECRETS, **RISK_SECRETS},
     "access per team (a model's team) is on the docker target only"),
    ({"authEnabled": "true", "models": json.dumps([{"name": "loan-default", "team": "risk"}])}, RISK_SECRETS,
     "pipelines/pipeline.yaml: tracking.experiment is 'release', but the grants of team 'risk' are on experiment "
     "'loan-default' (the model's name): set tracking.experiment: loan-default"),
    ({"authEnabled": "true", "models": json.dumps([{"name": "loan-default"},
                                                   {"name": "bike-rentals", "team": "mobility"}])},
     {k: v for k, v in TEAM_SECRETS.items() if k.endswith(".mobility")}, "models[1].pipelineConfig (unset: the "
     "model's folder's) models/bike-rentals/pipeline.yaml: tracking.experiment is unset, but the grants of team "
     "'mobility'"),
])
def test_a_team_the_stack_cannot_guard_fails_naming_the_key(config, secrets, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, {**AUTH_SECRETS, **secrets})
    assert message in str(raised.value)


def test_the_policy_pack_admits_an_exposed_stack_of_teams_and_the_loader_refuses_one_without_auth():
    policies = load_module(REPO_ROOT / "infra" / "policy" / "policies.py")
    exposed = [c.plain for c in run_program({**TEAMS, "exposePorts": "true"},
                                            {**AUTH_SECRETS, **TEAM_SECRETS}).of_type(CONTAINER)]
    assert policies.exposed_models_without_auth(exposed) == []  # every team's model requires a credential
    with pytest.raises(pulumi.RunError, match="exposePorts: true needs authEnabled"):
        run_program({**TEAMS, "authEnabled": "false", "exposePorts": "true"}, TEAM_SECRETS)
