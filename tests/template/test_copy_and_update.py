"""The template as a team meets it: `copier copy` of a tagged version gives a project that passes its own unit
tier and trains and gates its own model on its own table; `copier update` to a newer tag brings in the
template's changes, keeps the team's, runs the version's config migration and shows a change both sides made
as a conflict. And the template rendered with its defaults is the template itself, byte for byte.

Offline: the template is a local git repository made from this working tree, tagged here (never the real one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.config import REPO_ROOT
from tests.template.project import write_first_model

pytestmark = pytest.mark.integration

ANSWERS = ".copier-answers.yml"
# What only the template has (copier.yml's _exclude): a project made from it gets none of these.
TEMPLATE_ONLY = {"copier.yml", "{{ _copier_conf.answers_file }}.jinja", "CHANGELOG.md",
                 ".github/workflows/template.yml"}
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "template test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                "GIT_COMMITTER_NAME": "template test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def run(args: list[str], cwd: Path, **env: str) -> str:
    """Runs a command the way a person would in `cwd`; its output, or a failure showing it."""
    clean = {key: value for key, value in os.environ.items()
             if key not in ("PIPELINE_MODEL", "PIPELINE_CONFIG", "MLFLOW_TRACKING_URI")}
    done = subprocess.run(args, cwd=cwd, env={**clean, **GIT_IDENTITY, **env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, f"{' '.join(args)} in {cwd} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def copier(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "copier", *args, "--trust", "--defaults", "--quiet"], cwd)


def in_project(project: Path, *args: str) -> str:
    """A command of the generated project, on this locked environment (same uv.lock), its own code first."""
    return run([sys.executable, *args], project, PYTHONPATH=str(project))


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")
            if path.is_file() and ".git" not in path.relative_to(root).parts}


def commit(repo: Path, message: str, tag: str | None = None) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    if tag:
        run(["git", "tag", tag], repo)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This working tree (committed or not, ignored files left out) as a git repository tagged v1.0.0."""
    repo = tmp_path_factory.mktemp("template")
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO_ROOT)
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    run(["git", "init", "-q", "-b", "main"], repo)
    commit(repo, "the template", tag="v1.0.0")
    return repo


def test_the_template_rendered_with_its_defaults_is_the_template_itself(template, tmp_path):
    copier("copy", "--vcs-ref", "v1.0.0", str(template), str(tmp_path / "default"), cwd=tmp_path)
    rendered, source = files(tmp_path / "default"), files(template)
    expected = {name for name in source if name not in TEMPLATE_ONLY and not name.startswith("tests/template/")}
    assert rendered - {ANSWERS} == expected
    default = tmp_path / "default"
    changed = [name for name in expected if (default / name).read_bytes() != (template / name).read_bytes()]
    assert changed == []
    assert yaml.safe_load((tmp_path / "default" / ANSWERS).read_text())["_commit"] == "v1.0.0"


def release_v1_1(template: Path) -> None:
    """The next template version: a fix in pipelines/, a changed workflow, a renamed config key with its
    migration, and an edit to a line the team edited too (README's title)."""
    renamed = run(["git", "grep", "-l", "holdout_fraction"], template).split()
    for name in renamed:
        path = template / name
        path.write_text(path.read_text().replace("holdout_fraction", "eval_fraction"))
    validate = template / "pipelines" / "validate.py"
    validate.write_text(validate.read_text() + "\n# v1.1.0: the template's fix\n")
    ci = template / ".github" / "workflows" / "ci.yml"
    ci.write_text(ci.read_text().replace("    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n"
                                                                      "    timeout-minutes: 60\n"))
    readme = template / "README.md"
    readme.write_text("# The MLOps platform template, v1.1\n" + readme.read_text().split("\n", 1)[1])
    spec = template / "copier.yml"
    spec.write_text(spec.read_text().replace("_migrations: []\n", (
        "_migrations:\n  - version: v1.1.0\n    command: >-\n      \"{{ _copier_python }}\" -m "
        "pipelines.config_migration data.holdout_fraction data.eval_fraction\n")))
    commit(template, "v1.1.0: data.holdout_fraction is data.eval_fraction; a fix; CI jobs time out", tag="v1.1.0")


def test_a_project_copies_ships_its_model_and_updates_keeping_its_own_files(template, tmp_path):
    started = time.monotonic()
    project = tmp_path / "churn-platform"
    copier("copy", "--vcs-ref", "v1.0.0", "--data", "first_model=churn", "--data", "name_prefix=acme",
           "--data", "mlflow_port=5300", "--data", "stacks=[dev, prod]", str(template), str(project), cwd=tmp_path)
    dev = yaml.safe_load((project / "Pulumi.dev.yaml").read_text())["config"]
    assert (dev["mlops-platform:namePrefix"], dev["mlops-platform:mlflowPort"]) == ("acme", "5300")
    assert dev["mlops-platform:pipelineConfig"] == "models/churn/pipeline.yaml"
    assert not (project / "Pulumi.staging.yaml").exists() and (project / "Pulumi.prod.yaml").exists()
    run(["git", "init", "-q", "-b", "main"], project)
    commit(project, "copier copy of the template v1.0.0")

    write_first_model(project, "churn", tmp_path / "state")
    commit(project, "our churn model: its table, config and feature code")
    # The tests that read a team's files (its config, its feature code, its requirements); the rest of the unit
    # tier is the template's own, run on the template itself.
    team_tests = [f"tests/unit/test_{name}.py" for name in ("config", "model_configs", "team_requirements")]
    assert " passed" in in_project(project, "-m", "pytest", *team_tests, "-q", "-x", "-p", "no:cacheprovider")
    try:
        in_project(project, "-m", "pipelines", "platform")
        trained = in_project(project, "-m", "pipelines", "train")  # no MODEL=: the answers' first model
        assert "churn" in trained
        in_project(project, "-m", "pipelines", "validate")
    finally:
        in_project(project, "-m", "pipelines", "down")

    config = project / "models" / "churn" / "pipeline.yaml"
    config.write_text(config.read_text().replace("accuracy: 0.7,", "accuracy: 0.72,"))
    stack = project / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text() + '  mlops-platform:servingMemoryMb: "2048"\n')
    readme = project / "README.md"
    readme.write_text("# Acme's churn platform\n" + readme.read_text().split("\n", 1)[1])
    commit(project, "a stricter gate, more serving memory, our title")

    release_v1_1(template)
    copier("update", "--vcs-ref", "v1.1.0", cwd=project)
    assert (project / "pipelines" / "validate.py").read_text().endswith("# v1.1.0: the template's fix\n")
    assert "timeout-minutes: 60" in (project / ".github" / "workflows" / "ci.yml").read_text()
    team_config = config.read_text()
    assert "  eval_fraction: 0.25\n" in team_config and "holdout_fraction" not in team_config  # the migration
    assert "accuracy: 0.72," in team_config and (project / "models/churn/churn_code/features.py").is_file()
    assert stack.read_text().endswith('  mlops-platform:servingMemoryMb: "2048"\n')
    assert yaml.safe_load((project / ANSWERS).read_text())["_commit"] == "v1.1.0"
    assert "data version" in in_project(project, "-m", "pipelines", "data")  # the renamed key is read
    status = run(["git", "status", "--porcelain"], project)
    marker = re.compile(r"^<<<<<<< before updating$", re.MULTILINE)  # a line of its own, not a doc's mention
    conflicted = [name for name in files(project) if marker.search((project / name).read_text(errors="replace"))]
    assert conflicted == ["README.md"] and "UU README.md" in status.splitlines(), status  # a git conflict
    print(f"copy, unit tier, train + validate, update: {time.monotonic() - started:.0f} s")
