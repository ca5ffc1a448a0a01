"""The stack serving target: one immutable serving image per model version, rolled out by Pulumi.

The image is the stack's serving runtime image plus one exported bento (`services/serving/release.Dockerfile`).
Rolling it out on the docker target first starts the image as the stack's candidate (`candidateImage`),
beside the champion and reached only through the front's routing header, and smoke-checks it there; only
then does a second apply make it the champion (`servingImage` / `modelVersion`), which the release checks
again where users reach it. A failure re-applies what served before, which the registry knows
(`pipelines.release_pointer`), not the working copy's stack file. On a stack serving several models a release
sets only its own model's keys and checks it at its route (`pipelines.stack_models`); every apply carries what
serves each of the others. On kubernetes the rollout itself is
gated by readiness and the check follows it (no front there routes to a candidate). Applying the stack
is the one seam (`pipelines.pulumi_stack`).
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
from typing import NoReturn

from mlflow.exceptions import MlflowException

from pipelines.bento import BuiltBento, use_store
from pipelines.canary import CANDIDATE, CHAMPION, CanaryError, DockerWindow, Verdict, watch
from pipelines.canary_prometheus import PrometheusAnswers
from pipelines.cluster import ReleaseError, port_forward, push_release_image
from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.deploy import DeployError, ServesUnrecorded, check_serving, release_check_headers, release_lock
from pipelines.platform import PlatformError, url_ok, wait_until
from pipelines.pulumi_stack import StackApplier, StackError
from pipelines.release_pointer import RegistryPointer, record_options
from pipelines.serving_state import Deployment
from pipelines.stack_models import StackModel, stack_model, stack_models
from services.contract import (
    CANARY_IMAGE_KEY,
    CANARY_PERCENT_KEY,
    CANARY_ROUTE_HEADER,
    CANARY_ROUTE_VALUE,
    CANARY_VERSION_KEY,
    CANDIDATE_IMAGE_KEY,
    CANDIDATE_ROUTE_VALUE,
    CANDIDATE_VERSION_KEY,
    DEFAULT_IMAGE_TAG,
    DEFAULT_NAME_PREFIX,
    MODEL_VERSION_KEY,
    NO_IMAGE,
    NO_VERSION,
    PROMETHEUS_URL_OUTPUT,
    SERVING_IMAGE_KEY,
    SERVING_RELEASE_REPOSITORY,
    SERVING_RUNTIME_REPOSITORY,
    TLS_SERVER_NAME_OUTPUT,
    image_ref,
    kubernetes_serving_name,
)
from services.serving.requirements_check import LACKS

RELEASE_DOCKERFILE = REPO_ROOT / "services" / "serving" / "release.Dockerfile"
WITHOUT_CANDIDATE = {CANDIDATE_IMAGE_KEY: NO_IMAGE, CANDIDATE_VERSION_KEY: NO_VERSION}
WITHOUT_CANARY = {CANARY_IMAGE_KEY: NO_IMAGE, CANARY_VERSION_KEY: NO_VERSION}


class StackTarget:
    """Serve a bento on the stack: build its release image, check it beside the champion, then promote it.

    What serves comes from the registry (`RegistryPointer`), never from the working copy's stack file, and
    every apply carries it, so a release from a fresh checkout neither undeploys the champion nor, on a
    failure, "restores" the no-model image.
    """

    def __init__(self, config: PipelineConfig, stack: StackApplier, name: str = "stack",
                 pointer: RegistryPointer | None = None) -> None:
        self.config = config
        self.stack = stack
        self.name = name
        self.pointer = pointer or RegistryPointer(config)

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        try:
            stack_config = self.stack.config()
            model = stack_model(stack_config, self.config.model_name)
            serving = self.pointer.serving(stack_config, self.stack.outputs)
            image = build_release_image(self.config, bento, stack_config)
            if stack_config.get("target") == "kubernetes":  # the cluster pulls the image from its registry
                image = push_release_image(image, stack_config.get("imageRegistry", ""))
            else:  # the front routes the checks to a candidate beside the champion (no kubernetes front does)
                self._check_candidate(model, bento, smoke, image, serving)
        except (StackError, ReleaseError) as exc:
            raise DeployError(str(exc)) from None
        return self._promote(model, bento, smoke, image, serving, stack_config)

    def up(self) -> Mapping[str, str]:
        """Apply the stack serving what the registry says serves and nothing beside it (`pipelines stack-up`).

        Under the release lock, so it never races a release; a candidate or canary still in the stack config is
        a killed release's leftover, never a live one, and goes."""
        with release_lock(self.config):
            stack_config = self.stack.config()
            serving = self.pointer.serving(stack_config, self.stack.outputs)
            return self.stack.apply({**serving, **self._leftovers(stack_config)})

    @staticmethod
    def _leftovers(stack_config: Mapping[str, str]) -> dict[str, str]:
        """No candidate or canary of any model the stack serves."""
        return {key: value for model in stack_models(stack_config)
                for key, value in model.keys({**WITHOUT_CANDIDATE, **WITHOUT_CANARY}).items()}

    def _check_candidate(self, model: StackModel, bento: BuiltBento, smoke: list[dict], image: str,
                         serving: Mapping[str, str]) -> None:
        """Start the image beside the champion, out of the users' rotation, and smoke-check it through the
        front's routing header. A failure removes it and leaves the champion serving; a pass leaves it to
        the promotion, which removes it."""
        try:
            outputs = self.stack.apply({**serving, **model.keys({CANDIDATE_IMAGE_KEY: image,
                                                                 CANDIDATE_VERSION_KEY: bento.model_version})})
            self._check(model.url(outputs["serving_url"]), bento, smoke, f"candidate {image}",
                        {CANARY_ROUTE_HEADER: CANDIDATE_ROUTE_VALUE}, outputs.get(TLS_SERVER_NAME_OUTPUT))
        except (DeployError, PlatformError, StackError) as failure:
            self._restore({**serving, **model.keys(WITHOUT_CANDIDATE)}, failure)

    def _promote(self, model: StackModel, bento: BuiltBento, smoke: list[dict], image: str,
                 serving: Mapping[str, str], stack_config: Mapping[str, str],
                 also: Mapping[str, str] | None = None) -> Deployment:
        """Make the checked image the champion's container (with `also` in the same update; the old one drains,
        the candidate goes), check it where users reach it and record it as what serves."""
        kubernetes = stack_config.get("target") == "kubernetes"
        try:
            outputs = self.stack.apply({**serving, **model.keys({SERVING_IMAGE_KEY: image,
                                                                 MODEL_VERSION_KEY: bento.model_version,
                                                                 **WITHOUT_CANDIDATE, **(also or {})})})
            # A kubernetes stack's serving URL is in-cluster: the checks go through a port-forward to the model's
            # own Service (no front there routes /models/<name>/ in the cluster).
            reach = (port_forward(outputs["kubernetes_namespace"], kubernetes_serving_name(model.suffix), 3000)
                     if kubernetes else contextlib.nullcontext(model.url(outputs["serving_url"])))
            with reach as url:
                self._check(url, bento, smoke, image, server_name=outputs.get(TLS_SERVER_NAME_OUTPUT))
            url = model.url_in(outputs)
        except (DeployError, PlatformError, StackError, ReleaseError) as failure:
            self._restore({**serving, **model.keys({**WITHOUT_CANDIDATE, **(also or {})})}, failure)
        deployment = Deployment(bento.tag, bento.model_version, url, datetime.now(UTC).isoformat())
        try:
            self.pointer.record(stack_config, bento.model_version, image)
        except MlflowException as exc:  # the registry went away: the image serves all the same
            raise ServesUnrecorded(deployment, str(exc).splitlines()[0][:300],
                                   record_options(stack_config, image)) from None
        return deployment

    def _check(self, url: str, bento: BuiltBento, smoke: list[dict], what: str,
               route: Mapping[str, str] | None = None, server_name: str | None = None) -> None:
        """Ready, then the smoke request, at `url` (through `route`, the front's header, when given; as
        `server_name`, the name its TLS certificate carries, when the front terminates TLS)."""
        headers = {**self._check_headers(), **(route or {})}
        wait_until(lambda: url_ok(f"{url}/readyz", headers=headers, server_name=server_name), None,
                   self.config.platform.startup_timeout_s, f"{what} behind {url}")
        check_serving(url, bento, smoke, f"the serving logs of {what}", headers, server_name)

    def roll_out_canary(self, bento: BuiltBento, smoke: list[dict], percent: int) -> tuple[Deployment | None, Verdict]:
        """Serve the bento as a canary beside the champion, judge it on live traffic, then promote it (the
        champion drains) or remove it. Any failure removes the canary; the champion serves throughout."""
        try:
            stack_config = self.stack.config()
            if stack_config.get("target") == "kubernetes":
                raise StackError("canary releases run on the docker target only (its front weighs the canary)")
            model = stack_model(stack_config, self.config.model_name)
            serving = self.pointer.serving(stack_config, self.stack.outputs)
            image = build_release_image(self.config, bento, stack_config)
        except StackError as exc:
            raise DeployError(str(exc)) from None
        since = datetime.now(UTC)
        try:
            outputs = self.stack.apply({**serving, **model.keys({CANARY_IMAGE_KEY: image,
                                                                 CANARY_VERSION_KEY: bento.model_version,
                                                                 CANARY_PERCENT_KEY: str(percent)})})
            self._check(model.url(outputs["serving_url"]), bento, smoke, f"canary {image}",
                        {CANARY_ROUTE_HEADER: CANARY_ROUTE_VALUE}, outputs.get(TLS_SERVER_NAME_OUTPUT))
            versions = {CHAMPION: serving[model.key(MODEL_VERSION_KEY)], CANDIDATE: bento.model_version}
            # The stack's Prometheus where it publishes one; else (exposePorts stacks) the front's access log.
            prometheus = outputs.get(PROMETHEUS_URL_OUTPUT)
            answered = PrometheusAnswers(prometheus, bento.model.name, versions, since) if prometheus else None
            window = DockerWindow(_prefix(stack_config), versions, since, bento.model.task, answered,
                                  model.name, model.front_backend, model.inference_log)
            verdict = watch(window, self.config.canary)
        except (DeployError, PlatformError, StackError, CanaryError) as failure:
            self._restore({**serving, **model.keys(WITHOUT_CANARY)}, failure)
        if not verdict.promote:
            self._apply_or_explain({**serving, **model.keys(WITHOUT_CANARY)})
            return None, verdict
        # The canary passed the same checks a candidate does, and more: its image becomes the champion's
        # container (started beside the old one, which drains), and the canary container goes.
        return self._promote(model, bento, smoke, image, serving, stack_config, also=WITHOUT_CANARY), verdict

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
            "--build-arg", f"MODEL_NAME={bento.model.name}", "--build-arg", f"MODEL_VERSION={bento.model_version}",
            str(context),
        ]
        # The classic builder: hosts without buildx (air-gapped ones, these CI machines) have only it.
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if done.returncode != 0:
        raise release_build_error(tag, done.stdout + done.stderr)
    return tag


def release_build_error(tag: str, output: str) -> StackError:
    """What a failed release build says: the packages the bento needs that the runtime image lacks
    (release.Dockerfile's check), else the end of the build log."""
    if lacks := [line.strip() for line in output.splitlines() if line.strip().startswith(LACKS)]:
        return StackError(f"release image {tag} refused: " + "\n".join(dict.fromkeys(lacks)))
    return StackError(f"building release image {tag} failed:\n{output[-2000:]}")
