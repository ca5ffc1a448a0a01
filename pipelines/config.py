"""The one pipeline config: dataset, features, model, gates, tracking, local platform, serving, monitoring.

Every value a team changes lives in its model's config, `models/<name>/pipeline.yaml` (the demo's is
`pipelines/pipeline.yaml`); this module is the only reader.
A wrong key or value fails with `ConfigError` naming the key, before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from pipelines.backup_shelf import overlaps, shelf_at
from pipelines.config_files import CONFIG_ENV as CONFIG_ENV  # re-exported: where the config is chosen
from pipelines.config_files import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH
from pipelines.config_files import ConfigError, chosen_config_path
from pipelines.config_model import (
    DEFAULT_ESTIMATORS,
    DEFAULT_GATES,
    REPO_ROOT,
    CardConfig,
    DataConfig,
    FairnessConfig,
    FeaturesConfig,
    GatesConfig,
    LifecycleConfig,
    ModelConfig,
    Section,
    from_repo_root,
)
from pipelines.object_store import ObjectStoreError, S3Location, is_s3_url
from pipelines.task import task_for
from pipelines.uris import is_loopback, redact
from services.contract import CLASSIFICATION, DNS_LABEL_MAX_CHARS, TaskName, is_dns_label
from services.fairness_limits import limits_of_task
from services.monitoring.policy import MonitoringPolicy

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
TRACKING_USERNAME_ENV, TRACKING_PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


class TrackingConfig(Section):
    uri: str | None = Field(
        None, description="MLflow tracking URI (default: the local platform's); MLFLOW_TRACKING_URI overrides"
    )
    experiment: str = "release"

    @property
    def resolved_uri(self) -> str:
        return os.environ.get(TRACKING_URI_ENV) or self.uri or ""

    @property
    def display_uri(self) -> str:
        """The URI without any password in it, for output and records."""
        return redact(self.resolved_uri)


class PlatformConfig(Section):
    """The embedded default: processes on this machine, state in one git-ignored directory."""

    state_dir: Path = Field(Path(".platform"), description="relative paths (and the default) are from the repo root")
    # Before `host`: its validator reads this one.
    allow_unauthenticated_network: bool = Field(
        False, description="let platform.host be a non-loopback address although nothing on it asks for a credential")
    host: str = "127.0.0.1"
    mlflow_port: int = Field(5000, ge=1, le=65535)
    serving_port: int = Field(3000, ge=1, le=65535)
    monitoring_ui_port: int = Field(8000, ge=1, le=65535)
    startup_timeout_s: float = Field(120.0, gt=0)
    artifacts_destination: str | None = Field(
        None, description="where the local MLflow server keeps artifacts: by default <state_dir>/mlflow/artifacts; "
                          "an s3://bucket/prefix keeps them in S3 (endpoint and credentials from AWS_ENDPOINT_URL, "
                          "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE, never here); "
                          "clients still go through MLflow's artifact API")
    backup_destination: str | None = Field(
        None, description="where `make backup` puts archives (and a forced restore the state it replaces): a folder "
                          "or an s3://bucket/prefix that no one else may read; by default <state_dir>/backups")

    @field_validator("artifacts_destination", "backup_destination")
    @classmethod
    def _a_valid_bucket_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.field_name == "backup_destination" and not is_s3_url(value)):
            return value  # the default, or a backup folder
        try:
            return S3Location.parse(value, f"platform.{info.field_name}").url
        except ObjectStoreError as exc:
            raise ValueError(str(exc).removeprefix(f"platform.{info.field_name}: ")) from None

    @model_validator(mode="after")
    def _backups_apart_from_artifacts(self) -> PlatformConfig:
        if self.artifacts_location and overlaps(shelf_at(self.backups_at), self.artifacts_location):
            raise ValueError(f"platform.backup_destination {self.backup_destination} and "
                             f"platform.artifacts_destination {self.artifacts_destination} overlap (one bucket, one "
                             "prefix under or equal to the other): backups would be copied into each new backup and "
                             "deleted by a restore; give backups a prefix (or bucket) of their own")
        return self

    @field_validator("state_dir")
    @classmethod
    def _anchor_state_dir(cls, value: Path) -> Path:
        return value if value.is_absolute() else REPO_ROOT / value

    @field_validator("host")
    @classmethod
    def _loopback_unless_opted_in(cls, value: str, info: ValidationInfo) -> str:
        if is_loopback(value) or info.data.get("allow_unauthenticated_network"):
            return value
        raise ValueError(
            "the local platform's MLflow, serving and Evidently UI have no authentication, so a non-loopback host "
            "lets anyone who reaches it read and change the registry and the served model; keep 127.0.0.1 (and "
            "use an SSH tunnel), serve others from the stack with authEnabled: true (Pulumi.<stack>.yaml), or set "
            "platform.allow_unauthenticated_network: true to accept that risk on a network you trust")

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.host}:{self.serving_port}"

    @property
    def monitoring_ui_url(self) -> str:
        return f"http://{self.host}:{self.monitoring_ui_port}"

    @property
    def artifacts_location(self) -> S3Location | None:
        """The bucket prefix of the artifacts, None when they are in the state dir."""
        return S3Location.parse(self.artifacts_destination, "") if self.artifacts_destination else None

    @property
    def backups_at(self) -> Path | str:
        """The backup shelf: a folder (relative paths from the repo root) or an s3:// URL."""
        if self.backup_destination is None:
            return self.state_dir / "backups"
        return self.backup_destination if is_s3_url(self.backup_destination) else from_repo_root(
            Path(self.backup_destination))

    @property
    def inference_log_dir(self) -> Path:
        return self.state_dir / "inference"


class ServingConfig(Section):
    max_batch_rows: int = Field(1000, ge=1, description="requests with more rows get a 4xx")
    workers: Annotated[int, Field(ge=1)] | Literal["cpu_count"] = Field(
        "cpu_count", description="serving worker processes; cpu_count = what the machine (or its cgroup) offers",
    )

    max_abs_value: float = Field(
        1e15, gt=0, allow_inf_nan=False,
        description="a numeric feature beyond +/- this answers 400 naming it (models that cast to float32, "
                    "as tree ensembles do, overflow near 3.4e38)",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="a larger request body answers 413; keep room for max_batch_rows rows"
    )


class AlertConfig(Section):
    """The drift alert's webhook (services/monitoring/alert.py). The URL and token are secrets: files, not values."""

    webhook_url_file: Path = Field(description="file holding the webhook URL (Slack, any JSON receiver, or GitHub)")
    kind: Literal["slack", "github"] = Field(
        "slack", description="slack: Slack-compatible text plus the fields; github: a repository_dispatch")
    token_file: Path | None = Field(None, description="file holding the bearer token (needed by kind github)")
    timeout_seconds: float = Field(10.0, gt=0)
    attempts: int = Field(4, ge=1, description="tries, with a doubling pause between them")


class MonitoringConfig(MonitoringPolicy):
    """The monitoring service's policy (services/monitoring/policy.py: every key, default and bound), plus what
    only the local run has: its drift alert. The stack's job gets the same policy from this section."""

    alert: AlertConfig | None = Field(None, description="a webhook told once per drift episode (a retrain request)")


class CanaryConfig(Section):
    """A canary release on the stack (`make deploy TARGET=stack CANARY=<percent>`, pipelines/canary.py)."""

    min_requests: int = Field(200, ge=1, description="requests the candidate must answer before it is judged")
    max_duration_s: float = Field(600.0, gt=0, description="judge after this long at the latest")
    max_error_rate_increase: float = Field(
        0.01, ge=0, le=1, description="candidate 5xx share minus the champion's, plus its 4xx beyond the champion's")
    max_p99_ratio: float = Field(2.0, gt=0, description="candidate p99 latency over the champion's")
    max_prediction_distance: float = Field(
        0.3, gt=0, le=1, description="largest Kolmogorov-Smirnov statistic between what they served: class "
                                     "probabilities, or predicted values for regression")


class PipelineConfig(Section):
    model_name: str = Field(description="registered model name; also the bento's, and its route's (/models/<name>/)")
    task: TaskName = Field(CLASSIFICATION, description="classification (binary or multiclass) or regression")
    code_paths: list[Path] = Field(
        [], description="the team's own package folders (relative to the repo root), importable by the "
                        "estimator and features import paths and logged with the model (pipelines/team_code.py)")
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    gates: GatesConfig = GatesConfig()
    fairness: FairnessConfig = FairnessConfig()
    tracking: TrackingConfig = TrackingConfig()
    platform: PlatformConfig = PlatformConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    canary: CanaryConfig = CanaryConfig()
    card: CardConfig = CardConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()

    @field_validator("model_name")
    @classmethod
    def _a_dns_label(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(f"not a DNS label (RFC 1123): lowercase letters, digits and '-', a letter or digit at "
                             f"each end, at most {DNS_LABEL_MAX_CHARS} characters; the name is also the model's "
                             "route (/models/<name>/) and part of its containers' names")
        return value

    @model_validator(mode="after")
    def _gates_and_split_fit_the_task(self) -> PipelineConfig:
        task = task_for(self.task)
        floors, losses = DEFAULT_GATES[self.task]
        gates = {"min_metrics": floors if self.gates.min_metrics is None else self.gates.min_metrics,
                 "max_regression": losses if self.gates.max_regression is None else self.gates.max_regression}
        for key, metrics in gates.items():
            if unknown := sorted(set(metrics) - set(task.metrics)):
                raise ValueError(f"gates.{key}.{unknown[0]}: not a {self.task} metric; one of {sorted(task.metrics)}")
        object.__setattr__(self, "gates", self.gates.model_copy(update=gates))
        self._check_fairness()
        split = self.data.split or task.default_split
        if split not in task.splits:
            raise ValueError(f"data.split: {split} does not fit task {self.task}; one of {list(task.splits)}")
        object.__setattr__(self, "data", self.data.model_copy(update={"split": split}))
        if self.model.estimator is None:
            default = DEFAULT_ESTIMATORS[self.task]
            object.__setattr__(self, "model", self.model.model_copy(update={"estimator": default}))
        return self

    def _check_fairness(self) -> None:
        fairness, allowed = self.fairness, limits_of_task(self.task)
        if unknown := sorted(set(fairness.limits or {}) - set(allowed)):
            raise ValueError(f"fairness.limits.{unknown[0]}: not a {self.task} fairness limit; one of {allowed}")
        if (fairness.limits or fairness.waivers) and not self.data.sensitive_features:
            raise ValueError("fairness.limits and fairness.waivers need data.sensitive_features, the columns to "
                             "compare groups by")

    @property
    def code_folders(self) -> list[Path]:
        """`code_paths` resolved against the repo root."""
        return [from_repo_root(path) for path in self.code_paths]

    @model_validator(mode="after")
    def _track_the_local_platform_by_default(self) -> PipelineConfig:
        if self.tracking.uri is None:
            # One source of truth for the local MLflow address: platform.host / mlflow_port.
            object.__setattr__(self, "tracking", self.tracking.model_copy(update={"uri": self.platform.mlflow_url}))
        return self

    def public_dump(self) -> dict[str, Any]:
        """The config as recorded with a run: JSON types, no password in the tracking URI."""
        dumped = self.model_dump(mode="json")
        dumped["tracking"]["uri"] = redact(dumped["tracking"]["uri"])
        return dumped


def _describe(error: ValidationError, raw: dict[str, Any]) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        value = raw
        for part in item["loc"]:
            value = value.get(part) if isinstance(value, dict) else None  # type: ignore[assignment]
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        lines.append(f"  {key}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate the pipeline config: `path`, else $PIPELINE_CONFIG or a model's (`config_files`)."""
    config_path = chosen_config_path(path)
    try:
        raw = yaml.safe_load(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"pipeline config not found: {config_path}") from None
    except OSError as exc:
        raise ConfigError(f"pipeline config {config_path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline config {config_path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"pipeline config {config_path} must be a mapping of keys to values")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"pipeline config {config_path} is invalid:\n{_describe(exc, raw)}") from None
