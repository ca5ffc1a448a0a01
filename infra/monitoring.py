"""Evidently monitoring: a drift job per model on its interval and the Evidently UI over their one workspace."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import PolicySource, StackConfig
from containers import (
    SECRETS_DIR,
    child_of,
    healthcheck,
    http_probe,
    mount,
    published,
    secret_file,
    service_container,
    service_image,
    volume,
)

from services.contract import (
    ALERT_KIND_ENV,
    ALERT_TOKEN_FILE_ENV,
    ALERT_WEBHOOK_URL_FILE_ENV,
    INFERENCE_LOG_ENV,
    INFERENCE_LOG_MOUNT,
    MONITORED_MODEL_ENV,
    MONITORING_POLICY_ENV,
    MONITORING_REPORTS_ENV,
    MONITORING_WORKSPACE_ENV,
    inference_log_dir,
    monitoring_alias,
)
from services.monitoring.settings import METRICS_PORT_ENV, STACK_METRICS_PORT

UI_PORT = 8000
STATE_DIR = "/var/lib/monitoring"
WORKSPACE_DIR = f"{STATE_DIR}/workspace"
MLFLOW_CREDENTIALS_FILE = "/home/app/.mlflow/credentials"
UI_SECRET_FILE = f"{SECRETS_DIR}/evidently-ui"
# Healthy while the job's heartbeat is fresh (two intervals plus a start-up grace); the command loads
# the standard library and pydantic (the policy gives the interval), never Evidently or MLflow, so probing
# every 30 s stays cheap.
HEARTBEAT_PROBE = ["CMD", "python", "-m", "services.monitoring", "--healthcheck"]


@dataclass(frozen=True)
class DriftAlertFiles:
    """How the job gets its drift alert, on either target: env (file paths, the kind) and the secret files."""

    env: dict[str, str]
    files: dict[str, pulumi.Output[str]]  # file name in SECRETS_DIR -> its secret content


def drift_alert_files(config: StackConfig) -> DriftAlertFiles:
    """The webhook URL and the token reach the job as files, like every secret; none of it without a URL."""
    env, files = {}, {}
    for variable, secret, file in ((ALERT_WEBHOOK_URL_FILE_ENV, config.drift_alert_url, "alert-webhook-url"),
                                   (ALERT_TOKEN_FILE_ENV, config.drift_alert_token, "alert-token")):
        if secret is not None:
            env[variable], files[file] = f"{SECRETS_DIR}/{file}", secret
    if files:
        env[ALERT_KIND_ENV] = config.drift_alert_kind
    return DriftAlertFiles(env, files)


@dataclass(frozen=True)
class MonitoringArgs:
    config: StackConfig
    network: docker.Network
    tracking_url: str
    inference_log: docker.Volume
    # ~/.mlflow/credentials of the job's own MLflow user when MLflow runs with basic auth (a secret), else None.
    tracking_credentials: pulumi.Output[str] | None = None


def job_state_dir(model: str | None) -> str:
    """Where `model`'s job keeps its reports and log index on the shared state volume (None: the default model's,
    as on a single-model stack): each job its own, since the log index is one model's."""
    return STATE_DIR if model is None else f"{STATE_DIR}/models/{model}"


class Monitoring(pulumi.ComponentResource):
    """`python -m services.monitoring --loop` per model (alias `monitoring` for the default model,
    `monitoring-<name>` for each other) and one `evidently ui` (alias `monitoring-ui`) over their shared workspace,
    where each job keeps its model's project.

    One job container per model rather than one job looping over the models: each is the single-model job as it
    is (one policy, interval, heartbeat health check, metrics endpoint and restart of its own), so a model whose
    runs fail, take long on a large window or run out of memory never delays or stops another model's monitoring,
    and a single-model stack stays exactly as it was. The price is memory on the shared host: every job holds its
    own Python with Evidently, pandas and the MLflow client (each bounded by monitoringMemoryMb; docs/monitoring.md
    has the figure), where one loop would hold them once.
    """

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:Monitoring", name, None, opts)
        self._name, self._args = name, args
        config = args.config
        self._state = volume(f"{name}-state", "monitoring-state", config, child_of(self))
        self.image = service_image(f"{name}-image", "monitoring", config, child_of(self))
        self._alert = drift_alert_files(config)
        self.job = self._job(None, config.model_name, config.monitoring)
        self.jobs = {model.name: self._job(model.name, model.name, model.monitoring) for model in config.models}
        ui_secret = config.monitoring_ui_secret
        self.ui = service_container(
            f"{name}-ui", config,
            service="monitoring-ui",
            image=self.image.repo_digest,
            network=args.network,
            memory_mb=config.memory.monitoring_ui,
            # Evidently has no /health; /api/version answers 200 once the UI serves.
            health=healthcheck(http_probe(UI_PORT, "/api/version")),
            volumes=[mount(self._state, STATE_DIR)],
            ports=[published(UI_PORT, config.monitoring_ui_port, config)],
            command=["python", "-m", "services.monitoring.ui", "--workspace", WORKSPACE_DIR, "--host", "0.0.0.0",
                     "--port", str(UI_PORT), *(["--secret-file", UI_SECRET_FILE] if ui_secret else [])],
            uploads=[secret_file(UI_SECRET_FILE, ui_secret)] if ui_secret else [],
            access_controlled=ui_secret is not None,
            opts=child_of(self),
        )
        self.ui_url = pulumi.Output.from_input(f"http://127.0.0.1:{config.monitoring_ui_port}")
        self.register_outputs({"ui_url": self.ui_url})

    def _job(self, model: str | None, model_name: str, monitoring: PolicySource) -> docker.Container:
        """`model_name`'s job (`model` None: the default model's), judging its own traffic by its own policy."""
        args, config, alert = self._args, self._args.config, self._alert
        state_dir = job_state_dir(model)
        return service_container(
            f"{self._name}-job" + ("" if model is None else f"-{model}"), config,
            service=monitoring_alias(model),
            image=self.image.repo_digest,
            network=args.network,
            memory_mb=config.memory.monitoring,
            health=healthcheck(HEARTBEAT_PROBE, start_period="120s", interval="30s"),
            access_controlled=args.tracking_credentials is not None,  # it publishes no port; it logs in to MLflow
            envs=[
                f"MLFLOW_TRACKING_URI={args.tracking_url}",
                f"{MONITORED_MODEL_ENV}={model_name}",
                f"{INFERENCE_LOG_ENV}={inference_log_dir(model)}",
                f"{MONITORING_WORKSPACE_ENV}={WORKSPACE_DIR}",
                f"{MONITORING_REPORTS_ENV}={state_dir}/reports",
                # Container-local, so a replaced container never inherits a fresh-looking beat.
                "MONITORING_HEARTBEAT_FILE=/tmp/monitoring.heartbeat",
                # The model's policy: thresholds, window, action, interval (services/monitoring/policy.py).
                f"{MONITORING_POLICY_ENV}={monitoring.policy.to_json()}",
                # Its verdicts as metrics for the stack's Prometheus (services/monitoring/metrics.py); not published.
                f"{METRICS_PORT_ENV}={STACK_METRICS_PORT}",
                *(f"{variable}={value}" for variable, value in alert.env.items()),
            ],
            # The job only reads what serving logs.
            volumes=[mount(args.inference_log, INFERENCE_LOG_MOUNT, read_only=True), mount(self._state, STATE_DIR)],
            command=["python", "-m", "services.monitoring", "--loop"],
            uploads=(
                [secret_file(MLFLOW_CREDENTIALS_FILE, args.tracking_credentials)]
                if args.tracking_credentials is not None else []
            ) + [secret_file(f"{SECRETS_DIR}/{file}", content) for file, content in alert.files.items()],
            opts=child_of(self),
        )
