"""What one monitoring job needs to know: the model's policy (policy.py) plus the paths, URIs and secrets.

In the stack they come from the environment (`from_env`); the policy as one JSON variable, MONITORING_POLICY.
This package needs evidently, pandas, pyarrow, pydantic, the MLflow client, the standard library and
`services.contract`: the job's container does not ship the `pipelines` package. Locally
`pipelines.monitor` builds the same settings from the pipeline config.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from services.contract import (
    ALERT_KIND_ENV,
    ALERT_TOKEN_FILE_ENV,
    ALERT_WEBHOOK_URL_FILE_ENV,
    DEFAULT_MODEL_NAME,
    INFERENCE_LOG_ENV,
    MONITORED_MODEL_ENV,
    MONITORING_POLICY_ENV,
    MONITORING_REPORTS_ENV,
    MONITORING_WORKSPACE_ENV,
)
from services.monitoring.alert import AlertConfigError, AlertSettings, load_alert
from services.monitoring.policy import MonitoringPolicy, PolicyError, policy_from_json

# The stack's health check reads this file's age; see README.md.
DEFAULT_HEARTBEAT_FILE = Path(tempfile.gettempdir()) / "monitoring.heartbeat"
# The `--loop` job serves its metrics (metrics.py) on this port when set; the stack sets STACK_METRICS_PORT, which
# services/prometheus/prometheus.yml scrapes.
METRICS_PORT_ENV, STACK_METRICS_PORT = "MONITORING_METRICS_PORT", 9108
Number = TypeVar("Number", int, float)


class SettingsError(ValueError):
    """An environment variable is missing or has a value of the wrong kind."""


@dataclass(frozen=True)
class MonitorSettings:
    tracking_uri: str
    model_name: str
    inference_log_dir: Path
    workspace_dir: Path
    reports_dir: Path
    heartbeat_file: Path
    policy: MonitoringPolicy = field(default_factory=MonitoringPolicy)  # what it judges by, and how often
    log_index_file: Path | None = None  # per-file read offsets kept between runs; None: read the log whole
    seed: int = 0
    alert: AlertSettings | None = None  # the drift alert's webhook (alert.py); None: no alert
    metrics_port: int | None = None  # where `--loop` serves its metrics; None: nowhere
    # Who its audit records name: the CLI's actor when `make monitor` runs it; None: the job's MLflow user.
    audit_actor: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.alert is not None and (problems := self.alert.problems()):
            raise SettingsError("; ".join(problems))

    def overridden(self, **changes: object) -> MonitorSettings:
        """These settings with policy keys changed (None keeps one), e.g. a run's --on-drift or --window-rows."""
        if others := sorted(set(changes) - set(MonitoringPolicy.model_fields)):
            raise SettingsError(f"not monitoring policy keys: {', '.join(others)}")  # never dropped unnoticed
        try:
            return dataclasses.replace(self, policy=self.policy.overridden(**changes))
        except PolicyError as exc:
            raise SettingsError(str(exc)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """The stack's way in: paths and URIs from `MONITORING_*` and friends, the policy from MONITORING_POLICY."""
        env = os.environ if env is None else env
        workspace = Path(_required(env, MONITORING_WORKSPACE_ENV))
        reports = Path(env.get(MONITORING_REPORTS_ENV, Path(tempfile.gettempdir()) / "monitoring-reports"))
        return cls(
            tracking_uri=_required(env, "MLFLOW_TRACKING_URI"),
            model_name=env.get(MONITORED_MODEL_ENV, DEFAULT_MODEL_NAME),
            inference_log_dir=Path(_required(env, INFERENCE_LOG_ENV)),
            workspace_dir=workspace,
            reports_dir=reports,
            heartbeat_file=Path(env.get("MONITORING_HEARTBEAT_FILE", DEFAULT_HEARTBEAT_FILE)),
            policy=_policy_from_env(env),
            # Next to the reports by default: a writable volume in the stack (the log itself is read only).
            log_index_file=Path(env.get("MONITORING_LOG_INDEX_FILE", reports.parent / "monitoring-log-index.json")),
            alert=_alert_from_env(env),
            metrics_port=_port(env, METRICS_PORT_ENV),
        )


def _policy_from_env(env: Mapping[str, str]) -> MonitoringPolicy:
    """The policy the stack passed (infra/monitoring.py); without one, the policy's own defaults."""
    if moved := sorted(f"MONITORING_{key.upper()}" for key in MonitoringPolicy.model_fields
                       if f"MONITORING_{key.upper()}" in env):
        raise SettingsError(f"environment variable {moved[0]} is no longer read: every monitoring setting travels "
                            f"in {MONITORING_POLICY_ENV}, one JSON object (services/monitoring/README.md)")
    raw = env.get(MONITORING_POLICY_ENV, "").strip()
    if not raw:
        return MonitoringPolicy()
    try:
        return policy_from_json(raw)
    except PolicyError as exc:
        raise SettingsError(f"environment variable {MONITORING_POLICY_ENV}: {exc}") from None


def _alert_from_env(env: Mapping[str, str]) -> AlertSettings | None:
    """The webhook comes as files (secrets never sit in a container's env): MONITORING_ALERT_WEBHOOK_URL_FILE
    and, for kind github, MONITORING_ALERT_TOKEN_FILE."""
    url_file = env.get(ALERT_WEBHOOK_URL_FILE_ENV, "").strip()
    if not url_file:
        return None
    token_file = env.get(ALERT_TOKEN_FILE_ENV, "").strip()
    try:
        return load_alert(
            Path(url_file), kind=env.get(ALERT_KIND_ENV, "slack").strip(),
            token_file=Path(token_file) if token_file else None,
            timeout_s=_number(env, "MONITORING_ALERT_TIMEOUT_SECONDS", float, 10.0),
            attempts=_number(env, "MONITORING_ALERT_ATTEMPTS", int, 4),
        )
    except AlertConfigError as exc:
        raise SettingsError(f"MONITORING_ALERT_*: {exc}") from None


def _port(env: Mapping[str, str], name: str) -> int | None:
    port = _number(env, name, int, None)
    if port is not None and not 1 <= port <= 65535:
        raise SettingsError(f"environment variable {name} must be a port, 1 to 65535 (got {port})")
    return port


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _number(env: Mapping[str, str], name: str, kind: type[Number], default: Number | None) -> Number | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise SettingsError(f"environment variable {name} must be {expected} (got {raw!r})") from None
