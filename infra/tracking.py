"""MLflow tracking: the server with served artifacts, its state on volumes, optional PostgreSQL and basic auth."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import ArtifactStore, StackConfig, Team
from containers import (
    SECRETS_DIR,
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

from services.contract import AUDIT_EXPERIMENT, MLFLOW_AUTH_SERVER_ENV, MONITORING_USER

MLFLOW_PORT = 5000
BACKEND_DIR, ARTIFACTS_DIR = "/mlflow/backend", "/mlflow/artifacts"
AUTH_CONFIG_FILE, PGPASS_FILE = "/home/app/basic_auth.ini", "/home/app/.pgpass"
SERVICE_USERS_FILE = "/home/app/service_users.ini"
TEAM_GRANTS_FILE = "/home/app/team_grants.ini"  # each team's models (services/tracking/service_users.py)
# What the provisioner granted teams, kept on the backend volume so a team dropped from `models` loses it.
TEAM_RECORD_FILE = f"{BACKEND_DIR}/team_grants_made.json"
S3_CREDENTIALS = "s3-credentials"  # boto3's shared credentials file (AWS_SHARED_CREDENTIALS_FILE)
# The Docker DNS names clients use, plus the published port; MLflow 3 answers 403 to any other Host.
ALLOWED_HOSTS = "mlflow,mlflow:5000,localhost:*,127.0.0.1:*"
POSTGRES_USER = POSTGRES_DB = "mlflow"
POSTGRES_DATA_DIR = "/var/lib/postgresql/data"
POSTGRES_PASSWORD_FILE = "/run/postgres-password"


@dataclass(frozen=True)
class TrackingArgs:
    config: StackConfig
    network: docker.Network
    object_store: pulumi.Resource | None = None  # the stack's own S3 store, which MLflow waits for


class Tracking(pulumi.ComponentResource):
    """`mlflow server --serve-artifacts`, reachable as http://mlflow:5000 on the network."""

    internal_url = f"http://mlflow:{MLFLOW_PORT}"

    def __init__(self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Tracking", name, None, opts)
        config = args.config
        backend = volume(f"{name}-backend", "mlflow-backend", config, child_of(self))
        volumes = [mount(backend, BACKEND_DIR)]
        self.image = service_image(f"{name}-image", "tracking", config, child_of(self))

        # The job runner is off: it is unused here and costs ~2 GB RSS (0.56 GB without it).
        envs: list[pulumi.Input[str]] = ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"]
        uploads: list[docker.ContainerUploadArgs] = []
        waits_for: list[pulumi.Resource] = [args.object_store] if args.object_store else []
        artifacts_destination = ARTIFACTS_DIR
        if config.artifacts is not None:  # in S3: the keys only as a file, the endpoint and file by env
            artifacts_destination = config.artifacts.destination
            envs += [f"{key}={value}" for key, value in
                     s3_client_env(config.artifacts, f"{SECRETS_DIR}/{S3_CREDENTIALS}").items()]
            uploads.append(secret_file(f"{SECRETS_DIR}/{S3_CREDENTIALS}", s3_credentials(config.artifacts)))
        else:
            artifacts = volume(f"{name}-artifacts", "mlflow-artifacts", config, child_of(self))
            volumes.append(mount(artifacts, ARTIFACTS_DIR))
        backend_uri = f"sqlite:///{BACKEND_DIR}/mlflow.db"
        if config.tracking_backend == "postgres":
            assert config.postgres_password is not None  # load_stack_config requires it for postgres
            self.postgres = self._postgres(name, config, args.network, config.postgres_password)
            waits_for.append(self.postgres)
            # A named driver: for a bare postgresql:// SQLAlchemy 2.1 picks psycopg 3; the image has psycopg2.
            backend_uri = f"postgresql+psycopg2://{POSTGRES_USER}@postgres:5432/{POSTGRES_DB}"
            envs.append(f"PGPASSFILE={PGPASS_FILE}")
            uploads.append(secret_file(PGPASS_FILE, config.postgres_password.apply(_pgpass_line)))
        # What the monitoring job needs to log in (~/.mlflow/credentials), when auth is on: its own user.
        self.monitoring_credentials: pulumi.Output[str] | None = None
        if config.auth_enabled:
            assert config.admin_password is not None and config.monitoring_password is not None  # required with auth
            envs += [f"MLFLOW_AUTH_CONFIG_PATH={AUTH_CONFIG_FILE}", f"SERVICE_USERS_FILE={SERVICE_USERS_FILE}",
                     f"TEAM_RECORD_FILE={TEAM_RECORD_FILE}",  # also without teams: one dropped loses its grants
                     # Every release and the monitoring job append to the audit trail (made at start, owned by none).
                     f"TEAM_SHARED_EXPERIMENTS={AUDIT_EXPERIMENT}", f"MONITORING_USER={MONITORING_USER}",
                     *(f"{name}={value}" for name, value in MLFLOW_AUTH_SERVER_ENV.items())]
            uploads.append(secret_file(
                AUTH_CONFIG_FILE, config.admin_password.apply(lambda pw: _auth_config(config.admin_username, pw))
            ))
            uploads.append(secret_file(SERVICE_USERS_FILE, _service_users(config.monitoring_password, config.teams)))
            if config.teams:
                # The monitoring job's experiments are made at start too, so no team's user can create one first.
                monitored = sorted({model.monitoring.policy.experiment for model in (config, *config.models)})
                envs += [f"TEAM_GRANTS_FILE={TEAM_GRANTS_FILE}", f"MONITORING_EXPERIMENTS={','.join(monitored)}"]
                uploads.append(config_file(TEAM_GRANTS_FILE, "".join(
                    _ini(team.name, {"models": ", ".join(team.models)}) for team in config.teams)))
            self.monitoring_credentials = config.monitoring_password.apply(
                lambda pw: _client_credentials(MONITORING_USER, pw))

        command = [
            "--host", "0.0.0.0", "--port", str(MLFLOW_PORT), "--workers", str(config.mlflow_workers),
            "--backend-store-uri", backend_uri,
            "--artifacts-destination", artifacts_destination, "--serve-artifacts",
            "--allowed-hosts", ALLOWED_HOSTS,
            # uvicorn kills a worker that misses its 5 s liveness ping; one still importing MLflow on a busy
            # host does, and is killed again and again. A minute stays well inside the health check's window.
            "--uvicorn-opts", "--timeout-worker-healthcheck 60",
        ]
        if config.auth_enabled:
            command += ["--app-name", "basic-auth"]
        self.container = service_container(
            f"{name}-server", config,
            service="mlflow",
            image=self.image.repo_digest,
            network=args.network,
            memory_mb=config.memory.mlflow,
            # /health stays open with basic auth on, so the probe needs no credentials.
            health=healthcheck(http_probe(MLFLOW_PORT, "/health")),
            envs=envs,
            volumes=volumes,
            ports=[published(MLFLOW_PORT, config.mlflow_port, config)],
            command=command,
            uploads=uploads,
            access_controlled=config.auth_enabled,
            opts=child_of(self, depends_on=waits_for),
        )
        self.url = pulumi.Output.from_input(f"http://127.0.0.1:{config.mlflow_port}")
        self.register_outputs({"url": self.url, "internal_url": self.internal_url})

    def _postgres(
        self, name: str, config: StackConfig, network: docker.Network, password: pulumi.Output[str]
    ) -> docker.Container:
        data = volume(f"{name}-postgres-data", "postgres-data", config, child_of(self))
        # Built from services/postgres (Debian's PostgreSQL) unless the stack names another image.
        if config.postgres_image is None:
            image: pulumi.Output[str] = service_image(
                f"{name}-postgres-image", "postgres", config, child_of(self)).repo_digest
        else:
            image = docker.RemoteImage(f"{name}-postgres-image", name=config.postgres_image, keep_locally=True,
                                       opts=child_of(self)).image_id
        return service_container(
            f"{name}-postgres", config,
            service="postgres",
            image=image,
            network=network,
            memory_mb=config.memory.postgres,
            health=healthcheck(["CMD", "pg_isready", "--host", "127.0.0.1", "--username", POSTGRES_USER,
                                "--dbname", POSTGRES_DB, "--timeout", "4"], start_period="30s"),
            envs=[f"POSTGRES_USER={POSTGRES_USER}", f"POSTGRES_DB={POSTGRES_DB}",
                  f"POSTGRES_PASSWORD_FILE={POSTGRES_PASSWORD_FILE}"],
            volumes=[mount(data, POSTGRES_DATA_DIR)],
            uploads=[secret_file(POSTGRES_PASSWORD_FILE, password)],
            opts=child_of(self),
        )


def _pgpass_line(password: str) -> str:
    # libpq's ~/.pgpass format: ':' and '\' inside a field are backslash-escaped.
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"postgres:5432:{POSTGRES_DB}:{POSTGRES_USER}:{escaped}\n"


def _ini(section: str, values: dict[str, str]) -> str:
    # MLflow reads both its files with configparser, where '%' starts an interpolation unless doubled.
    return f"[{section}]\n" + "".join(f"{key} = {value.replace('%', '%%')}\n" for key, value in values.items())


def _service_users(monitoring_password: pulumi.Output[str], teams: tuple[Team, ...]) -> pulumi.Output[str]:
    """The users file: the monitoring job's user and each team's, a password each."""
    return pulumi.Output.all(monitoring_password, *(team.password for team in teams)).apply(lambda passwords: "".join(
        _ini(user, {"password": password})
        for user, password in zip([MONITORING_USER, *(team.name for team in teams)], passwords, strict=True)))


def _auth_config(username: str, password: str) -> str:
    return _ini("mlflow", {
        "default_permission": "READ",
        "database_uri": f"sqlite:///{BACKEND_DIR}/basic_auth.db",
        "admin_username": username,
        "admin_password": password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    })


def _client_credentials(username: str, password: str) -> str:
    return _ini("mlflow", {"mlflow_tracking_username": username, "mlflow_tracking_password": password})


def s3_client_env(store: ArtifactStore, credentials_file: str) -> dict[str, str]:
    """What boto3 (under MLflow) reads to reach the store: the keys from a file, never from env or argv."""
    env = {"AWS_SHARED_CREDENTIALS_FILE": credentials_file}
    if store.endpoint_url:
        env["MLFLOW_S3_ENDPOINT_URL"] = store.endpoint_url
    return env


def s3_credentials(store: ArtifactStore) -> pulumi.Output[str]:
    # botocore reads it with RawConfigParser: a '%' is literal here, so unlike _ini nothing is doubled.
    return pulumi.Output.all(store.access_key_id, store.secret_access_key).apply(
        lambda keys: f"[default]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n")
