"""The Makefile takes what a person or a workflow passes (VERSION, STACK, ARGS, ...) as data: each value
reaches the CLI (or docker, pulumi) as a literal argument, and no value runs a command, whether it is
written for the shell (quotes, `;`, `$(...)`, backticks) or for make itself (`$(shell ...)`).

The real make runs the real Makefile, with `uv`, `docker` and `pulumi` replaced by a recorder first on
PATH: the recipes run for real, the commands they call only record their argv.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.workflows.act import REPO_ROOT

RECORDER = """#!/usr/bin/env bash
python3 -c 'import json, os, sys
with open(os.environ["STUB_RECORD"], "a") as record:
    record.write(json.dumps([os.path.basename(sys.argv[1])] + sys.argv[2:]) + "\\n")' "$0" "$@"
"""
# Every input a target takes, with a value that passes its usage check when it is not the one under test.
TAKES = {
    "validate": ["ARGS"],
    "deploy": ["TARGET", "STACK", "CANARY", "ARGS"],
    "rollback": ["TARGET", "STACK"],
    "reproduce": ["VERSION"],
    "promote": ["VERSION", "FROM", "TO"],
    "backup": ["TARGET", "STACK", "KEEP", "DEST", "ARGS"],
    "restore": ["BACKUP", "TARGET", "STACK", "ARGS"],
    "images": ["BASE_IMAGE"],
    "k8s-images": ["IMAGE_TAG", "IMAGE_REGISTRY", "BASE_IMAGE"],
    "stack-up": ["STACK"],
}
REQUIRED = {"reproduce": {"VERSION": "3"}, "promote": {"VERSION": "3"}, "restore": {"BACKUP": "b.tar.gz"},
            "k8s-images": {"IMAGE_TAG": "1.0"}}
CASES = [(target, name) for target, names in TAKES.items() for name in names]


def injections(marker: Path) -> list[str]:
    """Values that run `touch <marker>` wherever they are pasted into a recipe as text."""
    touch = f"touch {marker}"
    return [f'1"; {touch}; echo "', f"1'; {touch}; echo '", f"1; {touch}", f"1 && {touch} #", f"$({touch})",
            f"`{touch}`", f"$(shell {touch})", f"1\n{touch}"]


@pytest.fixture
def stub_path(tmp_path) -> Path:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for command in ("uv", "docker", "pulumi"):
        (stubs / command).write_text(RECORDER)
        (stubs / command).chmod(0o755)
    return stubs


def run_make(target: str, variables: dict[str, str], stubs: Path, record: Path) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in {n for ns in TAKES.values() for n in ns}}
    env.update(PATH=f"{stubs}:{env['PATH']}", STUB_RECORD=str(record))
    arguments = [f"{name}={value}" for name, value in variables.items()]
    return subprocess.run(["make", "--no-print-directory", target, *arguments], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def holds(argv: list[str], name: str, value: str) -> bool:
    """The value arrived intact: inside one argument, or (ARGS) as its words, in order, one argument each."""
    if name == "ARGS":
        words = value.split()
        return any(argv[start:start + len(words)] == words for start in range(len(argv)))
    return any(value in argument for argument in argv)


@pytest.mark.parametrize(("target", "name"), CASES, ids=[f"{target}-{name}" for target, name in CASES])
def test_an_input_reaches_the_command_literally_and_runs_nothing(tmp_path, stub_path, target, name):
    marker = tmp_path / "pwned"
    for number, value in enumerate(injections(marker)):
        record = tmp_path / f"record-{number}.jsonl"
        done = run_make(target, {**REQUIRED.get(target, {}), name: value}, stub_path, record)
        assert not marker.exists(), f"make {target} {name}={value!r} ran the injected command\n{done.stderr[-2000:]}"
        argvs = [argv for argv in calls(record) if argv[:2] != ["uv", "sync"]]
        assert argvs and all(holds(argv, name, value) for argv in argvs), (value, argvs, done.stderr[-2000:])


@pytest.mark.parametrize("target", ["test", "test-kubernetes"])
def test_the_test_tiers_that_build_images_get_the_base_image(tmp_path, stub_path, target):
    stub_path.joinpath("uv").write_text(RECORDER.replace("sys.argv[2:]", '[os.environ.get("BASE_IMAGE")]'))
    record = tmp_path / "record.jsonl"
    run_make(target, {"BASE_IMAGE": "$(shell id)"}, stub_path, record)
    assert calls(record)[-1] == ["uv", "$(shell id)"]


def test_a_version_that_looks_like_an_option_stays_the_version(tmp_path, stub_path):
    record = tmp_path / "record.jsonl"
    run_make("promote", {"VERSION": "--to=http://elsewhere", "FROM": "http://staging"}, stub_path, record)
    assert calls(record) == [["uv", "run", "--frozen", "pipelines", "promote", "--from=http://staging", "--",
                              "--to=http://elsewhere"]]
