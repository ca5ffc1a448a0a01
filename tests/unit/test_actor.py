"""The actor an audit record names: the OS user locally; on GitHub Actions the account behind the run, the
re-runner when another, the run's URL and commit, and an approver the workflow passes in."""

from __future__ import annotations

import getpass

from pipelines.actor import actor

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice", "GITHUB_TRIGGERING_ACTOR": "bob",
          "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/ml", "GITHUB_RUN_ID": "42",
          "GITHUB_SHA": "abc123", "GITHUB_REF": "refs/heads/main", "GITHUB_WORKFLOW": "release"}


def test_locally_the_os_user_acts():
    assert actor({}) == {"who": getpass.getuser()}
    assert actor({"RELEASE_APPROVER": " carol "}) == {"who": getpass.getuser(), "approved_by": "carol"}


def test_on_github_actions_the_account_the_run_and_the_commit():
    assert actor({**GITHUB, "RELEASE_APPROVER": "carol"}) == {
        "who": "alice", "via": "github-actions release", "ci_run_url": "https://github.com/acme/ml/actions/runs/42",
        "ci_commit": "abc123", "ci_ref": "refs/heads/main", "approved_by": "carol", "triggered_by": "bob"}


def test_a_run_its_own_actor_started_names_no_separate_trigger():
    assert "triggered_by" not in actor({**GITHUB, "GITHUB_TRIGGERING_ACTOR": "alice"})
