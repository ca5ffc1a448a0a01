"""BentoML serving: the runtime image (no model) or a release image, writing the inference log to a volume.

Each release is its own container (its name carries the model version and the image), so `pulumi up`
replaces it create-before-delete: the new container starts beside the old one and must be ready before
the old one is stopped, which drains first (services/serving/entrypoint.sh). The front routes between
them (infra/front.py); docs/zero-downtime.md walks through a release.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import ModelRelease, StackConfig
from containers import (
    child_of,
    healthcheck,
    http_probe,
    mount,
    secret_files,
    service_container,
    service_image,
    volume,
)

from services.access import token_digest
from services.contract import (
    CANARY_WEIGHT_ENV,
    INFERENCE_LOG_ENV,
    INFERENCE_LOG_MOUNT,
    MODEL_LABEL,
    MODEL_VERSION_OUTPUT,
    NO_IMAGE,
    NO_VERSION,
    REFUSED_TOKENS_FILE_ENV,
    SERVING_IMAGE_OUTPUT,
    SERVING_RUNTIME_REPOSITORY,
    SERVING_TOKEN_FILE_ENV,
    SMOKE_TOKEN_FILE_ENV,
    TEAM_TOKEN_FILE_ENV,
    canary_weight_percent,
    inference_log_dir,
    model_key,
    serving_alias,
    serving_workers_env,
)

SERVING_PORT = 3000
# Drain (SERVING_DRAIN_SECONDS in the image) plus the server's own graceful stop, with room to spare.
STOP_GRACE_SECONDS = 45


@dataclass(frozen=True)
class ServingArgs:
    config: StackConfig
    network: docker.Network
    tracking_url: str


@dataclass(frozen=True)
class ModelContainers:
    """One model's release containers: its champion, and a canary or a candidate beside it when set."""

    champion: docker.Container | None
    canary: docker.Container | None
    candidate: docker.Container | None


class Serving(pulumi.ComponentResource):
    """The model servers: the default model's as http://serving:3000 on the network, every other model's by its own
    aliases (services.contract.serving_alias), which the front routes `/models/<name>/` to.

    The runtime image is always built: it is what a fresh stack serves ("no model deployed yet") and
    what `services/serving/release.Dockerfile` builds each release image from. Config `servingImage`
    names the release image to serve instead. Another model without a release image has no container.
    """

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Serving", name, None, opts)
        self._name = name
        config = args.config
        self.inference_log = volume(f"{name}-inference-log", "inference-log", config, child_of(self))
        self.runtime_image = service_image(
            f"{name}-runtime-image", "serving", config, child_of(self), repository=SERVING_RUNTIME_REPOSITORY
        )
        # Credentials arrive as files: /predict and /metrics need the token, the smoke token marks a release's checks.
        secret_envs, self._uploads = secret_files([(SERVING_TOKEN_FILE_ENV, config.serving_token, "serving-token"),
                                                   (SMOKE_TOKEN_FILE_ENV, config.smoke_token, "smoke-token")])
        self._tracking_env, self._secret_envs = f"MLFLOW_TRACKING_URI={args.tracking_url}", secret_envs
        self._network, self._config = args.network, config
        if config.serving_image:
            self.image_name: pulumi.Output[str] = pulumi.Output.from_input(config.serving_image)
        else:  # a fresh stack: the runtime server is healthy but never ready, so liveness is its health
            self.image_name = self.runtime_image.image_name
        default = self._model(None, config.release, config.memory.serving, config.serving_workers,
                              self.runtime_image.repo_digest)
        self.container, self.canary, self.candidate = default.champion, default.canary, default.candidate
        self.models = {model.name: self._model(model.name, model.release, model.memory_mb, model.workers)
                       for model in config.models}
        # What serves each other model, as its stack outputs (the release pointer's fallback, `make status`).
        self.model_outputs = {key: value for model in config.models for key, value in (
            (model_key(SERVING_IMAGE_OUTPUT, model.name), model.release.serving_image or NO_IMAGE),
            (model_key(MODEL_VERSION_OUTPUT, model.name), model.release.model_version))}
        release = config.release
        self.model_version = release.model_version
        self.canary_version = release.canary_version if release.canary_image else NO_VERSION
        self.candidate_version = release.candidate_version if release.candidate_image else NO_VERSION
        self.register_outputs({"image": self.image_name, "model_version": self.model_version,
                               "canary_version": self.canary_version, "candidate_version": self.candidate_version})

    def _model(self, model: str | None, release: ModelRelease, memory_mb: int, workers: int | None,
               runtime_image: pulumi.Output[str] | None = None) -> ModelContainers:
        """`model`'s containers (None: the default model's, which serves `runtime_image` without a release), each
        writing the model's own inference log folder and, with `workers`, running that many worker processes.

        A release is healthy once ready to predict, so `pulumi up` moves on only then. A canary takes its
        canaryPercent of the model's requests (the front reads its weight from the container's agent); a candidate
        is out of every user-facing backend: the release smoke-checks it through the front's routing header and
        only then makes its image the champion's (docs/zero-downtime.md). Removing either from the config removes
        it, drained like any release."""
        envs = [self._tracking_env, f"{INFERENCE_LOG_ENV}={inference_log_dir(model)}", *self._secret_envs,
                *(["=".join(serving_workers_env(workers))] if workers is not None else [])]

        def server(role: str, image: str | None, version: str, extra_envs: list[str] | None = None) -> docker.Container:
            suffix = "" if model is None else f"-{model}"
            resource = f"{self._name}-{'server' if role == 'release' else role}{suffix}"
            image_id = self._release_image(f"{role}{suffix}", image) if image else runtime_image
            return self._server(resource, serving_alias(role, model), image_id, version, memory_mb,
                                "/readyz" if image else "/livez", model or self._config.model_name,
                                [*envs, *(extra_envs or [])])

        champion = (server("release", release.serving_image, release.model_version)
                    if release.serving_image or runtime_image is not None else None)
        canary = (server("canary", release.canary_image, release.canary_version,
                         [f"{CANARY_WEIGHT_ENV}={canary_weight_percent(release.canary_percent)}"])
                  if release.canary_image else None)
        candidate = (server("candidate", release.candidate_image, release.candidate_version)
                     if release.candidate_image else None)
        return ModelContainers(champion, canary, candidate)

    def _release_image(self, role: str, image: str) -> pulumi.Output[str]:
        pulled = docker.RemoteImage(f"{self._name}-{role}-image", name=image, keep_locally=True, opts=child_of(self))
        return pulled.image_id

    def _server(self, resource_name: str, service: str, image_id: pulumi.Output[str], version: str, memory_mb: int,
                health_path: str, model: str, envs: list[str]) -> docker.Container:
        config = self._config
        team_envs, team_uploads = self._team_files(model)
        return service_container(
            resource_name, config,
            service=service,
            name_suffix=image_id.apply(lambda image: f"-v{version}-{_short_hash(image)}"),
            image=image_id,
            network=self._network,
            memory_mb=memory_mb,
            health=healthcheck(http_probe(SERVING_PORT, health_path), interval="5s"),
            envs=[*envs, *team_envs],
            volumes=[mount(self.inference_log, INFERENCE_LOG_MOUNT)],
            uploads=[*self._uploads, *team_uploads],
            access_controlled=config.serving_token is not None,
            stop_grace_seconds=STOP_GRACE_SECONDS,
            labels={MODEL_LABEL: model},
            opts=child_of(self),
        )

    def _team_files(self, model: str) -> tuple[list[str], list[docker.ContainerUploadArgs]]:
        """With teams: the token of `model`'s team, which its containers admit, and the other teams' tokens by their
        SHA-256 only, which they refuse with 403. The check stays in the container, beside the data it guards, as
        every other credential check (the front holds none); the digests keep a container from holding, in clear,
        a token that works at another team's models."""
        team = self._config.team_of(model)
        others = [other.serving_token for other in self._config.teams if other is not team]
        refused = pulumi.Output.all(*others).apply(
            lambda tokens: "".join(f"{token_digest(token)}\n" for token in tokens)) if others else None
        return secret_files([(TEAM_TOKEN_FILE_ENV, team.serving_token if team else None, "team-serving-token"),
                             (REFUSED_TOKENS_FILE_ENV, refused, "refused-token-digests")])


def _short_hash(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()[:10]
