"""MLflow on kubernetes: `mlflow server --serve-artifacts` as a Deployment behind a Service.

Small setups (the default) keep the SQLite backend and the artifacts on one ReadWriteOnce claim, so
MLflow runs as a single replica replaced with `Recreate`. With trackingBackend postgres and an
S3-compatible artifactDestination nothing lives in the pod, so it runs two replicas rolled one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig
from containers import child_of
from tracking import (
    ARTIFACTS_DIR,
    BACKEND_DIR,
    MLFLOW_PORT,
    MONITORING_USER,
    S3_CREDENTIALS,
    _auth_config,
    _client_credentials,
    _ini,
    s3_client_env,
    s3_credentials,
)

from kubernetes.migration import MIGRATED_BY_JOB, migration_job
from kubernetes.workloads import (
    claim_volume,
    cluster_url,
    container,
    image,
    kube,
    metadata,
    mount,
    pod_spec,
    pod_template,
    probes,
    public_host,
    resources,
    secret,
    secret_volume,
    selector_labels,
    service,
    volume_claim,
)
from services.contract import AUDIT_EXPERIMENT, FLASK_SECRET_KEY_FILE_ENV, MLFLOW_AUTH_SERVER_ENV

COMPONENT = "mlflow"
AUTH_DIR = "/etc/mlflow/auth"
DATABASE_DIR = "/etc/mlflow/database"
S3_DIR = "/etc/mlflow/s3"
FLASK_DIR = "/etc/mlflow/flask"
# libpq reads the whole connection (password included) from this file's [mlflow] section, so neither
# the command line nor the environment carries it (a ~/.pgpass would be ignored: kubelet makes secret
# files group-readable).
DATABASE_URI = "postgresql+psycopg2:///?service=mlflow"  # the driver the tracking image ships
SQLITE_AUTH_DB = f"sqlite:///{BACKEND_DIR}/basic_auth.db"  # the docker target's users database, on the volume


@dataclass(frozen=True)
class TrackingArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace


class Tracking(pulumi.ComponentResource):
    """MLflow, reachable in the namespace as http://mlflow:5000."""

    internal_url = f"http://{COMPONENT}:{MLFLOW_PORT}"

    def __init__(self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:Tracking", name, None, opts)
        config = args.config
        in_namespace = child_of(self, depends_on=[args.namespace])
        external = external_stores(config)

        env, secret_files, backend_uri = _store_settings(config)
        auth_env, auth_files = _auth_settings(config)
        env |= auth_env
        secret_files |= auth_files
        self.monitoring_credentials = (
            config.monitoring_password.apply(lambda pw: _client_credentials(MONITORING_USER, pw))
            if config.auth_enabled and config.monitoring_password is not None else None)
        volumes, mounts = [], []
        artifacts = config.artifacts.destination if config.artifacts else ARTIFACTS_DIR
        if not external:
            claim = volume_claim(f"{name}-data", config, f"{COMPONENT}-data", COMPONENT, size_gi=20, shared=False,
                                 opts=in_namespace)
            volumes.append(claim_volume("data", claim.metadata["name"]))
            mounts += [{**mount("data", BACKEND_DIR), "subPath": "backend"},
                       {**mount("data", ARTIFACTS_DIR), "subPath": "artifacts"}]
        for volume, (directory, files) in secret_files.items():
            stored = secret(f"{name}-{volume}", config, f"{COMPONENT}-{volume}", COMPONENT, files, in_namespace)
            volumes.append(secret_volume(volume, stored.metadata["name"]))
            mounts.append(mount(volume, directory, read_only=True))

        rollout_after: list[pulumi.Resource] = [args.namespace]
        if external:  # replicas rolled one by one: the schema is migrated once, by a Job, before they are
            rollout_after.append(migration_job(
                name, config, backend_uri=backend_uri, env={"PGSERVICEFILE": env["PGSERVICEFILE"]},
                volumes=[v for v in volumes if v["name"] == "database"],
                mounts=[m for m in mounts if m["name"] == "database"], opts=in_namespace))
            env |= MIGRATED_BY_JOB

        server = container(
            COMPONENT, image(config, "tracking"),
            resources_=resources(config.memory.mlflow, "250m", "2"),
            port=MLFLOW_PORT,
            args=_server_args(config, backend_uri, artifacts),
            env=env,
            mounts=mounts,
            # /health stays open with basic auth on and skips MLflow's Host check.
            health=probes("/health", startup_s=300),
        )
        replicas = 2 if external else 1
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=metadata(config, COMPONENT, COMPONENT),
            spec={
                "replicas": replicas,
                "selector": {"matchLabels": selector_labels(config, COMPONENT)},
                # One pod owns the ReadWriteOnce claim and SQLite file, so the old one stops first.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
                if external else {"type": "Recreate"},
                "template": pod_template(config, COMPONENT, pod_spec([server], volumes)),
            },
            opts=child_of(self, depends_on=rollout_after),
        )
        if external:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-disruption-budget",
                metadata=metadata(config, COMPONENT, COMPONENT),
                spec={"minAvailable": 1, "selector": {"matchLabels": selector_labels(config, COMPONENT)},
                      "unhealthyPodEvictionPolicy": "AlwaysAllow"},
                opts=in_namespace,
            )
        self.service = service(f"{name}-service", config, COMPONENT, COMPONENT, MLFLOW_PORT, in_namespace)
        self.url = pulumi.Output.from_input(cluster_url(config, COMPONENT, MLFLOW_PORT))
        self.register_outputs({"url": self.url})


def _server_args(config: StackConfig, backend_uri: str, artifacts: str) -> list[str]:
    args = [
        "--host", "0.0.0.0", "--port", str(MLFLOW_PORT), "--workers", str(config.mlflow_workers),
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts, "--serve-artifacts",
        "--allowed-hosts", ",".join(allowed_hosts(kube(config).namespace, public_host(config, COMPONENT))),
    ]
    return [*args, "--app-name", "basic-auth"] if config.auth_enabled else args


SecretFiles = dict[str, tuple[str, dict[str, pulumi.Input[str]]]]  # volume -> (mount dir, {file: content})


def _store_settings(config: StackConfig) -> tuple[dict[str, str], SecretFiles, str]:
    """MLflow's env, secret files and backend URI for its stores: SQLite on the claim, or Postgres and S3."""
    settings = kube(config)
    # One Flask secret for every replica: each would make its own, and the UI's CSRF token from one
    # pod fails on the next.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", FLASK_SECRET_KEY_FILE_ENV: f"{FLASK_DIR}/secret-key"}
    secret_files: SecretFiles = {"flask": (FLASK_DIR, {"secret-key": settings.mlflow_secret_key})}
    backend_uri = f"sqlite:///{BACKEND_DIR}/mlflow.db"
    if config.tracking_backend == "postgres":
        assert settings.postgres_uri is not None  # load_stack_config requires it with postgres
        backend_uri = DATABASE_URI
        env["PGSERVICEFILE"] = f"{DATABASE_DIR}/pg_service.conf"
        secret_files["database"] = (DATABASE_DIR, {"pg_service.conf": settings.postgres_uri.apply(_service_file)})
    if config.artifacts is not None:
        env |= s3_client_env(config.artifacts, f"{S3_DIR}/{S3_CREDENTIALS}")
        secret_files["s3"] = (S3_DIR, {S3_CREDENTIALS: s3_credentials(config.artifacts)})
    return env, secret_files, backend_uri


def _auth_settings(config: StackConfig) -> tuple[dict[str, str], SecretFiles]:
    """With auth on: the basic-auth app's config and the service users to provision, as secret files."""
    if not config.auth_enabled:
        return {}, {}
    assert config.admin_password is not None and config.monitoring_password is not None  # required with auth
    # With postgres the users live in the same database, so every replica sees the same ones.
    auth_db = DATABASE_URI if config.tracking_backend == "postgres" else SQLITE_AUTH_DB
    env = {"MLFLOW_AUTH_CONFIG_PATH": f"{AUTH_DIR}/basic_auth.ini",
           "SERVICE_USERS_FILE": f"{AUTH_DIR}/service_users.ini", **MLFLOW_AUTH_SERVER_ENV,
           # Every release and each model's monitoring job append to the audit trail (made at start, owned by none).
           "TEAM_SHARED_EXPERIMENTS": AUDIT_EXPERIMENT, "MONITORING_USER": MONITORING_USER}
    return env, {"auth": (AUTH_DIR, {
        "basic_auth.ini": config.admin_password.apply(lambda pw: _auth_config(config.admin_username, pw)
                                                      .replace(SQLITE_AUTH_DB, auth_db)),
        "service_users.ini": config.monitoring_password.apply(lambda pw: _ini(MONITORING_USER, {"password": pw})),
    })}


def external_stores(config: StackConfig) -> bool:
    """Postgres and an S3-compatible artifact store: nothing lives in the pod, so replicas roll one by one."""
    return config.tracking_backend == "postgres" and config.artifacts is not None


def allowed_hosts(namespace: str, public: str | None) -> list[str]:
    """The Service's DNS names (MLflow 3 answers 403 to any other Host), plus localhost for port-forward
    and, behind the Ingress, its public name (the Ingress passes the client's Host on)."""
    names = [COMPONENT, f"{COMPONENT}.{namespace}", f"{COMPONENT}.{namespace}.svc",
             f"{COMPONENT}.{namespace}.svc.cluster.local", *([public] if public else [])]
    return [*names, *(f"{name}:{MLFLOW_PORT}" for name in names), "localhost:*", "127.0.0.1:*"]


def _service_file(uri: str) -> str:
    """libpq's pg_service.conf section for a postgresql:// URI (values are read literally to the line end)."""
    parts = urlsplit(uri)
    fields = {"host": parts.hostname or "", "port": str(parts.port or 5432), "dbname": unquote(parts.path.strip("/")),
              "user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
              **dict(parse_qsl(parts.query))}
    return "[mlflow]\n" + "".join(f"{key}={value}\n" for key, value in fields.items())

