"""Access per team on Docker (issue 21, "Access per team"): two models of two teams on one stack with authEnabled.

Team mobility owns models/bike-rentals (released by the platform's admin, so it serves at `/models/bike-rentals/`),
team risk owns loan-default (the default model; no release: its server answers "no model deployed" to a credential
it admits). Each team creates runs and versions of its own model and is refused (403) on the other's experiment,
registered model, aliases and `/models/<name>/predict`; the platform's serving token and admin keep working.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
import yaml
from mlflow.exceptions import MlflowException

from pipelines.audit import AuditTrail
from pipelines.config import DEFAULT_CONFIG_PATH, REPO_ROOT, PipelineConfig
from pipelines.registry import connect
from pipelines.stack import StackTarget
from tests.example_runs import holdout_rows
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack
from tests.stack.test_auth_stack import ADMIN_PASSWORD, SECRETS
from tests.stack.test_models_on_stack import stack_config
from tests.stack.test_release_to_stack import HarnessStack, release, train_and_gate

pytestmark = pytest.mark.timeout(1200)

A, B = "bike-rentals", "loan-default"  # team mobility's model (released) and team risk's (the default, no release)
MODELS = [{"name": B, "team": "risk"}, {"name": A, "team": "mobility", "servingMemoryMb": 768}]
TEAM_SECRETS = {"teamPassword.risk": "risk-team-pw-31d7", "teamServingToken.risk": "risk-serving-token-8a4c2e",
                "teamPassword.mobility": "mobility-team-pw-6b90", "teamServingToken.mobility": "mobility-token-0f5e7d1"}
ADMIN = ("admin", ADMIN_PASSWORD)
MOBILITY, RISK = ("mobility", TEAM_SECRETS["teamPassword.mobility"]), ("risk", TEAM_SECRETS["teamPassword.risk"])


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {({**SECRETS, **TEAM_SECRETS})[key]}"}


@pytest.fixture(scope="module")
def teams(docker_client: docker.DockerClient, base_image: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[DockerStack, list[dict]]]:
    """The stack, with A released by the admin; and rows of A's holdout as a client sends them."""
    folder = Path(tmp_path_factory.mktemp("teams"))
    with running_stack(docker_client, base_image, declared(folder), {**SECRETS, **TEAM_SECRETS}) as stack, \
            pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])  # a release by the platform's admin
        env.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        config = team_config(A, stack, folder)
        version = release(config, StackTarget(config, HarnessStack(stack), name="stack:test"))
        rows, _ = holdout_rows(config, connect(config), version, 3)
        try:
            yield stack, rows
        finally:
            for image in docker_client.images.list(name=f"{stack.declared.config['namePrefix']}-serving"):
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(image.id, force=True)


def team_raw(model: str) -> dict:
    """The model's pipeline config as its team writes it: it runs in its own experiment, named as the model (the
    stack refuses another)."""
    raw = yaml.safe_load((DEFAULT_CONFIG_PATH if model == B else REPO_ROOT / "models" / model / "pipeline.yaml"
                          ).read_text())
    raw["tracking"] = {"experiment": model}
    return raw


def declared(folder: Path) -> dict[str, str]:
    """The stack's `models` and its teams' pipeline configs (the default model's by the stack key), monitored once
    a minute as the other stack tests are."""
    entries, config = [], {}
    for entry in MODELS:
        raw, path = team_raw(entry["name"]), folder / f"declared-{entry['name']}.yaml"
        raw["monitoring"] = {**raw.get("monitoring", {}), "interval_minutes": 1}
        path.write_text(yaml.safe_dump(raw))
        if entry["name"] == B:
            config["pipelineConfig"] = str(path)
            entries.append(entry)
        else:
            entries.append({**entry, "pipelineConfig": str(path)})
    return {**config, "authEnabled": "true", "models": json.dumps(entries)}


def team_config(model: str, stack: DockerStack, state_dir: Path) -> PipelineConfig:
    """The model's pipeline config against the stack."""
    return stack_config(team_raw(model), stack, state_dir)


def mlflow_call(stack: DockerStack, user: tuple[str, str], method: str, route: str, body: dict) -> httpx.Response:
    api = f"{stack.declared.exports['mlflow_url']}/api/2.0/mlflow/{route}"
    if method == "GET":
        return httpx.get(api, params=body, auth=user, timeout=20)
    return httpx.request(method, api, json=body, auth=user, timeout=20)


def test_a_team_writes_to_its_own_model_only(teams):
    stack, _ = teams

    def call(user, method, route, body, expected=200) -> dict:
        answer = mlflow_call(stack, user, method, route, body)
        assert answer.status_code == expected, (user[0], route, body, answer.text)
        return answer.json() if expected == 200 else {}  # MLflow's 403 body is plain text

    experiment = {name: call(ADMIN, "GET", "experiments/get-by-name", {"experiment_name": name})["experiment"]
                  ["experiment_id"] for name in (A, B)}  # both made at the server's start, with the teams' grants
    # B's model has a version (the admin's), so moving its aliases is refused for want of rights, not of a version.
    b_run = call(ADMIN, "POST", "runs/create", {"experiment_id": experiment[B]})["run"]["info"]["run_id"]
    call(ADMIN, "POST", "model-versions/create", {"name": B, "source": f"runs:/{b_run}/model", "run_id": b_run})

    # Team mobility on its own model: a run, a version of it, an alias.
    run = call(MOBILITY, "POST", "runs/create", {"experiment_id": experiment[A]})["run"]["info"]["run_id"]
    own = call(MOBILITY, "POST", "model-versions/create", {"name": A, "source": f"runs:/{run}/model", "run_id": run})
    call(MOBILITY, "POST", "registered-models/alias", {"name": A, "alias": "reviewed",
                                                        "version": own["model_version"]["version"]})
    # ... and on team risk's: refused, each one.
    call(MOBILITY, "POST", "runs/create", {"experiment_id": experiment[B]}, expected=403)
    call(MOBILITY, "POST", "model-versions/create", {"name": B, "source": f"runs:/{run}/model", "run_id": run},
         expected=403)
    call(MOBILITY, "POST", "registered-models/alias", {"name": B, "alias": "champion", "version": "1"},
         expected=403)
    # Team risk the other way round; the monitoring user still reads every model.
    call(RISK, "POST", "runs/create", {"experiment_id": experiment[A]}, expected=403)
    call(RISK, "POST", "registered-models/alias", {"name": A, "alias": "champion", "version": "1"}, expected=403)
    call(RISK, "POST", "runs/create", {"experiment_id": experiment[B]})
    for model in (A, B):
        call(("monitoring", SECRETS["monitoringPassword"]), "GET", "registered-models/get", {"name": model})


def test_a_teams_token_answers_for_its_own_models_routes_only(teams):
    stack, rows = teams
    url = stack.declared.exports["serving_url"]

    def predict(path: str, key: str | None) -> httpx.Response:
        return httpx.post(f"{url}{path}", json={"rows": rows}, headers=bearer(key) if key else {}, timeout=30)

    own = predict(f"/models/{A}/predict", "teamServingToken.mobility")
    assert own.status_code == 200 and len(own.json()["predictions"]) == len(rows), own.text
    assert predict(f"/models/{A}/predict", "servingToken").status_code == 200  # the platform's token, everywhere
    refused = predict(f"/models/{A}/predict", "teamServingToken.risk")
    assert refused.status_code == 403 and "another team's token" in refused.text, refused.text
    assert predict(f"/models/{A}/predict", None).status_code == 401
    # B (the default model, not released yet) admits its team's token and the platform's, refuses A's.
    for path in (f"/models/{B}/predict", "/predict"):
        assert predict(path, "teamServingToken.mobility").status_code == 403, path
        for key in ("teamServingToken.risk", "servingToken"):
            answer = predict(path, key)
            assert answer.status_code == 503 and "no model deployed" in answer.text, (path, key, answer.text)
    assert httpx.get(f"{url}/models/{A}/readyz", timeout=10).status_code == 200  # probes stay open


def test_no_team_secret_is_in_inspect_env_or_logs_and_each_container_holds_only_its_own(teams):
    stack, _ = teams
    holders = {"mlflow": {"teamPassword.risk", "teamPassword.mobility"}, "serving": {"teamServingToken.risk"},
               f"release-{A}": {"teamServingToken.mobility"}}
    for alias in ("mlflow", "serving", f"release-{A}", "front", "monitoring", "prometheus"):
        container = stack.container(alias)
        container.reload()
        inspected, logs = json.dumps(container.attrs), container.logs().decode(errors="replace")
        for key, secret in TEAM_SECRETS.items():
            assert secret not in inspected and secret not in logs, (alias, key)
    for alias, keys in holders.items():
        found = stack.container(alias).exec_run(["sh", "-c", "cat /home/app/*.ini /home/app/secrets/* 2>/dev/null"])
        held = found.output.decode(errors="replace")
        for key, secret in TEAM_SECRETS.items():
            assert (secret in held) == (key in keys), (alias, key)


def test_a_teams_own_login_runs_its_models_release_steps_and_their_audit_records_chain(teams, monkeypatch, tmp_path):
    """Train and gate as team mobility: a run, a version, its aliases and tags, and audit records in the `audit`
    experiment the server made at its start; the chain (the admin's release first) verifies. Risk's model refuses."""
    stack, _ = teams
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MOBILITY[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MOBILITY[1])
    bikes = team_config(A, stack, tmp_path)
    before = AuditTrail.of(bikes).verify()

    version = train_and_gate(bikes)

    report = AuditTrail.of(bikes).verify()
    assert report.intact and report.records > before.records, report
    assert {(r["action"], r["model_version"]) for r in AuditTrail.of(bikes).timeline()[before.records:]} >= {
        ("train", version), ("gate", version)}
    with pytest.raises(MlflowException, match="Permission denied|PERMISSION_DENIED|403"):
        train_and_gate(team_config(B, stack, tmp_path))
