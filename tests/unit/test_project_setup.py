"""The copy-time step writes the copier answers into the team's stack files, line by line, and with the
template's defaults changes nothing (so the template renders to itself)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.config import REPO_ROOT
from pipelines.project_setup import PROJECT, TEMPLATE_PORTS, main, set_key, set_up

STACK_FILES = sorted(path.name for path in REPO_ROOT.glob("Pulumi.*.yaml"))
# Stack files as the template ships them (a project's own may already hold other answers).
TEMPLATE_STACKS = {
    "dev": ("mlops", 5000, 3000, 8000), "staging": ("mlops-staging", 5100, 3100, 8100),
    "prod": ("mlops-prod", 5000, 3000, 8000)}


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    for stack, (prefix, *ports) in TEMPLATE_STACKS.items():
        lines = [f"# the {stack} stack", "config:", f"  {PROJECT}:namePrefix: {prefix}"]
        lines += [f'  {PROJECT}:{key}: "{port}"' for key, port in zip(TEMPLATE_PORTS, ports, strict=True)]
        lines += ["  # the served model's config", f"  {PROJECT}:pipelineConfig: pipelines/pipeline.yaml"]
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path


def config(root: Path, stack: str) -> dict[str, str]:
    raw = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.removeprefix(f"{PROJECT}:"): value for key, value in raw.items()}


def test_the_templates_defaults_change_no_byte_of_the_committed_stack_files(tmp_path, capsys):
    for name in STACK_FILES:
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    main(["--root", str(tmp_path), "--name-prefix", "mlops"])
    for name in STACK_FILES:
        assert (tmp_path / name).read_bytes() == (REPO_ROOT / name).read_bytes()
    assert "already hold these answers" in capsys.readouterr().out


def test_answers_reach_every_stack_keeping_its_suffix_own_ports_and_comments(stacks):
    ports = {"mlflowPort": 5200, "servingPort": 3200, "monitoringUiPort": 8200}
    changed = set_up(stacks, "acme", ports, "kubernetes", "churn")
    dev, staging = config(stacks, "dev"), config(stacks, "staging")
    assert (dev["namePrefix"], staging["namePrefix"]) == ("acme", "acme-staging")
    prod = config(stacks, "prod")
    assert (dev["mlflowPort"], dev["monitoringUiPort"], prod["servingPort"]) == ("5200", "8200", "3200")
    assert staging["mlflowPort"] == "5100"  # its own port, beside dev's on a shared host
    assert dev["target"] == "kubernetes"
    assert (dev["pipelineConfig"], dev["modelName"]) == ("models/churn/pipeline.yaml", "churn")
    assert "  # the served model's config\n" in (stacks / "Pulumi.dev.yaml").read_text()
    assert any(line.startswith("Pulumi.dev.yaml: namePrefix=acme, mlflowPort=5200") for line in changed)
    assert set_up(stacks, "acme", ports, "kubernetes", "churn") == []  # a second run has nothing left to do


def test_a_key_the_file_lacks_is_added_and_a_team_prefix_is_left_alone(tmp_path):
    text = f"config:\n  {PROJECT}:namePrefix: team-own\n"
    assert set_key(text, "modelName", "churn").endswith(f"  {PROJECT}:modelName: churn\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    assert set_up(tmp_path, "acme", TEMPLATE_PORTS, "docker", None) == []
