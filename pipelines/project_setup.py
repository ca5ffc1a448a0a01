"""The copy-time step of `copier copy`: writes the answers that live in the team's stack files.

The stack files (`Pulumi.<stack>.yaml`) are the team's from the first copy on, so copier does not render them;
this step sets, once, the values the copier questions asked: the name prefix, the ports (in the stacks on the
template's ports), the target and the served model. It edits only those lines (comments and every other key
stay as written) and prints what it changed. With the template's defaults it changes nothing, so rendering
the template yields the template. Standard library only: copier's own Python runs it, before the project has
an environment.

    python -m pipelines.project_setup --name-prefix acme --mlflow-port 5200 ... [--first-model churn]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

PROJECT = "mlops-platform"  # Pulumi.yaml's name: every stack-file key is `<project>:<key>`
TEMPLATE_PREFIX = "mlops"  # the template's namePrefix; a stack's own suffix (mlops-staging) is kept
TEMPLATE_PORTS = {"mlflowPort": 5000, "servingPort": 3000, "monitoringUiPort": 8000}
PORT_FLAGS = {"mlflowPort": "--mlflow-port", "servingPort": "--serving-port",
              "monitoringUiPort": "--monitoring-ui-port"}
TEMPLATE_TARGET = "docker"


def _line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^(?P<lead>\s+{re.escape(PROJECT)}:{key}:\s*)(?P<value>\S.*?)\s*$", re.MULTILINE)


def read_key(text: str, key: str) -> str | None:
    """A key's value as the file writes it, unquoted; None when the file does not set it."""
    match = _line(key).search(text)
    return match["value"].strip("\"'") if match else None


def set_key(text: str, key: str, value: str) -> str:
    """The file with `key` set to `value`: its own line rewritten, or a line added at the end."""
    shown = f'"{value}"' if value.isdigit() or value in ("true", "false") else value
    pattern = _line(key)
    if pattern.search(text):
        return pattern.sub(lambda match: f"{match['lead']}{shown}", text, count=1)
    return f"{text.rstrip(chr(10))}\n  {PROJECT}:{key}: {shown}\n"


def stack_values(text: str, prefix: str, ports: dict[str, int], target: str, first_model: str | None) -> dict:
    """The keys this stack file should now hold: the answers, each stack keeping its own offset or suffix."""
    wanted: dict[str, str] = {}
    current_prefix = read_key(text, "namePrefix")
    if current_prefix and (current_prefix == TEMPLATE_PREFIX or current_prefix.startswith(f"{TEMPLATE_PREFIX}-")):
        wanted["namePrefix"] = prefix + current_prefix.removeprefix(TEMPLATE_PREFIX)
    for key, port in ports.items():
        if read_key(text, key) == str(TEMPLATE_PORTS[key]):  # staging's own ports (5100, ...) stay as they are
            wanted[key] = str(port)
    if target != TEMPLATE_TARGET:
        wanted["target"] = target
    if first_model:
        wanted["pipelineConfig"] = f"models/{first_model}/pipeline.yaml"
        wanted["modelName"] = first_model
    return {key: value for key, value in wanted.items() if read_key(text, key) != value}


def set_up(root: Path, prefix: str, ports: dict[str, int], target: str, first_model: str | None) -> list[str]:
    """Writes the answers into every stack file under `root`; returns one line per file changed."""
    changed = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        text = path.read_text()
        values = stack_values(text, prefix, ports, target, first_model)
        for key, value in values.items():
            text = set_key(text, key, value)
        if values:
            path.write_text(text)
            changed.append(f"{path.name}: " + ", ".join(f"{key}={value}" for key, value in values.items()))
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--name-prefix", required=True)
    for key, flag in PORT_FLAGS.items():
        parser.add_argument(flag, type=int, default=TEMPLATE_PORTS[key], dest=key)
    parser.add_argument("--target", choices=("docker", "kubernetes"), default=TEMPLATE_TARGET)
    parser.add_argument("--first-model", default="")
    args = parser.parse_args(argv)
    ports = {key: getattr(args, key) for key in TEMPLATE_PORTS}
    changed = set_up(args.root, args.name_prefix, ports, args.target, args.first_model or None)
    for line in changed:
        print(f"set in {line}")
    print(f"stack files in {args.root.resolve()}: " + ("updated" if changed else "already hold these answers"))


if __name__ == "__main__":
    main()
