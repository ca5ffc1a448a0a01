"""The workflows' own rules: the three linters pass (as `make lint-workflows` runs them), and what a fork
relies on holds in every file: pinned actions, minimal permissions, deploys off until turned on,
releases queued per stack, no secret handed over wholesale."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from services.monitoring.alert import DISPATCH_EVENT
from tests.workflows.act import REPO_ROOT, WORKFLOWS, pinned_actions

FILES = sorted(WORKFLOWS.glob("*.yml"))
RELEASING = {"deploy.yml", "promote.yml", "rollback.yml"}  # jobs that change a stack


def load(path):
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def test_the_workflow_linters_pass():
    done = subprocess.run(["make", "--no-print-directory", "lint-workflows"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_remote_action_is_pinned_to_a_commit(path):
    for line in path.read_text().splitlines():
        if "uses:" in line and "./" not in line:
            assert any(f"{repository}@{commit}" in line for repository, commit in pinned_actions()), line


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_permissions_start_empty_and_no_secret_is_inherited(path):
    workflow = load(path)
    assert workflow["permissions"] == {}
    assert "secrets: inherit" not in path.read_text()
    for job in workflow["jobs"].values():
        granted = job.get("permissions", {})
        assert set(granted.values()) <= {"read", "write"}
        assert "write" not in granted.values()


@pytest.mark.parametrize("path", [WORKFLOWS / name for name in ("cd.yml", "promote.yml", "retrain.yml",
                                                                  "rollback.yml")], ids=lambda p: p.name)
def test_every_release_job_is_off_until_a_repository_variable_turns_it_on(path):
    for job in load(path)["jobs"].values():
        assert "vars.DEPLOY_" in str(job.get("if", "")), job


@pytest.mark.parametrize("name", sorted(RELEASING))
def test_releases_are_queued_per_stack_never_cancelled(name):
    for job in load(WORKFLOWS / name)["jobs"].values():
        assert job["concurrency"]["cancel-in-progress"] is False
        assert job["concurrency"]["group"].startswith("release-")
        assert job["environment"] in ("${{ inputs.stack }}", "prod")


def test_deploy_is_reusable_only():
    assert set(load(WORKFLOWS / "deploy.yml")["on"]) == {"workflow_call"}


def test_retrain_listens_for_the_drift_alerts_dispatch():
    assert load(WORKFLOWS / "retrain.yml")["on"]["repository_dispatch"]["types"] == [DISPATCH_EVENT]
