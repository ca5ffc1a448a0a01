"""A pull request's code never runs with a secret that decrypts a real stack's config: no job a pull
request starts can read a secret or enter an environment (read from the workflow files), and under act a
pull request gets no preview with the Pulumi backend's secrets, while a push to main and a maintainer's
dispatch for one exact commit preview each stack turned on, the secrets in the Pulumi step only."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.workflows.act import run_act
from tests.workflows.test_workflow_rules import FILES, load

# Triggers whose jobs run (or can be made to run) code a pull request's author wrote.
PULL_REQUEST_TRIGGERS = {"pull_request", "pull_request_target", "workflow_run"}
BACKEND_SECRETS = {"PULUMI_ACCESS_TOKEN": "token-not-for-prs", "PULUMI_CONFIG_PASSPHRASE": "passphrase-not-for-prs"}
BOTH_ON = {"DEPLOY_STAGING": "true", "DEPLOY_PROD": "true"}
SHA = re.compile(r"^[0-9a-f]{40}$")


def triggers(workflow: dict) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_job_a_pull_request_starts_can_read_a_secret(path):
    workflow = load(path)
    if not triggers(workflow) & PULL_REQUEST_TRIGGERS:
        return
    for name, job in workflow["jobs"].items():
        where = f"{path.name}: job {name}, started by a pull request,"
        assert "environment" not in job, f"{where} enters an environment"
        assert "secrets." not in yaml.safe_dump(job) and "secrets" not in job, f"{where} reads a secret"
        assert not str(job.get("uses", "")).startswith("./"), f"{where} calls a workflow (and its secrets)"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_inputs_reach_scripts_through_the_environment_only(path):
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), step["run"]


def test_a_pull_request_gets_no_preview_with_the_stacks_secrets(tmp_path):
    run = run_act("pull_request", "preview.yml", tmp_path, variables=BOTH_ON, secrets=BACKEND_SECRETS,
                  payload={"pull_request": {"head": {"ref": "feature"}, "base": {"ref": "main"}}})
    ran_nothing = "Could not find any stages to run" in run.log.read_text()  # act's words: no job listens
    assert run.returncode == 0 or ran_nothing, run.tail()
    assert [call["inputs"] for call in run.calls("pulumi") if call["inputs"]["secrets_in_env"]] == []


def test_a_push_to_main_previews_each_stack_turned_on_from_the_pushed_commit(tmp_path):
    run = run_act("push", "preview.yml", tmp_path, variables=BOTH_ON, secrets=BACKEND_SECRETS,
                  payload={"ref": "refs/heads/main"})
    assert run.returncode == 0, run.tail()
    previews = sorted((call["inputs"] for call in run.calls("pulumi")), key=lambda inputs: inputs["stack-name"])
    assert [inputs["stack-name"] for inputs in previews] == ["prod", "staging"]
    for inputs in previews:
        assert inputs["command"] == "preview" and inputs["policypacks"] == "infra/policy"
        assert inputs["comment-on-summary"] == "true" and inputs["secrets_in_env"] == sorted(BACKEND_SECRETS)
    checkouts = [call["inputs"] for call in run.calls("checkout")]
    assert len(checkouts) == 2 and all(SHA.match(inputs["ref"]) for inputs in checkouts), checkouts


def test_a_dispatch_previews_the_exact_commit_it_names(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    run = run_act("workflow_dispatch", "preview.yml", tmp_path, variables={"DEPLOY_STAGING": "true"},
                  secrets=BACKEND_SECRETS, payload={"inputs": {"commit": commit}})
    assert run.returncode == 0, run.tail()
    assert [call["inputs"]["ref"] for call in run.calls("checkout")] == [commit]
    assert [call["inputs"]["stack-name"] for call in run.calls("pulumi")] == ["staging"]


def test_a_dispatch_for_anything_but_one_commit_previews_nothing(tmp_path):
    run = run_act("workflow_dispatch", "preview.yml", tmp_path, variables={"DEPLOY_STAGING": "true"},
                  secrets=BACKEND_SECRETS, payload={"inputs": {"commit": "main; id"}})
    assert run.returncode != 0, run.tail()
    assert run.records == []
