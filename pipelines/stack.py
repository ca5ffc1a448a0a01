"""Release to the Docker stack: one immutable serving image per model version, rolled out by Pulumi.

The image is the stack's serving runtime image plus one exported bento (`services/serving/release.Dockerfile`).
Rolling it out sets the stack config `servingImage` / `modelVersion` and applies the stack. Applying is
the one seam: `PulumiStack` uses the Pulumi Automation API (users, with the Pulumi CLI installed);
the tests pass a harness that applies the same program's declarations to a real Docker daemon.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from pipelines.bento import BuiltBento, use_store
from pipelines.config import REPO_ROOT, PipelineConfig

RELEASE_DOCKERFILE = REPO_ROOT / "services" / "serving" / "release.Dockerfile"


class StackError(RuntimeError):
    """The stack could not be read, built for or applied."""


class StackApplier(Protocol):
    """What a release needs of a stack: its config, and applying config changes."""

    def config(self) -> Mapping[str, str]: ...

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        """Set these stack config keys, bring the stack up to date, return the new outputs."""
        ...


class PulumiStack:
    """A Pulumi stack of this repo's program, driven through the Automation API (needs the Pulumi CLI)."""

    def __init__(self, name: str) -> None:
        from pulumi import automation

        self._auto = automation
        try:
            self._stack = automation.select_stack(stack_name=name, work_dir=str(REPO_ROOT))
        except Exception as exc:  # the CLI missing, not logged in, no such stack: its message says which
            raise StackError(f"cannot select Pulumi stack '{name}': {exc}") from None

    def config(self) -> Mapping[str, str]:
        return {key.split(":", 1)[-1]: value.value for key, value in self._stack.get_all_config().items()
                if not value.secret}

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        try:
            for key, value in changes.items():
                self._stack.set_config(key, self._auto.ConfigValue(value=value))
            result = self._stack.up(on_output=print, show_secrets=False)
        except Exception as exc:  # CommandError and friends: the engine's own message says what failed
            raise StackError(f"pulumi up of stack '{self._stack.name}' failed: {exc}") from None
        return {key: str(value.value) for key, value in result.outputs.items() if not value.secret}


def _prefix(stack_config: Mapping[str, str]) -> str:
    return stack_config.get("namePrefix", "mlops")  # infra/config.py's default


def runtime_image(stack_config: Mapping[str, str]) -> str:
    """The serving runtime image the stack builds (infra/serving.py names it the same way)."""
    return f"{_prefix(stack_config)}-serving-runtime:{stack_config.get('imageTag', 'latest')}"


def build_release_image(config: PipelineConfig, bento: BuiltBento, stack_config: Mapping[str, str]) -> str:
    """Export the bento (with its models) and build `<prefix>-serving:<bento version>` on the runtime image."""
    use_store(config)
    import bentoml

    tag = f"{_prefix(stack_config)}-serving:{bento.tag.split(':', 1)[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        archive, context = Path(tmp) / "release.bento", Path(tmp) / "bento"
        bentoml.export_bento(bento.tag, str(archive))
        with tarfile.open(archive) as bundle:
            bundle.extractall(context, filter="data")
        command = [
            "docker", "build", "--network", "host", "--file", str(RELEASE_DOCKERFILE), "--tag", tag,
            "--build-arg", f"RUNTIME_IMAGE={runtime_image(stack_config)}",
            "--build-arg", f"MODEL_VERSION={bento.model_version}", str(context),
        ]
        # The classic builder: hosts without buildx (air-gapped ones, these CI machines) have only it.
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if done.returncode != 0:
        raise StackError(f"building release image {tag} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return tag
