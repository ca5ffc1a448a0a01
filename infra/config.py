"""Every stack setting, read once and validated before any resource is declared.

`Pulumi.yaml` documents the keys and their defaults for `pulumi config`; the defaults live here too,
because unit tests (Pulumi mocks) never read Pulumi.yaml. A bad value stops the program with a
`StackConfigError` naming the key; it is a `pulumi.RunError`, so `pulumi up` prints the message
without a Python traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import unquote, urlsplit

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

from services.contract import (
    DEFAULT_IMAGE_TAG,
    DEFAULT_NAME_PREFIX,
    DRIFT_ALERT_KINDS,
    MIN_PASSWORD_CHARS,
    MIN_TOKEN_CHARS,
)

TrackingBackend = Literal["sqlite", "postgres"]
TRACKING_BACKENDS: tuple[TrackingBackend, ...] = ("sqlite", "postgres")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
LOOPBACK, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"
Target = Literal["docker", "kubernetes"]
TARGETS: tuple[Target, ...] = ("docker", "kubernetes")
# Docker object names and image references: conservative subsets that every daemon accepts.
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_IMAGE_REF_OR_EMPTY = re.compile(rf"^$|{_IMAGE_REF.pattern}")
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9_.-]+$")  # a model version as the stack config names it

T = TypeVar("T")


class StackConfigError(pulumi.RunError):
    """A stack config value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class MemoryLimits:
    """Hard memory limit per container, in MiB."""

    mlflow: int
    postgres: int
    serving: int
    monitoring: int
    monitoring_ui: int
    front: int


@dataclass(frozen=True)
class KubernetesConfig:
    """What only the kubernetes target reads (infra/kubernetes); docs/kubernetes.md explains each key."""

    namespace: str
    image_registry: str  # "" names images as built locally (a cluster that loads them, e.g. `kind load`)
    serving_replicas: int
    serving_max_replicas: int
    shared_storage_class: str  # "" is the cluster's default; it must offer ReadWriteMany
    client_namespace: str  # "" lets only pods of the platform's own namespace reach its services
    monitoring_schedule: str  # the CronJob's schedule, from monitoringIntervalMinutes
    # With trackingBackend postgres: postgresql://user:password@host:port/db, as a secret, and its port.
    postgres_uri: pulumi.Output[str] | None
    postgres_port: int | None
    # "" keeps artifacts on MLflow's volume; s3://bucket/prefix stores them in S3-compatible storage.
    artifact_destination: str
    s3_endpoint_url: str
    s3_access_key_id: pulumi.Output[str] | None
    s3_secret_access_key: pulumi.Output[str] | None


@dataclass(frozen=True)
class StackConfig:
    name_prefix: str
    bind_address: str
    mlflow_port: int
    serving_port: int
    monitoring_ui_port: int
    base_image: str
    image_tag: str
    tracking_backend: TrackingBackend
    mlflow_workers: int
    postgres_image: str | None  # None: the image built from services/postgres
    postgres_password: pulumi.Output[str] | None
    auth_enabled: bool
    admin_username: str
    admin_password: pulumi.Output[str] | None
    # With authEnabled: the serving API's bearer token, the monitoring job's own MLflow password and the
    # Evidently UI's secret. The smoke token (optional) lets a release's checks stay out of monitoring.
    serving_token: pulumi.Output[str] | None
    monitoring_password: pulumi.Output[str] | None
    monitoring_ui_secret: pulumi.Output[str] | None
    smoke_token: pulumi.Output[str] | None
    # The drift alert (optional): the webhook URL and, for kind github, the token, both secrets.
    drift_alert_kind: str
    drift_alert_url: pulumi.Output[str] | None
    drift_alert_token: pulumi.Output[str] | None
    serving_image: str | None
    # A canary release beside the champion (set by `pipelines deploy --canary`): its image, version and share.
    canary_image: str | None
    canary_version: str
    canary_percent: int
    # A release's candidate beside the champion, reached only through the front's routing header: it is
    # smoke-checked there before it is promoted (set by `pipelines deploy --target stack` while it checks).
    candidate_image: str | None
    candidate_version: str
    model_name: str
    model_version: str
    monitoring_interval_minutes: float
    restart_policy: str
    health_timeout_seconds: int
    memory: MemoryLimits
    target: Target = "docker"
    kubernetes: KubernetesConfig | None = None  # set when target is kubernetes


class _Reader:
    """Typed access to the project's config namespace; every error names the full key."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config

    def fail(self, key: str, problem: str) -> StackConfigError:
        return StackConfigError(f"stack config {self.config.full_key(key)}: {problem}")

    def string(self, key: str, default: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.config.get(key)
        if value is None:
            return default
        value = value.strip()
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def choice(self, key: str, default: T, choices: Sequence[T]) -> T:
        value = self.string(key, str(default))
        for choice in choices:
            if value == choice:
                return choice
        raise self.fail(key, f"must be one of {', '.join(map(str, choices))} (got {value!r})")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.string(key, str(default).lower()).lower()
        if value not in ("true", "false"):
            raise self.fail(key, f"must be true or false (got {value!r})")
        return value == "true"

    def number(self, key: str, default: T, kind: Callable[[str], T], low: float, high: float) -> T:
        raw = self.config.get(key)
        if raw is None:
            return default
        try:
            value = kind(raw.strip())
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise self.fail(key, f"must be {what} (got {raw!r})") from None
        if not low <= value <= high:  # type: ignore[operator]
            raise self.fail(key, f"must be between {low:g} and {high:g} (got {value})")
        return value

    def port(self, key: str, default: int) -> int:
        return self.number(key, default, int, 1, 65535)

    def memory_mb(self, key: str, default: int) -> int:
        # None of the services starts in less than 64 MiB; 64 GiB is a typo guard, not a hardware claim.
        return self.number(key, default, int, 64, 65536)

    def secret(self, key: str, needed_because: str, min_length: int = 1) -> pulumi.Output[str]:
        """A secret is read only as a Pulumi secret, so it stays encrypted in state and masked in logs."""
        value = self.optional_secret(key, min_length)
        if value is None:
            raise self.fail(key, f"is required {needed_because}: pulumi config set --secret {key} <value>")
        return value

    def optional_secret(self, key: str, min_length: int = 1) -> pulumi.Output[str] | None:
        value = self.config.get_secret(key)
        if value is None:
            return None
        full_key = self.config.full_key(key)

        def one_line(text: str) -> str:
            if not text.strip() or "\n" in text:
                raise StackConfigError(f"stack config {full_key}: must be one non-empty line")
            if len(text) < min_length:
                raise StackConfigError(f"stack config {full_key}: must be at least {min_length} characters "
                                       "(e.g. `openssl rand -hex 24`)")
            return text

        return value.apply(one_line)


# Keys only the kubernetes target reads.
KUBERNETES_KEYS = frozenset({
    "kubernetesNamespace", "imageRegistry", "servingReplicas", "servingMaxReplicas", "sharedStorageClass",
    "clientNamespace", "postgresUri", "artifactDestination", "s3EndpointUrl", "s3AccessKeyId", "s3SecretAccessKey",
})
# Every key this program reads; anything else in the project's namespace is a typo.
KNOWN_KEYS = KUBERNETES_KEYS | frozenset({
    "target",
    "namePrefix", "exposePorts", "mlflowPort", "servingPort", "monitoringUiPort", "baseImage", "imageTag",
    "trackingBackend", "mlflowWorkers", "postgresImage", "postgresPassword", "authEnabled", "adminUsername",
    "adminPassword", "servingToken", "monitoringPassword", "monitoringUiSecret", "smokeToken",
    "driftAlertKind", "driftAlertWebhookUrl", "driftAlertToken",
    "servingImage", "modelName", "modelVersion", "monitoringIntervalMinutes", "canaryImage", "canaryVersion",
    "canaryPercent", "candidateImage", "candidateVersion",
    "restartPolicy", "healthTimeoutSeconds", "mlflowMemoryMb", "postgresMemoryMb", "servingMemoryMb",
    "monitoringMemoryMb", "monitoringUiMemoryMb", "frontMemoryMb",
})


def _reject_unknown_keys(project: str) -> None:
    namespace = f"{project}:"
    keys = {key for key in [*get_config_env(), *CONFIG.get()] if key.startswith(namespace)}
    unknown = sorted(key for key in keys if key.removeprefix(namespace) not in KNOWN_KEYS)
    if unknown:
        raise StackConfigError(
            f"unknown stack config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(KNOWN_KEYS))}"
        )


# Tags that registries move on purpose; a pod restarted later could run other code under them.
MUTABLE_TAGS = frozenset({"latest", "stable", "main", "master", "dev", "edge", "nightly"})
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_REGISTRY_OR_EMPTY = re.compile(r"^$|^[a-z0-9][a-z0-9._:/-]*[a-z0-9]$")
_S3_URI_OR_EMPTY = re.compile(r"^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")
_HTTP_URL_OR_EMPTY = re.compile(r"^$|^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")


def mutable_image_problem(reference: str) -> str | None:
    """Why this image reference could name other code tomorrow, or None when it is pinned."""
    if "@sha256:" in reference:
        return None
    name = reference.rsplit("/", 1)[-1]
    if ":" not in name:
        return "has no tag (it means :latest)"
    tag = name.rsplit(":", 1)[1]
    return f"has the moving tag :{tag}" if tag in MUTABLE_TAGS else None


def _cron_schedule(read: _Reader, minutes: float) -> str:
    """A CronJob schedule that runs every `minutes`: cron steps restart each hour and day, so only
    whole minutes dividing 60 and whole hours dividing 24 keep a steady interval."""
    if minutes == int(minutes) and 60 % int(minutes) == 0:
        return "0 * * * *" if minutes == 60 else f"*/{int(minutes)} * * * *"
    hours = minutes / 60
    if hours == int(hours) and 24 % int(hours) == 0:
        return "0 0 * * *" if hours == 24 else f"0 */{int(hours)} * * *"
    raise read.fail("monitoringIntervalMinutes",
                    f"on the kubernetes target it is a CronJob schedule: whole minutes dividing 60 or whole hours "
                    f"dividing 24, e.g. 5, 15, 60, 360 (got {minutes:g})")


def _postgres_uri(read: _Reader) -> tuple[pulumi.Output[str], int]:
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


def _kubernetes_config(read: _Reader, name_prefix: str, backend: TrackingBackend, interval: float) -> KubernetesConfig:
    stack = pulumi.get_stack()
    namespace = read.string("kubernetesNamespace", f"{name_prefix}-{stack}".lower())
    if not _DNS_LABEL.fullmatch(namespace):
        raise read.fail("kubernetesNamespace", f"{namespace!r} is not a DNS label (a-z, 0-9, '-', at most 63); "
                                               "set one that is")
    replicas = read.number("servingReplicas", 2, int, 2, 100)  # two, so a rollout or a node loss keeps serving
    artifacts = read.string("artifactDestination", "", _S3_URI_OR_EMPTY)
    in_s3 = "when artifactDestination is set"
    postgres_uri, postgres_port = _postgres_uri(read) if backend == "postgres" else (None, None)
    return KubernetesConfig(
        namespace=namespace,
        image_registry=read.string("imageRegistry", "", _REGISTRY_OR_EMPTY),
        serving_replicas=replicas,
        serving_max_replicas=read.number("servingMaxReplicas", max(6, replicas), int, replicas, 1000),
        shared_storage_class=read.string("sharedStorageClass", "", re.compile(r"^$|^[a-z0-9][a-z0-9.-]*$")),
        client_namespace=read.string("clientNamespace", "", re.compile(rf"^$|{_DNS_LABEL.pattern}")),
        monitoring_schedule=_cron_schedule(read, interval),
        postgres_uri=postgres_uri,
        postgres_port=postgres_port,
        artifact_destination=artifacts,
        s3_endpoint_url=read.string("s3EndpointUrl", "", _HTTP_URL_OR_EMPTY),
        s3_access_key_id=read.secret("s3AccessKeyId", in_s3) if artifacts else None,
        s3_secret_access_key=read.secret("s3SecretAccessKey", in_s3) if artifacts else None,
    )


def load_stack_config() -> StackConfig:
    """Read and validate the whole stack config of the current Pulumi project and stack."""
    _reject_unknown_keys(pulumi.get_project())
    read = _Reader(pulumi.Config())
    ports = {key: read.port(key, default) for key, default in
             (("mlflowPort", 5000), ("servingPort", 3000), ("monitoringUiPort", 8000))}
    if len(set(ports.values())) < len(ports):
        raise read.fail("mlflowPort", f"the published ports must differ (got {ports})")
    backend = read.choice("trackingBackend", "sqlite", TRACKING_BACKENDS)
    target = read.choice("target", "docker", TARGETS)
    auth_enabled = read.boolean("authEnabled", False)
    expose_ports = read.boolean("exposePorts", False)
    if expose_ports and not auth_enabled:
        raise read.fail("exposePorts", "true needs authEnabled: true, or MLflow, serving and the Evidently UI "
                                       "would answer anyone on the network without a credential")
    with_auth = "when authEnabled is true"
    serving_image = read.string("servingImage", "", _IMAGE_REF_OR_EMPTY)
    alert_kind = read.choice("driftAlertKind", "slack", DRIFT_ALERT_KINDS)
    canary_image = read.string("canaryImage", "", _IMAGE_REF_OR_EMPTY)
    if canary_image and not serving_image:
        raise read.fail("canaryImage", "a canary needs a champion beside it: set servingImage too")
    return StackConfig(
        name_prefix=read.string("namePrefix", DEFAULT_NAME_PREFIX, _NAME_PREFIX),
        bind_address=ALL_INTERFACES if expose_ports else LOOPBACK,
        mlflow_port=ports["mlflowPort"],
        serving_port=ports["servingPort"],
        monitoring_ui_port=ports["monitoringUiPort"],
        base_image=read.string("baseImage", "python:3.11-slim-bookworm", _IMAGE_REF),
        image_tag=read.string("imageTag", DEFAULT_IMAGE_TAG, re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")),
        tracking_backend=backend,
        mlflow_workers=read.number("mlflowWorkers", 2, int, 1, 32),
        postgres_image=read.string("postgresImage", "", _IMAGE_REF_OR_EMPTY) or None,
        postgres_password=(
            read.secret("postgresPassword", "when trackingBackend is postgres", MIN_PASSWORD_CHARS)
            if backend == "postgres" and target == "docker" else None
        ),
        auth_enabled=auth_enabled,
        admin_username=read.string("adminUsername", "admin", re.compile(r"^[A-Za-z0-9_.@-]+$")),
        admin_password=read.secret("adminPassword", with_auth, MIN_PASSWORD_CHARS) if auth_enabled else None,
        serving_token=read.secret("servingToken", with_auth, MIN_TOKEN_CHARS) if auth_enabled else None,
        monitoring_password=(
            read.secret("monitoringPassword", with_auth, MIN_PASSWORD_CHARS) if auth_enabled else None),
        monitoring_ui_secret=read.secret("monitoringUiSecret", with_auth, MIN_TOKEN_CHARS) if auth_enabled else None,
        smoke_token=read.optional_secret("smokeToken", MIN_TOKEN_CHARS),
        drift_alert_kind=alert_kind,
        drift_alert_url=read.optional_secret("driftAlertWebhookUrl"),
        drift_alert_token=(
            read.secret("driftAlertToken", "when driftAlertKind is github (repository_dispatch needs a token)")
            if alert_kind == "github" else None),
        serving_image=serving_image or None,
        canary_image=canary_image or None,
        canary_version=read.string("canaryVersion", "none", _VERSION),
        canary_percent=read.number("canaryPercent", 10, int, 1, 50),
        candidate_image=read.string("candidateImage", "", _IMAGE_REF_OR_EMPTY) or None,
        candidate_version=read.string("candidateVersion", "none", _VERSION),
        model_name=read.string("modelName", "loan-default", _MODEL_NAME),
        model_version=read.string("modelVersion", "none" if not serving_image else "unknown",
                                  _VERSION),
        monitoring_interval_minutes=read.number("monitoringIntervalMinutes", 5.0, float, 0.1, 24 * 60),
        restart_policy=read.choice("restartPolicy", "unless-stopped", RESTART_POLICIES),
        health_timeout_seconds=read.number("healthTimeoutSeconds", 300, int, 10, 3600),
        memory=MemoryLimits(
            mlflow=read.memory_mb("mlflowMemoryMb", 1536),
            postgres=read.memory_mb("postgresMemoryMb", 512),
            serving=read.memory_mb("servingMemoryMb", 1024),
            monitoring=read.memory_mb("monitoringMemoryMb", 1536),
            monitoring_ui=read.memory_mb("monitoringUiMemoryMb", 768),
            front=read.memory_mb("frontMemoryMb", 256),
        ),
        target=target,
        kubernetes=_kubernetes_target(read) if target == "kubernetes" else None,
    )


def _kubernetes_target(read: _Reader) -> KubernetesConfig:
    """The kubernetes-only keys, and the shared keys' stricter rules there (pods must name pinned images)."""
    if read.string("canaryImage", ""):
        raise read.fail("canaryImage", "canary releases run on the docker target only (its front weighs the canary)")
    if read.string("candidateImage", ""):
        raise read.fail("candidateImage", "a candidate beside the champion runs on the docker target only (its "
                                          "front routes the release's checks to it); kubernetes gates by readiness")
    for key, reference in (("imageTag", f"image:{read.string('imageTag', DEFAULT_IMAGE_TAG)}"),
                           ("servingImage", read.string("servingImage", ""))):
        if reference and (problem := mutable_image_problem(reference)):
            raise read.fail(key, f"{problem}; on the kubernetes target set a version or a digest, so every pod "
                                 "of a Deployment runs the same code")
    return _kubernetes_config(read, read.string("namePrefix", DEFAULT_NAME_PREFIX, _NAME_PREFIX),
                              read.choice("trackingBackend", "sqlite", TRACKING_BACKENDS),
                              read.number("monitoringIntervalMinutes", 5.0, float, 0.1, 24 * 60))

