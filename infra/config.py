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

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from services.contract import DEFAULT_IMAGE_TAG, DEFAULT_NAME_PREFIX

TrackingBackend = Literal["sqlite", "postgres"]
TRACKING_BACKENDS: tuple[TrackingBackend, ...] = ("sqlite", "postgres")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
LOOPBACK, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"
MLFLOW_MIN_PASSWORD = 12  # MLflow's basic-auth app refuses shorter passwords
# Docker object names and image references: conservative subsets that every daemon accepts.
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_IMAGE_REF_OR_EMPTY = re.compile(rf"^$|{_IMAGE_REF.pattern}")
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

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
    postgres_image: str
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
    serving_image: str | None
    model_name: str
    model_version: str
    monitoring_interval_minutes: float
    restart_policy: str
    health_timeout_seconds: int
    memory: MemoryLimits


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
                                       "(MLflow refuses shorter passwords)")
            return text

        return value.apply(one_line)


# Every key this program reads; anything else in the project's namespace is a typo.
KNOWN_KEYS = frozenset({
    "namePrefix", "exposePorts", "mlflowPort", "servingPort", "monitoringUiPort", "baseImage", "imageTag",
    "trackingBackend", "mlflowWorkers", "postgresImage", "postgresPassword", "authEnabled", "adminUsername",
    "adminPassword", "servingToken", "monitoringPassword", "monitoringUiSecret", "smokeToken",
    "servingImage", "modelName", "modelVersion", "monitoringIntervalMinutes",
    "restartPolicy", "healthTimeoutSeconds", "mlflowMemoryMb", "postgresMemoryMb", "servingMemoryMb",
    "monitoringMemoryMb", "monitoringUiMemoryMb",
})


def _reject_unknown_keys(project: str) -> None:
    namespace = f"{project}:"
    keys = {key for key in [*get_config_env(), *CONFIG.get()] if key.startswith(namespace)}
    unknown = sorted(key for key in keys if key.removeprefix(namespace) not in KNOWN_KEYS)
    if unknown:
        raise StackConfigError(
            f"unknown stack config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(KNOWN_KEYS))}"
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
    auth_enabled = read.boolean("authEnabled", False)
    expose_ports = read.boolean("exposePorts", False)
    if expose_ports and not auth_enabled:
        raise read.fail("exposePorts", "true needs authEnabled: true, or MLflow, serving and the Evidently UI "
                                       "would answer anyone on the network without a credential")
    with_auth = "when authEnabled is true"
    serving_image = read.string("servingImage", "", _IMAGE_REF_OR_EMPTY)
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
        postgres_image=read.string("postgresImage", "postgres:16-bookworm", _IMAGE_REF),
        postgres_password=(
            read.secret("postgresPassword", "when trackingBackend is postgres") if backend == "postgres" else None
        ),
        auth_enabled=auth_enabled,
        admin_username=read.string("adminUsername", "admin", re.compile(r"^[A-Za-z0-9_.@-]+$")),
        admin_password=read.secret("adminPassword", with_auth, MLFLOW_MIN_PASSWORD) if auth_enabled else None,
        serving_token=read.secret("servingToken", with_auth) if auth_enabled else None,
        monitoring_password=(
            read.secret("monitoringPassword", with_auth, MLFLOW_MIN_PASSWORD) if auth_enabled else None),
        monitoring_ui_secret=read.secret("monitoringUiSecret", with_auth) if auth_enabled else None,
        smoke_token=read.optional_secret("smokeToken"),
        serving_image=serving_image or None,
        model_name=read.string("modelName", "loan-default", _MODEL_NAME),
        model_version=read.string("modelVersion", "none" if not serving_image else "unknown",
                                  re.compile(r"^[A-Za-z0-9_.-]+$")),
        monitoring_interval_minutes=read.number("monitoringIntervalMinutes", 5.0, float, 0.1, 24 * 60),
        restart_policy=read.choice("restartPolicy", "unless-stopped", RESTART_POLICIES),
        health_timeout_seconds=read.number("healthTimeoutSeconds", 300, int, 10, 3600),
        memory=MemoryLimits(
            mlflow=read.memory_mb("mlflowMemoryMb", 1536),
            postgres=read.memory_mb("postgresMemoryMb", 512),
            serving=read.memory_mb("servingMemoryMb", 1024),
            monitoring=read.memory_mb("monitoringMemoryMb", 1536),
            monitoring_ui=read.memory_mb("monitoringUiMemoryMb", 768),
        ),
    )

