"""cd, promote and retrain under act: which `make` targets run, for which stack, in which order.

The jobs' `make` is the recording stand-in in stubs/bin (the releases themselves need a Pulumi CLI and a
stack, tested elsewhere); the workflows' wiring, conditions, inputs and ordering run for real in act.
"""

from __future__ import annotations

import pytest

from tests.workflows.act import run_act

BOTH_ON = {"DEPLOY_STAGING": "true", "DEPLOY_PROD": "true"}
RELEASE = ["train", "validate"]
PUBLISHED = {"action": "published", "release": {"tag_name": "v1.2.0"}}


def release_of(stack: str) -> list[tuple[str, list[str]]]:
    return [(stack, [target]) for target in RELEASE] + [(stack, ["deploy", "TARGET=stack", f"STACK={stack}"])]


def test_a_published_release_goes_to_staging_then_prod(tmp_path):
    run = run_act("release", "cd.yml", tmp_path, payload=PUBLISHED, variables=BOTH_ON)
    assert run.returncode == 0, run.tail()
    assert run.make_calls() == release_of("staging") + release_of("prod")
    assert {(call["inputs"]["persist-credentials"], call["inputs"]["ref"]) for call in run.calls("checkout")} == {
        ("false", "")}


def test_a_failing_gate_in_staging_stops_prod(tmp_path):
    run = run_act("release", "cd.yml", tmp_path, payload=PUBLISHED, variables=BOTH_ON,
                  env={"FAIL_TARGET": "validate", "FAIL_STACK": "staging"})
    assert run.returncode != 0, run.tail()
    assert run.make_calls() == [("staging", ["train"]), ("staging", ["validate"])]


def test_a_push_to_main_releases_to_staging_only(tmp_path):
    run = run_act("push", "cd.yml", tmp_path, payload={"ref": "refs/heads/main"}, variables=BOTH_ON)
    assert run.returncode == 0, run.tail()
    assert run.make_calls() == release_of("staging")


@pytest.mark.parametrize(("event", "workflow", "payload"), [
    ("release", "cd.yml", PUBLISHED),
    ("workflow_dispatch", "promote.yml", {"inputs": {"version": "7"}}),
    ("repository_dispatch", "retrain.yml", {"action": "drift-detected"}),
])
def test_a_new_fork_releases_nothing(tmp_path, event, workflow, payload):
    run = run_act(event, workflow, tmp_path, payload=payload)
    assert run.returncode == 0, run.tail()
    assert run.records == []


def test_promote_takes_the_model_version_then_releases_it(tmp_path):
    run = run_act("workflow_dispatch", "promote.yml", tmp_path, payload={"inputs": {"version": "7"}},
                  variables=BOTH_ON)
    assert run.returncode == 0, run.tail()
    assert run.make_calls() == [("", ["promote", "VERSION=7"]), ("", ["deploy", "TARGET=stack", "STACK=prod"])]


def test_a_drift_alert_starts_a_retrain_of_staging(tmp_path):
    payload = {"action": "drift-detected",
               "client_payload": {"verdict": "DRIFT", "model_version": "3", "drifted_columns": ["income"]}}
    run = run_act("repository_dispatch", "retrain.yml", tmp_path, payload=payload, variables=BOTH_ON)
    assert run.returncode == 0, run.tail()
    assert run.make_calls() == release_of("staging")


def test_retrain_by_hand_takes_the_stack(tmp_path):
    run = run_act("workflow_dispatch", "retrain.yml", tmp_path, payload={"inputs": {"stack": "prod"}},
                  variables=BOTH_ON)
    assert run.returncode == 0, run.tail()
    assert run.make_calls() == release_of("prod")
