"""Who acts: what an audit record names as the person or workflow behind a change.

Locally the OS user. On a CI runner the OS user is the runner's (`runner`, `root`), so a GitHub Actions run
names the GitHub account that started it, the account that re-ran it when another did, the run's URL and the
commit it ran on, from the variables every GitHub run sets. An environment reviewer who approved the job is
not among them; a workflow that wants them recorded passes them in `RELEASE_APPROVER` (set from the
deployment's review in a step before the release).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

APPROVER_ENV = "RELEASE_APPROVER"


def actor(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`who` and, on GitHub Actions, where: tags for an audit record (values never empty)."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") != "true":
        return {"who": getpass.getuser(), **_approver(env)}
    run_url = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}" \
              f"/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
    tags = {"who": env.get("GITHUB_ACTOR") or getpass.getuser(),
            "via": f"github-actions {env.get('GITHUB_WORKFLOW', '')}", "ci_run_url": run_url,
            "ci_commit": env.get("GITHUB_SHA", ""), "ci_ref": env.get("GITHUB_REF", ""), **_approver(env)}
    triggered = env.get("GITHUB_TRIGGERING_ACTOR", "")
    if triggered and triggered != tags["who"]:
        tags["triggered_by"] = triggered
    return {key: value.strip() for key, value in tags.items() if value.strip()}


def _approver(env: Mapping[str, str]) -> dict[str, str]:
    approver = env.get(APPROVER_ENV, "").strip()
    return {"approved_by": approver} if approver else {}
