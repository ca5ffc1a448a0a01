"""The service images: pins equal to uv.lock, Dockerfiles that lint clean and follow the stack's contract."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = REPO_ROOT / "services"
DOCKERFILES = sorted([*SERVICES.glob("*/Dockerfile"), *SERVICES.glob("*/*.Dockerfile")])
REQUIREMENTS = sorted(SERVICES.glob("*/requirements.txt"))
IMAGE_FOLDERS = sorted(path.parent for path in SERVICES.glob("*/Dockerfile"))
# Images that install Python packages do so from their requirements.txt; postgres, the front (HAProxy) and
# Prometheus have only Debian packages.
PYTHON_IMAGE_FOLDERS = [folder for folder in IMAGE_FOLDERS if folder.name not in ("postgres", "front", "prometheus")]
APP_USER = "10001:10001"  # infra/containers.py runs every service container as this user
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {normalized(package["name"]): package["version"] for package in lock["package"] if "version" in package}


def pins(path: Path) -> dict[str, str]:
    """name -> version of every requirement line; anything but an exact pin fails the test."""
    found = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.relative_to(REPO_ROOT)}:{number}: {line!r} is not an exact pin name==version"
        found[normalized(match[1])] = match[2]
    return found


def test_there_is_an_image_per_service():
    assert {folder.name for folder in IMAGE_FOLDERS} == {"tracking", "serving", "monitoring", "postgres", "front",
                                                         "seaweedfs", "prometheus"}
    assert [path.parent for path in REQUIREMENTS] == PYTHON_IMAGE_FOLDERS


@pytest.mark.parametrize("requirements", REQUIREMENTS, ids=lambda path: path.parent.name)
def test_every_pin_equals_the_uv_lock_version(requirements):
    locked = locked_versions()
    pinned = pins(requirements)
    assert pinned, f"{requirements} pins nothing"
    wrong = {name: (version, locked.get(name)) for name, version in pinned.items() if locked.get(name) != version}
    where = requirements.relative_to(REPO_ROOT)
    assert wrong == {}, f"{where}: pins differ from uv.lock (run services/compile-requirements.sh)"


@pytest.mark.parametrize("requirements", REQUIREMENTS, ids=lambda path: path.parent.name)
def test_compiled_requirements_hold_every_direct_pin(requirements):
    direct = pins(requirements.with_suffix(".in"))
    compiled = pins(requirements)
    assert {name: compiled.get(name) for name in direct} == direct


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(SERVICES)))
def test_dockerfile_lints_clean(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("folder", IMAGE_FOLDERS, ids=lambda path: path.name)
def test_service_image_follows_the_stack_contract(folder):
    text = (folder / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.M), "BASE_IMAGE defaults to python slim"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert re.findall(r"^USER (\S+)$", text, re.M) == [APP_USER]
    assert re.search(r"^HEALTHCHECK .*--timeout=\d+s", text, re.M), "the health probe needs a timeout"
    # Dependencies are installed before any code is copied, so code edits keep the slow layer cached.
    code_copies = re.findall(rf"^COPY (?!{folder.name}/requirements).*$", text, re.M)
    installs = "pip install" if folder in PYTHON_IMAGE_FOLDERS else "apt-get install"
    assert text.index(installs) < min(text.index(line) for line in code_copies)


def files_under(source: str) -> list[str]:
    """The files of services/ a COPY source names (a file, a glob or a folder), relative to services/."""
    found = []
    for path in SERVICES.glob(source.rstrip("/")):
        found += [path] if path.is_file() else [inner for inner in path.rglob("*") if inner.is_file()]
    return sorted(str(path.relative_to(SERVICES)) for path in found if "__pycache__" not in path.parts)


@pytest.mark.parametrize("folder", IMAGE_FOLDERS, ids=lambda path: path.name)
def test_every_file_an_image_copies_is_in_its_build_context(folder):
    """Every image builds from services/ (see infra/containers.py), whose .dockerignore admits files one by one
    to keep the context small: a COPY source it leaves out is an image that fails to build, found only by a
    Docker daemon, so it is checked here with docker-py's port of Docker's matcher (last matching line wins)."""
    from docker.utils.build import PatternMatcher

    ignore = [line for line in (SERVICES / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    ignored = PatternMatcher(ignore).matches
    for line in re.findall(r"^COPY (?!--from)(.*)$", (folder / "Dockerfile").read_text(), re.M):
        sources = [word for word in line.split() if not word.startswith("--")][:-1]
        for source in sources:
            matched = files_under(source)
            assert matched, f"{folder.name}/Dockerfile copies {source}, which is not in services/"
            left_out = [path for path in matched if ignored(path)]
            assert not left_out, f"services/.dockerignore leaves out {left_out}, which {folder.name}/Dockerfile copies"


def test_the_bento_carries_every_repo_module_the_service_imports_and_the_release_check():
    """SERVICE_FILES is the bento's whole copy of this repo: a module the service (or what it imports) needs
    and the bento lacks is a server that fails at start, so the import closure is computed here, by ast."""
    import ast

    from pipelines.bento import SERVICE_FILES

    needed, todo = set(), ["services/serving/service.py"]
    while todo:
        path = todo.pop()
        needed.add(path)
        for node in ast.walk(ast.parse((REPO_ROOT / path).read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("services"):
                    module = name.replace(".", "/")
                    found = f"{module}.py" if (REPO_ROOT / f"{module}.py").exists() else f"{module}/__init__.py"
                    if found not in needed:
                        todo.append(found)
    packages = {f"{'/'.join(Path(p).parts[:i])}/__init__.py" for p in needed for i in range(1, len(Path(p).parts))}
    assert set(SERVICE_FILES) == needed | packages | {"services/serving/requirements_check.py"}
    assert "services/serving/requirements_check.py" in (SERVICES / "serving" / "release.Dockerfile").read_text()


def test_the_release_image_carries_the_version_label_retirement_finds_it_by():
    from pipelines.stack import RELEASE_DOCKERFILE
    from services.contract import RELEASE_VERSION_LABEL

    assert f'{RELEASE_VERSION_LABEL}="${{MODEL_VERSION}}"' in RELEASE_DOCKERFILE.read_text()
