"""The serving front: HAProxy on the published serving port, routing to whichever serving containers are ready.

Releases go through it without dropping a request (docs/zero-downtime.md): it finds the serving
containers by their network alias, sends requests only to those whose `/readyz` answers, and sends a
request again when its server refused or closed the connection unanswered. With `tlsCertificate` set it
terminates TLS on that port (services/front/haproxy.cfg), from the certificate and key uploaded as one file.
Requests to `/models/<name>/...` go to that model's own containers (services/front/model_routes.py). Its
routing header reaches a release's candidate or canary only on a request that carries the stack's smoke
token, which it knows by its SHA-256 only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import StackConfig
from containers import (
    SECRETS_DIR,
    child_of,
    config_file,
    healthcheck,
    http_probe,
    published,
    secret_file,
    service_container,
    service_image,
)

from services.front.model_routes import BACKENDS_FILE, MAP_FILE, model_backends, models_map

FRONT_PORT = 3000
HEALTH_PATH = "/-/front"  # HAProxy's monitor-uri (services/front/haproxy.cfg)
# haproxy.cfg binds with `ssl crt` on this file when the variable is set; only HAProxy's user reads it.
TLS_CERT_FILE_ENV, TLS_CERT_FILE = "FRONT_TLS_CERT_FILE", f"{SECRETS_DIR}/front-tls.pem"
# haproxy.cfg honours the routing header only with a smoke token whose SHA-256 (upper-case hex, as its `hex`
# converter writes) is the line of this file; without the variable it honours it never.
SMOKE_TOKEN_FILE_ENV, SMOKE_TOKEN_FILE = "FRONT_SMOKE_TOKEN_FILE", f"{SECRETS_DIR}/front-smoke-token.sha256"


def smoke_token_digest(token: str) -> str:
    """The file's content: one HAProxy pattern, the token's digest (a token may hold what a pattern file would
    read as a comment or blank; its hex digest never does)."""
    return hashlib.sha256(token.encode()).hexdigest().upper() + "\n"


@dataclass(frozen=True)
class FrontArgs:
    config: StackConfig
    network: docker.Network


class Front(pulumi.ComponentResource):
    """The stack's serving URL. It holds no data: credentials are checked by the serving containers."""

    def __init__(self, name: str, args: FrontArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Front", name, None, opts)
        config = args.config
        image = service_image(f"{name}-image", "front", config, child_of(self))
        tls = config.tls
        secrets = [(TLS_CERT_FILE_ENV, TLS_CERT_FILE, tls.pem_bundle())] if tls else []
        if config.smoke_token is not None:
            secrets.append((SMOKE_TOKEN_FILE_ENV, SMOKE_TOKEN_FILE, config.smoke_token.apply(smoke_token_digest)))
        self.container = service_container(
            f"{name}-proxy", config,
            service="front",
            image=image.repo_digest,
            network=args.network,
            memory_mb=config.memory.front,
            health=healthcheck(http_probe(FRONT_PORT, HEALTH_PATH, tls=tls is not None), start_period="10s",
                               interval="5s"),
            ports=[published(FRONT_PORT, config.serving_port, config)],
            envs=[f"{env}={path}" for env, path, _ in secrets],
            uploads=[*self._routes(config), *(secret_file(path, content) for _, path, content in secrets)],
            # Every path it relays needs the serving token when access control is on; its own is a liveness 200.
            access_controlled=config.serving_token is not None,
            opts=child_of(self),
        )
        scheme = "https" if tls else "http"
        self.url = pulumi.Output.from_input(f"{scheme}://127.0.0.1:{config.serving_port}")
        # With TLS, the name the certificate carries, which 127.0.0.1 is not: a release's checks verify against it.
        self.tls_server_name = tls.server_name() if tls else None
        self.register_outputs({"url": self.url})

    @staticmethod
    def _routes(config: StackConfig) -> list[docker.ContainerUploadArgs]:
        """`/models/<name>/` for every model the stack declares, each to its own backends (the default model's are
        haproxy.cfg's own). They change only with the stack file's `models`, never with a release."""
        others = [model.name for model in config.models]
        return [config_file(MAP_FILE, models_map(config.model_name, others)),
                config_file(BACKENDS_FILE, model_backends(others))]
