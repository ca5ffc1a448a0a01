"""The serving front: HAProxy on the published serving port, routing to whichever serving containers are ready.

Releases go through it without dropping a request (docs/zero-downtime.md): it finds the serving
containers by their network alias, sends requests only to those whose `/readyz` answers, and sends a
request again when its server refused or closed the connection unanswered.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import StackConfig
from containers import child_of, healthcheck, http_probe, published, service_container, service_image

FRONT_PORT = 3000
HEALTH_PATH = "/-/front"  # HAProxy's monitor-uri (services/front/haproxy.cfg)


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
        self.container = service_container(
            f"{name}-proxy", config,
            service="front",
            image=image.repo_digest,
            network=args.network,
            memory_mb=config.memory.front,
            health=healthcheck(http_probe(FRONT_PORT, HEALTH_PATH), start_period="10s", interval="5s"),
            ports=[published(FRONT_PORT, config.serving_port, config)],
            # Every path it relays needs the serving token when access control is on; its own is a liveness 200.
            access_controlled=config.serving_token is not None,
            opts=child_of(self),
        )
        self.url = pulumi.Output.from_input(f"http://127.0.0.1:{config.serving_port}")
        self.register_outputs({"url": self.url})
