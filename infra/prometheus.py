"""Prometheus: scrapes the front and every serving container, records per-model rates, errors and latency.

The image (services/prometheus/) carries the scrape config and the rules, checked by `promtool` when it is
built. It finds serving containers by their network aliases through Docker's DNS, as the front does, so a
release needs nothing from it (docs/metrics.md says why not the Docker socket); a stack serving several models
uploads the scrape config with every model's aliases and monitoring job added. Its TSDB is a volume. It has
no credential of its own, so its port is published on loopback only: a stack with `exposePorts` reaches it on
the platform network alone, and its canary analysis reads the front's log instead (pipelines/stack.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import yaml
from config import LOOPBACK, StackConfig
from containers import (
    SECRETS_DIR,
    SERVICES_DIR,
    child_of,
    config_file,
    healthcheck,
    http_probe,
    mount,
    published,
    secret_file,
    service_container,
    service_image,
    volume,
)

from services.contract import SERVING_ROLES, monitoring_alias, serving_alias
from services.monitoring.settings import STACK_METRICS_PORT

PROMETHEUS_PORT = 9090
TSDB_DIR = "/var/lib/prometheus/tsdb"
# services/prometheus/prometheus.yml sends this file's token to the serving containers' /metrics; the image holds a
# placeholder there, which servers without a token ignore.
SERVING_TOKEN_FILE = f"{SECRETS_DIR}/serving-token"
SCRAPE_CONFIG = SERVICES_DIR / "prometheus" / "prometheus.yml"
SCRAPE_CONFIG_FILE = "/etc/prometheus/prometheus.yml"  # where the image holds it (services/prometheus/Dockerfile)


def scrape_config(config: StackConfig) -> str | None:
    """The image's scrape config with the aliases of every model but the default in its serving job and their
    monitoring jobs in its monitoring job; None when the stack serves one model (the image's own config has that
    model's)."""
    if not config.models:
        return None
    scrape = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (serving,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "serving"]
    (names,) = [sd["names"] for sd in serving["dns_sd_configs"]]
    names += [serving_alias(role, model.name) for model in config.models for role in SERVING_ROLES]
    (monitoring,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "monitoring"]
    (targets,) = [static["targets"] for static in monitoring["static_configs"]]
    targets += [f"{monitoring_alias(model.name)}:{STACK_METRICS_PORT}" for model in config.models]
    return "# Written by infra/prometheus.py from services/prometheus/prometheus.yml.\n" + yaml.safe_dump(scrape)


@dataclass(frozen=True)
class PrometheusArgs:
    config: StackConfig
    network: docker.Network


class Prometheus(pulumi.ComponentResource):
    """Prometheus (alias `prometheus`); `url` is its published loopback URL, None when it is not published."""

    def __init__(self, name: str, args: PrometheusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Prometheus", name, None, opts)
        config = args.config
        tsdb = volume(f"{name}-tsdb", "prometheus-tsdb", config, child_of(self))
        image = service_image(f"{name}-image", "prometheus", config, child_of(self))
        on_loopback = config.bind_address == LOOPBACK
        token = config.serving_token
        self.container = service_container(
            f"{name}-server", config,
            service="prometheus",
            image=image.repo_digest,
            network=args.network,
            memory_mb=config.memory.prometheus,
            health=healthcheck(http_probe(PROMETHEUS_PORT, "/-/ready"), start_period="30s", interval="10s"),
            volumes=[mount(tsdb, TSDB_DIR)],
            ports=[published(PROMETHEUS_PORT, config.prometheus_port, config)] if on_loopback else [],
            uploads=[*([secret_file(SERVING_TOKEN_FILE, token)] if token is not None else []),
                     *([config_file(SCRAPE_CONFIG_FILE, scrape)] if (scrape := scrape_config(config)) else [])],
            opts=child_of(self),
        )
        self.url = (pulumi.Output.from_input(f"http://127.0.0.1:{config.prometheus_port}") if on_loopback
                    else None)
        self.register_outputs({"url": self.url})
