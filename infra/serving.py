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
from config import StackConfig
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

from services.contract import (
    CANARY_WEIGHT_ENV,
    INFERENCE_LOG_ENV,
    INFERENCE_LOG_MOUNT,
    NO_VERSION,
    SERVING_RUNTIME_REPOSITORY,
    SERVING_TOKEN_FILE_ENV,
    SMOKE_TOKEN_FILE_ENV,
    canary_weight_percent,
)

SERVING_PORT = 3000
CANARY_ALIAS = "serving-canary"  # the front's canary servers (services/front/haproxy.cfg)
CANDIDATE_ALIAS = "serving-candidate"  # the front's candidate servers: only routed checks reach them
# Drain (SERVING_DRAIN_SECONDS in the image) plus the server's own graceful stop, with room to spare.
STOP_GRACE_SECONDS = 45


@dataclass(frozen=True)
class ServingArgs:
    config: StackConfig
    network: docker.Network
    tracking_url: str


class Serving(pulumi.ComponentResource):
    """The model server, reachable as http://serving:3000 on the network.

    The runtime image is always built: it is what a fresh stack serves ("no model deployed yet") and
    what `services/serving/release.Dockerfile` builds each release image from. Config `servingImage`
    names the release image to serve instead.
    """

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Serving", name, None, opts)
        self._name = name
        config = args.config
        self.inference_log = volume(f"{name}-inference-log", "inference-log", config, child_of(self))
        self.runtime_image = service_image(
            f"{name}-runtime-image", "serving", config, child_of(self), repository=SERVING_RUNTIME_REPOSITORY
        )
        if config.serving_image:
            self.image_name: pulumi.Output[str] = pulumi.Output.from_input(config.serving_image)
            image_id = self._release_image("release", config.serving_image)
        else:
            self.image_name = self.runtime_image.image_name
            image_id = self.runtime_image.repo_digest
        # Credentials arrive as files: /predict and /metrics need the token, the smoke token marks a release's checks.
        secret_envs, self._uploads = secret_files([(SERVING_TOKEN_FILE_ENV, config.serving_token, "serving-token"),
                                                   (SMOKE_TOKEN_FILE_ENV, config.smoke_token, "smoke-token")])
        self._envs = [f"MLFLOW_TRACKING_URI={args.tracking_url}", f"{INFERENCE_LOG_ENV}={INFERENCE_LOG_MOUNT}",
                      *secret_envs]
        self._network, self._config = args.network, config
        # A release is healthy once ready to predict, so `pulumi up` moves on only then. Without a model the
        # runtime server is healthy but never ready: liveness is its health.
        self.container = self._server(f"{name}-server", "serving", image_id, config.model_version,
                                      "/readyz" if config.serving_image else "/livez")
        # A canary: the candidate beside the champion, taking canaryPercent of the requests (the front reads
        # its weight from the container's agent). Removing the config removes it, drained like any release.
        self.canary = None
        if config.canary_image:
            self.canary = self._server(
                f"{name}-canary", CANARY_ALIAS, self._release_image("canary", config.canary_image),
                config.canary_version, "/readyz",
                [f"{CANARY_WEIGHT_ENV}={canary_weight_percent(config.canary_percent)}"])
        # A release's candidate: beside the champion, out of every user-facing backend; the release smoke-checks
        # it through the front's routing header and only then makes its image the champion's (docs/zero-downtime.md).
        self.candidate = None
        if config.candidate_image:
            self.candidate = self._server(
                f"{name}-candidate", CANDIDATE_ALIAS, self._release_image("candidate", config.candidate_image),
                config.candidate_version, "/readyz")
        self.model_version = config.model_version
        self.canary_version = config.canary_version if config.canary_image else NO_VERSION
        self.candidate_version = config.candidate_version if config.candidate_image else NO_VERSION
        self.register_outputs({"image": self.image_name, "model_version": self.model_version,
                               "canary_version": self.canary_version, "candidate_version": self.candidate_version})

    def _release_image(self, role: str, image: str) -> pulumi.Output[str]:
        pulled = docker.RemoteImage(f"{self._name}-{role}-image", name=image, keep_locally=True, opts=child_of(self))
        return pulled.image_id

    def _server(self, resource_name: str, service: str, image_id: pulumi.Output[str], version: str, health_path: str,
                extra_envs: list[str] | None = None) -> docker.Container:
        config = self._config
        return service_container(
            resource_name, config,
            service=service,
            name_suffix=image_id.apply(lambda image: f"-v{version}-{_short_hash(image)}"),
            image=image_id,
            network=self._network,
            memory_mb=config.memory.serving,
            health=healthcheck(http_probe(SERVING_PORT, health_path), interval="5s"),
            envs=[*self._envs, *(extra_envs or [])],
            volumes=[mount(self.inference_log, INFERENCE_LOG_MOUNT)],
            uploads=self._uploads,
            access_controlled=config.serving_token is not None,
            stop_grace_seconds=STOP_GRACE_SECONDS,
            opts=child_of(self),
        )


def _short_hash(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()[:10]
