"""The stack serving target: one immutable serving image per model version, rolled out by Pulumi.

The image is the stack's serving runtime image plus one exported bento (`services/serving/release.Dockerfile`).
Rolling it out sets the stack config `servingImage` / `modelVersion` and applies the stack, then checks
the stack's serving URL like any target; a failed check re-applies what served before. Applying is the
one seam: `PulumiStack` uses the Pulumi Automation API (users, with the Pulumi CLI installed); the tests
pass a harness that applies the same program's declarations to a real Docker daemon.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, Protocol

from pipelines.bento import BuiltBento, use_store
from pipelines.canary import CANDIDATE, CHAMPION, CanaryError, DockerWindow, Verdict, watch
from pipelines.cluster import ReleaseError, port_forward, push_release_image
from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.deploy import DeployError, check_serving, release_check_headers
from pipelines.errors import CannotRun
from pipelines.platform import PlatformError, url_ok, wait_until
from pipelines.serving_state import Deployment
from services.contract import (
    CANARY_ROUTE_HEADER,
    CANARY_ROUTE_VALUE,
    DEFAULT_IMAGE_TAG,
    DEFAULT_NAME_PREFIX,
    SERVING_RELEASE_REPOSITORY,
    SERVING_RUNTIME_REPOSITORY,
    image_ref,
)

RELEASE_DOCKERFILE = REPO_ROOT / "services" / "serving" / "release.Dockerfile"


class StackError(CannotRun):
    """The stack could not be read, built for or applied."""


class StackApplier(Protocol):
    """What a release needs of a stack: its config, its secrets, and applying config changes."""

    def config(self) -> Mapping[str, str]: ...

    def secret(self, key: str) -> str | None:
        """A secret of the stack config (the serving and smoke tokens), None when unset."""
        ...

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

    def secret(self, key: str) -> str | None:
        values = self._stack.get_all_config()  # the Automation API hands secrets to the program decrypted
        found = next((value for name, value in values.items() if name.split(":", 1)[-1] == key), None)
        return found.value if found is not None and found.secret else None

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        try:
            for key, value in changes.items():
                self._stack.set_config(key, self._auto.ConfigValue(value=value))
            result = self._stack.up(on_output=print, show_secrets=False)
        except Exception as exc:  # CommandError and friends: the engine's own message says what failed
            raise StackError(f"pulumi up of stack '{self._stack.name}' failed: {exc}") from None
        return {key: str(value.value) for key, value in result.outputs.items() if not value.secret}


class StackTarget:
    """Serve a bento on the stack: build its release image, apply the stack with it, check it over HTTP."""

    def __init__(self, config: PipelineConfig, stack: StackApplier, name: str = "stack") -> None:
        self.config = config
        self.stack = stack
        self.name = name

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        return self._serve(bento, smoke)

    def _serve(self, bento: BuiltBento, smoke: list[dict], also: Mapping[str, str] | None = None) -> Deployment:
        """Make the bento the champion's container (with `also` applied in the same update); check it."""
        try:
            stack_config = self.stack.config()
            image = build_release_image(self.config, bento, stack_config)
            kubernetes = stack_config.get("target") == "kubernetes"
            if kubernetes:  # the cluster pulls the image from its registry
                image = push_release_image(image, stack_config.get("imageRegistry", ""))
        except (StackError, ReleaseError) as exc:
            raise DeployError(str(exc)) from None
        # What serves now; the stack's defaults mean the runtime image's "no model deployed" state.
        before = {"servingImage": stack_config.get("servingImage", ""),
                  "modelVersion": stack_config.get("modelVersion", "none"), **(also or {})}
        try:
            outputs = self.stack.apply({"servingImage": image, "modelVersion": bento.model_version, **(also or {})})
            # A kubernetes stack's serving URL is in-cluster: the checks go through a port-forward.
            reach = (port_forward(outputs["kubernetes_namespace"], "serving", 3000) if kubernetes
                     else contextlib.nullcontext(outputs["serving_url"]))
            with reach as url:
                wait_until(lambda: url_ok(f"{url}/readyz"), None, self.config.platform.startup_timeout_s,
                           f"{image} at {url}")
                check_serving(url, bento, smoke, f"the stack's serving logs ({image})", self._check_headers())
            url = outputs["serving_url"]
        except (DeployError, PlatformError, StackError, ReleaseError) as failure:
            self._restore(before, failure)
        return Deployment(bento.tag, bento.model_version, url, datetime.now(UTC).isoformat())

    def roll_out_canary(self, bento: BuiltBento, smoke: list[dict], percent: int) -> tuple[Deployment | None, Verdict]:
        """Serve the bento as a canary beside the champion, judge it on live traffic, then promote it (the
        champion drains) or remove it. Any failure removes the canary; the champion serves throughout."""
        try:
            stack_config = self.stack.config()
            if stack_config.get("target") == "kubernetes":
                raise StackError("canary releases run on the docker target only (its front weighs the canary)")
            image = build_release_image(self.config, bento, stack_config)
        except StackError as exc:
            raise DeployError(str(exc)) from None
        champion = stack_config.get("modelVersion", "none")
        without_canary = {"canaryImage": "", "canaryVersion": "none"}
        since = datetime.now(UTC)
        try:
            url = self.stack.apply({"canaryImage": image, "canaryVersion": bento.model_version,
                                    "canaryPercent": str(percent)})["serving_url"]
            to_canary = {CANARY_ROUTE_HEADER: CANARY_ROUTE_VALUE}
            wait_until(lambda: url_ok(f"{url}/readyz", headers=to_canary), None,
                       self.config.platform.startup_timeout_s, f"canary {image} behind {url}")
            check_serving(url, bento, smoke, f"the canary container's logs ({image})",
                          {**self._check_headers(), **to_canary})
            window = DockerWindow(_prefix(stack_config), {CHAMPION: champion, CANDIDATE: bento.model_version}, since)
            verdict = watch(window, self.config.canary)
        except (DeployError, PlatformError, StackError, CanaryError) as failure:
            self._restore(without_canary, failure)
        if not verdict.promote:
            self._apply_or_explain(without_canary)
            return None, verdict
        # Promotion is one more release: the candidate's image becomes the champion's container (started
        # beside the old one, which drains), and the canary container goes.
        return self._serve(bento, smoke, also=without_canary), verdict

    def _check_headers(self) -> dict[str, str]:
        return release_check_headers(self.stack.secret("smokeToken"), self.stack.secret("servingToken"))

    def _restore(self, before: Mapping[str, str], failure: Exception) -> NoReturn:
        try:
            self.stack.apply(before)
        except StackError as exc:
            raise DeployError(f"{failure}\nand re-applying what served before failed too: {exc}") from None
        raise DeployError(str(failure)) from None

    def _apply_or_explain(self, changes: Mapping[str, str]) -> None:
        try:
            self.stack.apply(changes)
        except StackError as exc:
            raise DeployError(f"removing the canary failed: {exc}") from None


def _prefix(stack_config: Mapping[str, str]) -> str:
    return stack_config.get("namePrefix", DEFAULT_NAME_PREFIX)


def runtime_image(stack_config: Mapping[str, str]) -> str:
    """The serving runtime image the stack builds."""
    return image_ref(_prefix(stack_config), SERVING_RUNTIME_REPOSITORY, stack_config.get("imageTag", DEFAULT_IMAGE_TAG))


def build_release_image(config: PipelineConfig, bento: BuiltBento, stack_config: Mapping[str, str]) -> str:
    """Export the bento (with its models) and build `<prefix>-serving:<bento version>` on the runtime image."""
    use_store(config)
    import bentoml

    tag = image_ref(_prefix(stack_config), SERVING_RELEASE_REPOSITORY, bento.tag.split(":", 1)[1])
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
