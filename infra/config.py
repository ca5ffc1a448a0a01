"""Every stack setting, read once and validated before any resource is declared.

`Pulumi.yaml` documents the keys and their defaults for `pulumi config`; the defaults live here too,
because unit tests (Pulumi mocks) never read Pulumi.yaml. A bad value stops the program with a
`StackConfigError` naming the key; it is a `pulumi.RunError`, so `pulumi up` prints the message
without a Python traceback.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

import pulumi
from config_artifacts import ARTIFACT_KEYS, ArtifactStore, read_artifact_store
from config_edge import EDGE_KEYS, EdgeTls, read_edge_tls
from config_kubernetes import KUBERNETES_KEYS, KubernetesConfig, SharedSettings, read_kubernetes_config
from config_models import (
    ModelRelease,
    ServedModel,
    per_model_key_problems,
    read_default_model,
    read_model_entries,
    read_models,
)
from config_monitoring import MONITORING_KEYS, PolicySource, moved_key_problems
from config_reader import IMAGE_REF, IMAGE_REF_OR_EMPTY, ConfigReader, StackConfigError
from config_teams import Team, check_team_experiments, read_teams, team_names
from pulumi.runtime.config import CONFIG, get_config_env

from services.contract import (
    CANARY_IMAGE_KEY,
    CANARY_PERCENT_KEY,
    CANARY_VERSION_KEY,
    CANDIDATE_IMAGE_KEY,
    CANDIDATE_VERSION_KEY,
    DEFAULT_IMAGE_TAG,
    DEFAULT_NAME_PREFIX,
    DRIFT_ALERT_KINDS,
    EXPOSE_PORTS_KEY,
    MIN_PASSWORD_CHARS,
    MIN_TOKEN_CHARS,
    MODEL_VERSION_KEY,
    MODELS_KEY,
    SERVING_IMAGE_KEY,
    TEAM_KEYS,
)

# Re-exported: the components import every config type from here.
__all__ = ["ArtifactStore", "EdgeTls", "KubernetesConfig", "ModelRelease", "PolicySource", "ServedModel",
           "StackConfig", "Team", "StackConfigError", "load_stack_config"]

TrackingBackend = Literal["sqlite", "postgres"]
TRACKING_BACKENDS: tuple[TrackingBackend, ...] = ("sqlite", "postgres")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
LOOPBACK, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"
Target = Literal["docker", "kubernetes"]
TARGETS: tuple[Target, ...] = ("docker", "kubernetes")
# Docker object names and image references: conservative subsets that every daemon accepts.
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")


@dataclass(frozen=True)
class MemoryLimits:
    """Hard memory limit per container, in MiB."""

    mlflow: int
    postgres: int
    serving: int
    monitoring: int
    monitoring_ui: int
    front: int
    seaweedfs: int
    prometheus: int


@dataclass(frozen=True)
class StackConfig:
    name_prefix: str
    bind_address: str
    mlflow_port: int
    serving_port: int
    monitoring_ui_port: int
    prometheus_port: int  # published on loopback only (infra/prometheus.py)
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
    # Evidently UI's secret. The smoke token keeps a release's checks out of monitoring and is what lets them
    # through the front to a candidate or canary (required with either).
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
    monitoring: PolicySource  # the default model's monitoring policy (its pipeline config's monitoring section)
    restart_policy: str
    health_timeout_seconds: int
    memory: MemoryLimits
    # MLflow's artifacts in S3 (the stack's SeaweedFS or any endpoint); None keeps them on its volume.
    artifacts: ArtifactStore | None = None
    tls: EdgeTls | None = None  # TLS at the edge: the front on docker, the Ingress on kubernetes
    target: Target = "docker"
    kubernetes: KubernetesConfig | None = None  # set when target is kubernetes
    # The models served beside the default one (`models`, infra/config_models.py): own containers, route, keys,
    # monitoring job.
    models: tuple[ServedModel, ...] = ()
    serving_workers: int | None = None  # the default model's servers' workers (its entry's); None: its bento's
    # The teams `models` names (infra/config_teams.py), each with its MLflow user and serving token; () without.
    teams: tuple[Team, ...] = ()

    def team_of(self, model: str) -> Team | None:
        """The team that owns `model`, None when no entry names one."""
        return next((team for team in self.teams if model in team.models), None)

    @property
    def release(self) -> ModelRelease:
        """What serves the default model (`modelName`), in the shape every other model's release has."""
        return ModelRelease(self.serving_image, self.model_version, self.canary_image, self.canary_version,
                            self.canary_percent, self.candidate_image, self.candidate_version)


# Every key this program reads; anything else in the project's namespace is a typo.
KNOWN_KEYS = KUBERNETES_KEYS | EDGE_KEYS | ARTIFACT_KEYS | MONITORING_KEYS | frozenset({
    "target",
    "namePrefix", EXPOSE_PORTS_KEY, MODELS_KEY, "mlflowPort", "servingPort", "monitoringUiPort", "prometheusPort",
    "baseImage", "imageTag",
    "trackingBackend", "mlflowWorkers", "postgresImage", "postgresPassword", "authEnabled", "adminUsername",
    "adminPassword", "servingToken", "monitoringPassword", "monitoringUiSecret", "smokeToken",
    "driftAlertKind", "driftAlertWebhookUrl", "driftAlertToken",
    SERVING_IMAGE_KEY, "modelName", MODEL_VERSION_KEY, CANARY_IMAGE_KEY,
    CANARY_VERSION_KEY, CANARY_PERCENT_KEY, CANDIDATE_IMAGE_KEY, CANDIDATE_VERSION_KEY,
    "restartPolicy", "healthTimeoutSeconds", "mlflowMemoryMb", "postgresMemoryMb", "servingMemoryMb",
    "monitoringMemoryMb", "monitoringUiMemoryMb", "frontMemoryMb", "seaweedfsMemoryMb",
    "prometheusMemoryMb",
})


def _reject_unknown_keys(project: str, models: set[str], default_model: str, teams: set[str]) -> None:
    """Refuse a key this program does not read; `models`, `teams`: the declared ones, whose own keys it reads."""
    namespace = f"{project}:"
    keys = {key for key in [*get_config_env(), *CONFIG.get()] if key.startswith(namespace)}
    if moved := moved_key_problems({key.removeprefix(namespace) for key in keys}, namespace):
        raise StackConfigError("; ".join(moved))
    names = {key.removeprefix(namespace) for key in keys}
    per_model, problems = per_model_key_problems(names, models, default_model)
    per_team, team_problems = per_model_key_problems(names, teams, bases=TEAM_KEYS, kind="team")
    problems += team_problems
    if problems:
        raise StackConfigError(f"stack config {namespace}" + f"; {namespace}".join(sorted(problems)))
    unknown = sorted(key for key in keys if key.removeprefix(namespace) not in KNOWN_KEYS | per_model | per_team)
    if unknown:
        raise StackConfigError(
            f"unknown stack config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(KNOWN_KEYS))}"
        )


def _published_ports(read: ConfigReader) -> dict[str, int]:
    ports = {key: read.port(key, default) for key, default in
             (("mlflowPort", 5000), ("servingPort", 3000), ("monitoringUiPort", 8000),
                                       ("prometheusPort", 9090))}
    if len(set(ports.values())) < len(ports):
        raise read.fail("mlflowPort", f"the published ports must differ (got {ports})")
    return ports


def _memory_limits(read: ConfigReader) -> MemoryLimits:
    return MemoryLimits(
        mlflow=read.memory_mb("mlflowMemoryMb", 1536),
        postgres=read.memory_mb("postgresMemoryMb", 512),
        serving=read.memory_mb("servingMemoryMb", 1024),
        monitoring=read.memory_mb("monitoringMemoryMb", 1536),
        monitoring_ui=read.memory_mb("monitoringUiMemoryMb", 768),
        front=read.memory_mb("frontMemoryMb", 256),
        seaweedfs=read.memory_mb("seaweedfsMemoryMb", 512),
        prometheus=read.memory_mb("prometheusMemoryMb", 384),
    )


def _smoke_token(read: ConfigReader, beside_the_champion: bool) -> pulumi.Output[str] | None:
    """A release's checks carry it; the front routes them to a candidate or a canary only with it."""
    if beside_the_champion:
        return read.secret("smokeToken", "when candidateImage or canaryImage is set (the front routes a release's "
                                         "checks to them only when they carry it)", MIN_TOKEN_CHARS)
    return read.optional_secret("smokeToken", MIN_TOKEN_CHARS)


def load_stack_config() -> StackConfig:
    """Read and validate the whole stack config of the current Pulumi project and stack."""
    read = ConfigReader(pulumi.Config())
    entries = read_model_entries(read)
    model_name = read_default_model(read, entries)
    owners = team_names(read, entries)
    _reject_unknown_keys(pulumi.get_project(), {entry["name"] for entry in entries}, model_name, set(owners.values()))
    ports = _published_ports(read)
    backend = read.choice("trackingBackend", "sqlite", TRACKING_BACKENDS)
    target = read.choice("target", "docker", TARGETS)
    auth_enabled = read.boolean("authEnabled", False)
    expose_ports = read.boolean(EXPOSE_PORTS_KEY, False)
    if expose_ports and not auth_enabled:
        raise read.fail(EXPOSE_PORTS_KEY, "true needs authEnabled: true, or MLflow, serving and the Evidently UI "
                                       "would answer anyone on the network without a credential")
    with_auth = "when authEnabled is true"
    admin_username = read.string("adminUsername", "admin", re.compile(r"^[A-Za-z0-9_.@-]+$"))
    teams = read_teams(read, owners, auth_enabled, admin_username)
    memory = _memory_limits(read)
    default, models = read_models(read, entries, model_name, memory.serving)
    memory, release = dataclasses.replace(memory, serving=default.memory_mb), default.release
    serving_image, canary_image, candidate_image = release.serving_image, release.canary_image, release.candidate_image
    alert_kind = read.choice("driftAlertKind", "slack", DRIFT_ALERT_KINDS)
    name_prefix = read.string("namePrefix", DEFAULT_NAME_PREFIX, _NAME_PREFIX)
    image_tag = read.string("imageTag", DEFAULT_IMAGE_TAG, re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))
    if teams and target == "kubernetes":
        raise read.fail(MODELS_KEY, "access per team (a model's team) is on the docker target only, for now")
    check_team_experiments(read, owners, {model.name: model.monitoring for model in (default, *models)})
    monitoring = default.monitoring
    tls = read_edge_tls(read)
    artifacts = read_artifact_store(read, target)
    kubernetes = read_kubernetes_config(read, SharedSettings(
        name_prefix=name_prefix, tracking_backend=backend, monitoring=monitoring, image_tag=image_tag,
        release=release, auth_enabled=auth_enabled,
        tls_enabled=tls is not None, models=models)) if target == "kubernetes" else None
    return StackConfig(
        name_prefix=name_prefix,
        bind_address=ALL_INTERFACES if expose_ports else LOOPBACK,
        mlflow_port=ports["mlflowPort"],
        serving_port=ports["servingPort"],
        monitoring_ui_port=ports["monitoringUiPort"],
        prometheus_port=ports["prometheusPort"],
        base_image=read.string("baseImage", "python:3.11-slim-bookworm", IMAGE_REF),
        image_tag=image_tag,
        tracking_backend=backend,
        mlflow_workers=read.number("mlflowWorkers", 2, int, 1, 32),
        postgres_image=read.string("postgresImage", "", IMAGE_REF_OR_EMPTY) or None,
        postgres_password=(
            read.secret("postgresPassword", "when trackingBackend is postgres", MIN_PASSWORD_CHARS)
            if backend == "postgres" and target == "docker" else None
        ),
        auth_enabled=auth_enabled,
        admin_username=admin_username,
        admin_password=read.secret("adminPassword", with_auth, MIN_PASSWORD_CHARS) if auth_enabled else None,
        serving_token=read.secret("servingToken", with_auth, MIN_TOKEN_CHARS) if auth_enabled else None,
        monitoring_password=(
            read.secret("monitoringPassword", with_auth, MIN_PASSWORD_CHARS) if auth_enabled else None),
        monitoring_ui_secret=read.secret("monitoringUiSecret", with_auth, MIN_TOKEN_CHARS) if auth_enabled else None,
        smoke_token=_smoke_token(read, any(r.beside_the_champion for r in (release, *(m.release for m in models)))),
        drift_alert_kind=alert_kind,
        drift_alert_url=read.optional_secret("driftAlertWebhookUrl"),
        drift_alert_token=(
            read.secret("driftAlertToken", "when driftAlertKind is github (repository_dispatch needs a token)")
            if alert_kind == "github" else None),
        serving_image=serving_image,
        canary_image=canary_image,
        canary_version=release.canary_version,
        canary_percent=release.canary_percent,
        candidate_image=candidate_image,
        candidate_version=release.candidate_version,
        model_name=model_name,
        model_version=release.model_version,
        monitoring=monitoring,
        restart_policy=read.choice("restartPolicy", "unless-stopped", RESTART_POLICIES),
        health_timeout_seconds=read.number("healthTimeoutSeconds", 300, int, 10, 3600),
        memory=memory,
        artifacts=artifacts,
        tls=tls,
        target=target,
        kubernetes=kubernetes,
        models=models,
        serving_workers=default.workers,
        teams=teams,
    )
