"""ci under act: its workflow-lint, lint and unit-test jobs run for real on this machine (real make, uv,
ruff, hadolint, actionlint, zizmor, check-jsonschema, pytest) in a copy of the working tree."""

from __future__ import annotations

import re

from tests.workflows.act import run_act

# The job runs `make test-unit` for real; this run gives its pytest a few of the unit tests (all of them
# run in this very session anyway), to keep the tier within its time budget.
UNIT_SAMPLE = {"PYTEST_ADDOPTS": "-k test_contract -p no:cacheprovider"}


def test_ci_lints_and_runs_the_unit_tier(tmp_path):
    run = run_act("pull_request", "ci.yml", tmp_path, matrix={"tier": "unit"}, env=UNIT_SAMPLE, stub_make=False,
                  payload={"pull_request": {"head": {"ref": "feature"}, "base": {"ref": "main"}}})
    log = run.log.read_text(errors="replace")
    assert run.returncode == 0, run.tail()
    for job in ("lint the workflows", "lint", "unit tests"):
        assert re.search(rf"\[ci/{job} *\] 🏁  Job succeeded", log), run.tail()
    assert "integration tests" not in log  # filtered out by --matrix
    assert "ruff check" in log and "zizmor" in log and "pytest tests/unit" in log
