"""What only the kubernetes target reads, and the shared keys' stricter rules there; docs/kubernetes.md
explains each key. infra/config.py calls `read_kubernetes_config` when the stack says `target: kubernetes`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pulumi
from config_models import ModelRelease, ServedModel
from config_monitoring import PolicySource
from config_reader import ConfigReader
from pulumi.runtime.config import is_config_secret

from services.contract import (
    CANARY_IMAGE_KEY,
    CANDIDATE_IMAGE_KEY,
    CRON_JOB_NAME_MAX_CHARS,
    DNS_LABEL_MAX_CHARS,
    MIN_TOKEN_CHARS,
    MODELS_KEY,
    SERVING_IMAGE_KEY,
    kubernetes_serving_name,
    model_key,
    monitoring_alias,
)


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str
    image_registry: str  # "" names images as built locally (a cluster that loads them, e.g. `kind load`)
    serving_replicas: int
    serving_max_replicas: int
    shared_storage_class: str  # "" is the cluster's default; it must offer ReadWriteMany
    client_namespace: str  # "" lets only pods of the platform's own namespace reach its services
    # Each monitoring CronJob's schedule, from its model's policy interval_minutes: None for the default model.
    monitoring_schedules: dict[str | None, str]
    # With trackingBackend postgres: postgresql://user:password@host:port/db, as a secret, and its port.
    postgres_uri: pulumi.Output[str] | None
    postgres_port: int | None
    # With TLS at the edge: the Ingress serves mlflow.<domain>, serving.<domain> and monitoring-ui.<domain>.
    ingress_domain: str
    ingress_class: str  # "" is the cluster's default IngressClass
    # Where the drift alert's webhook lives (the job's NetworkPolicy lets it reach only that), when one is set.
    alert_egress_cidr: str
    alert_egress_port: int
    # The Flask secret every MLflow replica signs the UI's session and CSRF tokens with (one for all of them).
    mlflow_secret_key: pulumi.Output[str]


# Keys only the kubernetes target reads.
KUBERNETES_KEYS = frozenset({
    "kubernetesNamespace", "imageRegistry", "servingReplicas", "servingMaxReplicas", "sharedStorageClass",
    "clientNamespace", "postgresUri", "ingressDomain", "ingressClass", "driftAlertEgressCidr", "driftAlertEgressPort",
    "mlflowSecretKey",
})
# Tags that registries move on purpose; a pod restarted later could run other code under them.
MUTABLE_TAGS = frozenset({"latest", "stable", "main", "master", "dev", "edge", "nightly"})
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_REGISTRY_OR_EMPTY = re.compile(r"^$|^[a-z0-9][a-z0-9._:/-]*[a-z0-9]$")


def mutable_image_problem(reference: str) -> str | None:
    """Why this image reference could name other code tomorrow, or None when it is pinned."""
    if "@sha256:" in reference:
        return None
    name = reference.rsplit("/", 1)[-1]
    if ":" not in name:
        return "has no tag (it means :latest)"
    tag = name.rsplit(":", 1)[1]
    return f"has the moving tag :{tag}" if tag in MUTABLE_TAGS else None


def _cron_schedule(read: ConfigReader, monitoring: PolicySource) -> str:
    """A CronJob schedule that runs every interval of the policy: cron steps restart each hour and day, so only
    whole minutes dividing 60 and whole hours dividing 24 keep a steady interval."""
    minutes = monitoring.policy.interval_minutes
    if minutes == int(minutes) and 60 % int(minutes) == 0:
        return "0 * * * *" if minutes == 60 else f"*/{int(minutes)} * * * *"
    hours = minutes / 60
    if hours == int(hours) and 24 % int(hours) == 0:
        return "0 0 * * *" if hours == 24 else f"0 */{int(hours)} * * *"
    raise monitoring.fail(read, "interval_minutes",
                          f"on the kubernetes target it is a CronJob schedule: whole minutes dividing 60 or whole "
                          f"hours dividing 24, e.g. 5, 15, 60, 360 (got {minutes:g})")


def _postgres_uri(read: ConfigReader) -> tuple[pulumi.Output[str], int]:
    """The URI as a secret, and its port (not secret: the NetworkPolicy opens it).

    Checked here, before any resource is declared, so a bad one stops `pulumi up` with one line.
    """
    why = "when trackingBackend is postgres on the kubernetes target"
    full_key = read.config.full_key("postgresUri")
    uri = (read.config.get("postgresUri") or "").strip()
    if not uri:
        raise read.fail("postgresUri", f"is required {why}: pulumi config set --secret postgresUri <value>")
    if not is_config_secret(full_key):
        raise read.fail("postgresUri", "holds a password: set it with pulumi config set --secret postgresUri <value>")
    if _CONTROL_CHARACTER.search(unquote(uri)):  # urlsplit drops a raw newline silently; libpq reads one as a line
        raise read.fail("postgresUri", "holds a control character (a newline, say), raw or %-encoded: "
                                       "set the URI without it")
    parts = urlsplit(uri)
    missing = [what for what, value in (("user", parts.username), ("password", parts.password),
                                        ("host", parts.hostname), ("database", parts.path.strip("/"))) if not value]
    try:
        port = parts.port or 5432
    except ValueError:
        missing.append("a numeric port")
    if parts.scheme not in ("postgresql", "postgres") or missing:
        raise read.fail("postgresUri", "must be postgresql://user:password@host[:port]/database"
                                       + (f" (missing {', '.join(missing)})" if missing else ""))
    return pulumi.Output.secret(uri), port




@dataclass(frozen=True)
class SharedSettings:
    """The shared keys' values the kubernetes target checks or builds on, as infra/config.py read them."""

    name_prefix: str
    tracking_backend: str
    monitoring: PolicySource
    image_tag: str
    release: ModelRelease  # what serves the default model
    auth_enabled: bool
    tls_enabled: bool
    models: tuple[ServedModel, ...] = ()  # the models served beside the default one, each with its release keys


def _check_release(read: ConfigReader, model: str | None, release: ModelRelease) -> None:
    """One model's release keys here: no canary or candidate beside its champion, and a pinned image."""
    if release.canary_image:
        raise read.fail(model_key(CANARY_IMAGE_KEY, model),
                        "canary releases run on the docker target only (its front weighs the canary)")
    if release.candidate_image:
        raise read.fail(model_key(CANDIDATE_IMAGE_KEY, model),
                        "a candidate beside the champion runs on the docker target only (its front routes the "
                        "release's checks to it); kubernetes gates by readiness")
    if release.serving_image:
        _check_pinned(read, model_key(SERVING_IMAGE_KEY, model), release.serving_image)


def _check_pinned(read: ConfigReader, key: str, reference: str) -> None:
    if problem := mutable_image_problem(reference):
        raise read.fail(key, f"{problem}; on the kubernetes target set a version or a digest, so every pod of a "
                             "Deployment runs the same code")


def _check_shared_keys(read: ConfigReader, shared: SharedSettings) -> None:
    """The shared keys' stricter rules here: pods must name pinned images, every model's serving objects a valid
    name, and every endpoint needs a credential."""
    _check_pinned(read, "imageTag", f"image:{shared.image_tag}")
    _check_release(read, None, shared.release)
    for model in shared.models:
        _check_release(read, model.name, model.release)
        for kind, name, most in (("Service", kubernetes_serving_name(model.name), DNS_LABEL_MAX_CHARS),
                                 ("monitoring CronJob", monitoring_alias(model.name), CRON_JOB_NAME_MAX_CHARS)):
            if len(name) > most:
                raise read.fail(MODELS_KEY, f"model {model.name!r} is too long for the kubernetes target: its {kind} "
                                            f"{name!r} would be {len(name)} characters, at most {most} fit")
    if not shared.auth_enabled:
        raise read.fail("authEnabled", "must be true on the kubernetes target: without it any pod of the namespace "
                                       "(and of clientNamespace) reaches MLflow, serving and the Evidently UI without "
                                       "a credential; set it and the secrets it needs (docs/kubernetes.md)")


def _ingress(read: ConfigReader, shared: SharedSettings, client_namespace: str) -> tuple[str, str]:
    """(domain, class) of the TLS Ingress; an Ingress comes only with TLS, so credentials never cross it in clear."""
    domain = read.string("ingressDomain", "", re.compile(r"^$|^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"))
    ingress_class = read.string("ingressClass", "", re.compile(rf"^$|{_DNS_LABEL.pattern}"))
    if shared.tls_enabled and not domain:
        raise read.fail("ingressDomain", "is required with tlsCertificate on the kubernetes target: the Ingress serves "
                                         "mlflow.<domain>, serving.<domain> and monitoring-ui.<domain>")
    if domain and not shared.tls_enabled:
        raise read.fail("ingressDomain", "needs TLS: set tlsCertificate and tlsPrivateKey too (an Ingress without TLS "
                                         "would carry credentials in clear)")
    if domain and not client_namespace:
        raise read.fail("ingressDomain", "needs clientNamespace: the ingress controller's namespace, which the "
                                         "NetworkPolicies let reach the services")
    return domain, ingress_class


def read_kubernetes_config(read: ConfigReader, shared: SharedSettings) -> KubernetesConfig:
    _check_shared_keys(read, shared)
    stack = pulumi.get_stack()
    namespace = read.string("kubernetesNamespace", f"{shared.name_prefix}-{stack}".lower())
    if not _DNS_LABEL.fullmatch(namespace):
        raise read.fail("kubernetesNamespace", f"{namespace!r} is not a DNS label (a-z, 0-9, '-', at most 63); "
                                               "set one that is")
    replicas = read.number("servingReplicas", 2, int, 2, 100)  # two, so a rollout or a node loss keeps serving
    postgres_uri, postgres_port = _postgres_uri(read) if shared.tracking_backend == "postgres" else (None, None)
    client_namespace = read.string("clientNamespace", "", re.compile(rf"^$|{_DNS_LABEL.pattern}"))
    ingress_domain, ingress_class = _ingress(read, shared, client_namespace)
    return KubernetesConfig(
        namespace=namespace,
        image_registry=read.string("imageRegistry", "", _REGISTRY_OR_EMPTY),
        serving_replicas=replicas,
        serving_max_replicas=read.number("servingMaxReplicas", max(6, replicas), int, replicas, 1000),
        shared_storage_class=read.string("sharedStorageClass", "", re.compile(r"^$|^[a-z0-9][a-z0-9.-]*$")),
        client_namespace=client_namespace,
        monitoring_schedules={None: _cron_schedule(read, shared.monitoring),
                              **{model.name: _cron_schedule(read, model.monitoring) for model in shared.models}},
        postgres_uri=postgres_uri,
        postgres_port=postgres_port,
        ingress_domain=ingress_domain,
        ingress_class=ingress_class,
        alert_egress_cidr=_cidr(read, "driftAlertEgressCidr", "0.0.0.0/0"),
        alert_egress_port=read.port("driftAlertEgressPort", 443),
        mlflow_secret_key=read.secret("mlflowSecretKey", "on the kubernetes target: every MLflow replica signs the "
                                      "UI's CSRF tokens with this one key (e.g. `openssl rand -hex 32`)",
                                      MIN_TOKEN_CHARS),
    )


def _cidr(read: ConfigReader, key: str, default: str) -> str:
    value = read.string(key, default)
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        raise read.fail(key, f"{value!r} is not a network in CIDR notation with no host bits set "
                             "(e.g. 140.82.112.0/20, or 0.0.0.0/0 for anywhere)") from None
