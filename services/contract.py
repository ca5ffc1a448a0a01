"""The names two parts of the platform must agree on, each defined here and nowhere else.

Standard library only: the pipelines, the Pulumi program, the serving bento and the monitoring image all
import this one module, so a change here reaches every reader at once. docs/contracts.md says who
writes and who reads each name.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Literal, get_args

# A training run in MLflow: written by pipelines.train / pipelines.data, read by the gate, deploy,
# traffic and the monitoring job (its reference).
SNAPSHOT_ARTIFACT = "data/snapshot.parquet"  # the full table trained on, immutable
HOLDOUT_ARTIFACT = "eval/holdout.parquet"  # the frozen eval set: features + target
CONFIG_ARTIFACT = "config/pipeline.json"  # the validated pipeline config the run was made with
TARGET_TAG = "target"  # run tag naming the target column of the snapshot
# Under `data.snapshot: reference` the run holds no table: SNAPSHOT_REFERENCE_ARTIFACT records where it came
# from, what pins it and its digest (pipelines.snapshots re-reads and checks it), and MONITORING_SAMPLE_ARTIFACT
# is the bounded sample of it the monitoring job reads instead of SNAPSHOT_ARTIFACT (it cannot reach the source).
SNAPSHOT_REFERENCE_ARTIFACT = "data/snapshot_reference.json"
MONITORING_SAMPLE_ARTIFACT = "data/monitoring_sample.parquet"
# Lineage, on the run and its model version (pipelines.train; `make status` shows them): the source's URI (no
# password), its kind (demo, file, object, sql) and the snapshot policy (copy, reference) it was trained under.
DATA_SOURCE_TAG, DATA_SOURCE_KIND_TAG, SNAPSHOT_POLICY_TAG = "data_source", "data_source_kind", "data_snapshot"

# What kind of problem a model solves: the pipeline config's `task`, recorded with the run (its config and
# TASK_TAG) and on the version, read by the gate, the bento (a serving argument), the canary and monitoring.
TaskName = Literal["classification", "regression"]
CLASSIFICATION, REGRESSION = get_args(TaskName)
# Run and model version tags training sets beside DATA_VERSION_TAG: the task, the estimator's import path,
# and the sha256 of the team's own code logged with the model (MLflow code_paths), "" when it has none.
TASK_TAG, ESTIMATOR_TAG, CODE_SHA256_TAG = "task", "estimator", "code_sha256"

# The model registry: the alias of the version that serves (moved by a release; the monitoring job opens
# retrain requests on its verdict only) and the model version tag naming the data it was trained on
# (a retrain request is closed only by a release trained on other data).
CHAMPION_ALIAS = "champion"
DATA_VERSION_TAG = "data_version"  # sha256 of the full training table
# A model's name is its registered model's, its bento's, its route's on a front (`/models/<name>/...`) and part
# of its containers' names: so an RFC 1123 DNS label, which Docker, Kubernetes and a URL path all take as it is.
MODEL_ROUTE_PREFIX = "/models/"
DNS_LABEL_MAX_CHARS = 63
# Kubernetes names a CronJob's Jobs `<cronjob>-<11 characters>`, so a CronJob's own name holds at most 52.
CRON_JOB_NAME_MAX_CHARS = 52
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def is_dns_label(name: str) -> bool:
    return len(name) <= DNS_LABEL_MAX_CHARS and _DNS_LABEL.fullmatch(name) is not None


# The audit trail's experiment: one for every model's records (pipelines/audit.py). With teams the tracking server
# creates it at its start, with EDIT for every team, so that no team's user creates it first and owns it.
AUDIT_EXPERIMENT = "audit"

# The experiment the monitoring job records its reports (and retrain requests) in; a release closes them there.
MONITORING_EXPERIMENT = "monitoring"

# The env naming a monitoring job's model and its writable state (infra writes them, services/monitoring/settings.py
# reads them, gc on a stack finds the state by them: pipelines/volume_files.py).
MONITORED_MODEL_ENV, MONITORING_WORKSPACE_ENV, MONITORING_REPORTS_ENV = (
    "MODEL_NAME", "MONITORING_WORKSPACE", "MONITORING_REPORTS_DIR")

# The env variable carrying one model's monitoring policy to the stack's job, as JSON
# (services/monitoring/policy.py; infra/monitoring.py writes it, services/monitoring/settings.py reads it).
MONITORING_POLICY_ENV = "MONITORING_POLICY"

# Tags of the monitoring job's report runs that `make status` reads over MLflow's REST API (services/monitoring).
REPORT_MODEL_TAG, REPORT_VERSION_TAG, REPORT_VERDICT_TAG = "model_name", "model_version", "verdict"
RETRAIN_REQUESTED_TAG = "retrain_requested"  # "true" on the report run that opened a request
RETRAIN_REQUESTED_AT_TAG, RETRAIN_STATUS_TAG = "retrain_requested_at", "retrain_status"
RETRAIN_OPEN = "requested"  # the status of a request no release has acted on yet

# What monitoring's DRIFT verdict triggers: the pipeline config's `monitoring.on_drift` and the job's env.
OnDrift = Literal["retrain", "none"]
ON_DRIFT_CHOICES: tuple[OnDrift, ...] = get_args(OnDrift)

# The inference log: serving writes it, the monitoring job reads it. A volume in the stack, mounted at
# the same path in both containers.
INFERENCE_LOG_ENV = "INFERENCE_LOG_DIR"
INFERENCE_LOG_MOUNT = "/var/lib/inference"
REQUEST_ID_HEADER = "x-request-id"
# A request whose SMOKE_TOKEN_HEADER carries the serving process's smoke token (a wrong one is a 403) has its
# rows logged in the SMOKE_LOG_SUBDIR of the inference log, which monitoring does not read.
SMOKE_TOKEN_HEADER = "x-smoke-token"
SMOKE_LOG_SUBDIR = "smoke"


def inference_log_dir(model: str | None) -> str:
    """Where `model`'s servers write the stack's inference log and its monitoring job reads it: the default model
    (None) at the volume's top, as on a single-model stack; every other in a folder of its own, so each job reads
    only its model's traffic (a reader takes a folder's top files only: smoke/ and feedback/ are beside them)."""
    return INFERENCE_LOG_MOUNT if model is None else f"{INFERENCE_LOG_MOUNT}/models/{model}"

# Images: the stack builds `<prefix>-serving-runtime:<imageTag>`; a release adds one bento on top of it
# as `<prefix>-serving:<bento version>` (pipelines.stack).
DEFAULT_NAME_PREFIX = "mlops"
DEFAULT_IMAGE_TAG = "latest"
SERVING_RUNTIME_REPOSITORY = "serving-runtime"
SERVING_RELEASE_REPOSITORY = "serving"


# The stack config keys a release sets (pipelines.stack, pipelines.release_pointer; read in infra/config.py),
# and their values when there is nothing: no release image (the runtime image, "no model deployed yet") and
# no model version, for the champion, a release's candidate beside it and a canary.
SERVING_IMAGE_KEY, MODEL_VERSION_KEY = "servingImage", "modelVersion"
CANDIDATE_IMAGE_KEY, CANDIDATE_VERSION_KEY = "candidateImage", "candidateVersion"
CANARY_IMAGE_KEY, CANARY_VERSION_KEY, CANARY_PERCENT_KEY = "canaryImage", "canaryVersion", "canaryPercent"
NO_IMAGE, NO_VERSION = "", "none"

# A stack serving several models declares them in its `models` key (infra/config_models.py); its default model
# (`modelName`, the one `/predict` answers for) keeps the keys above, every other model has its own of each,
# `<key>.<model>` (servingImage.bike-rentals), so a release of one model sets only its own keys.
MODELS_KEY = "models"
MODEL_RELEASE_KEYS = (SERVING_IMAGE_KEY, MODEL_VERSION_KEY, CANDIDATE_IMAGE_KEY, CANDIDATE_VERSION_KEY,
                      CANARY_IMAGE_KEY, CANARY_VERSION_KEY, CANARY_PERCENT_KEY)


# A team's secrets, per team: `<key>.<team>` (teamPassword.risk), its MLflow user's password and its serving token.
TEAM_PASSWORD_KEY, TEAM_SERVING_TOKEN_KEY = "teamPassword", "teamServingToken"
TEAM_KEYS = (TEAM_PASSWORD_KEY, TEAM_SERVING_TOKEN_KEY)
# The MLflow user the monitoring job logs in as (services/tracking/service_users.py); no team may take its name.
MONITORING_USER = "monitoring"


def model_key(key: str, model: str | None) -> str:
    """The stack config key of `key` for `model`; None (the stack's default model) is the key itself."""
    return key if model is None else f"{key}.{model}"


# The network aliases of a model's release containers, by role, which the front's backends resolve: the default
# model keeps the single-model stack's (`serving`, `serving-canary`, `serving-candidate`); another model's
# start with the role, so no model name can make two of them equal (services/front/model_routes.py).
SERVING_ROLES = ("release", "canary", "candidate")
_DEFAULT_MODEL_ALIASES = {"release": "serving", "canary": "serving-canary", "candidate": "serving-candidate"}


def serving_alias(role: str, model: str | None) -> str:
    """The network alias of `model`'s `role` container (None: the stack's default model)."""
    return _DEFAULT_MODEL_ALIASES[role] if model is None else f"{role}-{model}"


# On the kubernetes target one name per model for its serving Deployment, Service, autoscaler and disruption
# budget: the default model keeps the single-model stack's `serving`, another's is `serving-<model>` (a Service
# name, so at most 63 characters: infra/config_kubernetes.py refuses longer model names there).
def kubernetes_serving_name(model: str | None) -> str:
    return "serving" if model is None else f"serving-{model}"


# The front's backend carrying `model`'s users' requests (services/front/haproxy.cfg has the default model's,
# services/front/model_routes.py writes every other's); the canary analysis reads its access log entries.
def front_users_backend(model: str | None) -> str:
    return "ready" if model is None else f"model-{model}-ready"


# A stack's default model when its file names none (`modelName`), and the monitoring job's when its env names none:
# the demo's, as pipelines/pipeline.yaml names it.
DEFAULT_MODEL_NAME = "loan-default"


def monitoring_alias(model: str | None) -> str:
    """The network alias of `model`'s monitoring job (None: the default model's), where its metrics are scraped."""
    return "monitoring" if model is None else f"monitoring-{model}"


# BentoML reads overrides of a service's config from this env var: a stack sets the worker processes of one model's
# servers with it (a `models` entry's servingWorkers) over the bento's own (its pipeline config's serving.workers).
# `Serving` is the service's class name (services/serving/service.py).
def serving_workers_env(workers: int) -> tuple[str, str]:
    """The variable and its value (both targets' containers take them)."""
    return "BENTOML_CONFIG_OPTIONS", f"services.Serving.workers={workers}"


# A team's model folder holds its config: `models/<name>/pipeline.yaml` from the repo root, which the CLI's
# MODEL=<name> reads (pipelines/config_files.py) and a stack's `models` entry defaults to (infra/config_monitoring.py).
MODELS_FOLDER, MODEL_CONFIG_FILE = "models", "pipeline.yaml"

# The gauge every model server exposes on /metrics (value 1) with labels model_name and model_version: the stack's
# Prometheus rules (services/prometheus/rules) and the canary's Prometheus reader (pipelines/canary_prometheus.py)
# join BentoML's per-server request metrics with it. The docker stack's output with Prometheus's URL, set only
# when its port is published (loopback stacks); the canary reads its figures there.
MODEL_INFO_METRIC = "serving_model_info"
PROMETHEUS_URL_OUTPUT = "prometheus_url"

# The stack outputs naming what its serving container runs (infra/__main__.py, infra/kubernetes/platform.py): the
# image, and the model version, NO_VERSION for the runtime image. `pipelines.release_pointer` falls back to them.
SERVING_IMAGE_OUTPUT, MODEL_VERSION_OUTPUT = "serving_image", "model_version"


def image_ref(prefix: str, repository: str, tag: str) -> str:
    return f"{prefix}-{repository}:{tag}"


class JsonLogFormatter(logging.Formatter):
    """The services' log lines: one JSON object with `ts`, `level`, `logger`, `event` and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return json.dumps(line, default=str)


# The stack config key that publishes the ports on every interface, and the policy pack's rule and config key
# that must allow it then (infra/policy/policies.py; `pipelines.pulumi_stack.PulumiStack` passes its config).
EXPOSE_PORTS_KEY = "exposePorts"
PUBLIC_PORTS_POLICY, ALLOW_PUBLIC_PORTS = "no-public-ports", "allowPublicPorts"

# The drift alert's webhook (services/monitoring/alert.py): its shapes, and the env naming its secret files.
DRIFT_ALERT_KINDS = ("slack", "github")
ALERT_WEBHOOK_URL_FILE_ENV = "MONITORING_ALERT_WEBHOOK_URL_FILE"
ALERT_TOKEN_FILE_ENV = "MONITORING_ALERT_TOKEN_FILE"
ALERT_KIND_ENV = "MONITORING_ALERT_KIND"

# The file holding MLflow's Flask secret (services/tracking/entrypoint.sh exports it as
# MLFLOW_FLASK_SERVER_SECRET_KEY); every replica given the same file signs CSRF tokens the others accept.
FLASK_SECRET_KEY_FILE_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY_FILE"

# Which runtime serves a model version (services/serving/onnx_model.py): a version tag the gate sets and
# the bento, `make status` and the audit read.
ONNX_RUNTIME, SKLEARN_RUNTIME = "onnxruntime", "scikit-learn"
SERVING_RUNTIME_TAG = "serving_runtime"

# Access control (services/access.py): each service reads its credential from the file these name.
SERVING_TOKEN_FILE_ENV = "SERVING_TOKEN_FILE"  # serving's bearer token; /livez and /readyz stay open
SMOKE_TOKEN_FILE_ENV = "SMOKE_TOKEN_FILE"  # the token a release's smoke requests carry
# With teams (a `models` entry's `team`): a model's container also admits its team's serving token, and answers 403
# to a token whose SHA-256 is a line of the refused file (another team's: known, but without rights here).
TEAM_TOKEN_FILE_ENV = "TEAM_SERVING_TOKEN_FILE"
REFUSED_TOKENS_FILE_ENV = "REFUSED_TOKEN_DIGESTS_FILE"
SERVING_OPEN_PATHS = ("/livez", "/readyz")
# The shortest token a service accepts (serving, smoke, Evidently UI), and the shortest password the stack takes
# (MLflow's basic-auth app refuses shorter ones): the stack config and the services reading the files check them.
MIN_TOKEN_CHARS, MIN_PASSWORD_CHARS = 16, 12
# What an MLflow server with basic auth on gets in its env, on every target: a route the auth app's permission
# map does not cover answers 403 to a non-admin (and a native FastAPI route without a validator, to anyone)
# instead of being served. MLflow 3.17 defaults to it; set here so an image, an env or another MLflow version
# that defaults otherwise cannot open them (tests/integration/test_mlflow_auth.py).
MLFLOW_AUTH_SERVER_ENV = {"MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true"}
# The label on every Docker object of a stack; its value is the stack's name prefix.
STACK_LABEL = "mlops-platform.stack"
# The label on every serving container of a stack naming the model it serves (`make status` lists them by it).
MODEL_LABEL = "mlops-platform.model"
# The label of every release image naming its model version (services/serving/release.Dockerfile sets it).
RELEASE_VERSION_LABEL = "mlops.model-version"
# A serving container told to stop first drains: its entrypoint creates this file, `/readyz` turns 503 so
# the front stops sending it requests, and the server keeps answering for a while before it exits.
DRAIN_FILE_ENV = "SERVING_DRAIN_FILE"
# A canary serving container's weight in the front, in percent of a release container's weight
# (services/serving/weight_agent.py answers it to HAProxy's agent check).
CANARY_WEIGHT_ENV = "SERVING_CANARY_WEIGHT_PERCENT"
# The request header that sends a request to the canary alone (a release's checks of the candidate). The front
# honours it only on a request that also carries the smoke token (SMOKE_TOKEN_HEADER): a release's own checks.
CANARY_ROUTE_HEADER, CANARY_ROUTE_VALUE = "x-mlops-route", "canary"
# Its value that sends a request to a release's candidate alone (no user request reaches the candidate).
CANDIDATE_ROUTE_VALUE = "candidate"
# The docker stack's output naming the host its front's TLS certificate carries (set only with TLS): a release's
# checks reach the front at 127.0.0.1 but verify the certificate against this name (infra/__main__.py writes it,
# pipelines/stack.py reads it).
TLS_SERVER_NAME_OUTPUT = "serving_tls_server_name"


def canary_weight_percent(share_percent: int) -> int:
    """The canary's weight, in percent of the one release container's, that gives it `share_percent` of requests."""
    return round(100 * share_percent / (100 - share_percent))


def canary_share(weight_percent: int) -> float:
    """The share of requests a canary of this weight gets beside one release container (inverse of the above)."""
    return weight_percent / (100 + weight_percent)
