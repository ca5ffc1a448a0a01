"""What one monitoring job needs to know, read from the environment in the stack.

This package needs evidently, pandas, pyarrow, the MLflow client, the standard library and
`services.contract`: the job's container does not ship the `pipelines` package. Locally
`pipelines.monitor` builds the same settings from the pipeline config.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from services.contract import (
    ALERT_KIND_ENV,
    ALERT_TOKEN_FILE_ENV,
    ALERT_WEBHOOK_URL_FILE_ENV,
    INFERENCE_LOG_ENV,
    MONITORING_EXPERIMENT,
    ON_DRIFT_CHOICES,
    OnDrift,
)
from services.monitoring.alert import AlertConfigError, AlertSettings, load_alert

# The stack's health check reads this file's age; see README.md.
DEFAULT_HEARTBEAT_FILE = Path(tempfile.gettempdir()) / "monitoring.heartbeat"
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
    experiment: str = MONITORING_EXPERIMENT
    min_rows: int = 200
    drift_share_threshold: float = 0.3
    window_rows: int | None = None
    window_hours: float | None = None
    max_sample_rows: int = 50_000
    on_drift: OnDrift = "retrain"
    cooldown_minutes: float = 60.0
    interval_minutes: float = 5.0
    min_labeled_rows: int = 50
    max_missing_share_increase: float = 0.1
    log_retention_days: int = 30
    log_index_file: Path | None = None  # per-file read offsets kept between runs; None: read the log whole
    seed: int = 0
    alert: AlertSettings | None = None  # the drift alert's webhook (alert.py); None: no alert

    def __post_init__(self) -> None:
        problems = []
        if self.min_rows < 1:
            problems.append(f"min_rows must be >= 1 (got {self.min_rows})")
        if not 0 < self.drift_share_threshold <= 1:
            problems.append(f"drift_share_threshold must be in (0, 1] (got {self.drift_share_threshold})")
        if self.window_rows is not None and self.window_rows < 1:
            problems.append(f"window_rows must be >= 1 (got {self.window_rows})")
        if self.window_hours is not None and self.window_hours <= 0:
            problems.append(f"window_hours must be > 0 (got {self.window_hours})")
        if self.max_sample_rows < 1000:
            problems.append(f"max_sample_rows must be >= 1000 (got {self.max_sample_rows})")
        if self.on_drift not in ON_DRIFT_CHOICES:
            problems.append(f"on_drift must be one of {', '.join(ON_DRIFT_CHOICES)} (got {self.on_drift!r})")
        if self.cooldown_minutes < 0 or self.interval_minutes <= 0:
            problems.append("cooldown_minutes must be >= 0 and interval_minutes > 0")
        if not 0 < self.max_missing_share_increase <= 1:
            problems.append(
                f"max_missing_share_increase must be in (0, 1] (got {self.max_missing_share_increase})"
            )
        if self.log_retention_days < 1:
            problems.append(f"log_retention_days must be >= 1 (got {self.log_retention_days})")
        if self.alert is not None:
            problems += self.alert.problems()
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def explicit_window(self) -> bool:
        """A window set by rows or hours replaces the default 'since the last report'."""
        return self.window_rows is not None or self.window_hours is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """The stack's way in: every field from `MONITORING_*` and friends, thresholds default to the config's."""
        env = os.environ if env is None else env
        workspace = Path(_required(env, "MONITORING_WORKSPACE"))
        reports = Path(env.get("MONITORING_REPORTS_DIR", Path(tempfile.gettempdir()) / "monitoring-reports"))
        return cls(
            tracking_uri=_required(env, "MLFLOW_TRACKING_URI"),
            model_name=env.get("MODEL_NAME", "loan-default"),
            inference_log_dir=Path(_required(env, INFERENCE_LOG_ENV)),
            workspace_dir=workspace,
            reports_dir=reports,
            heartbeat_file=Path(env.get("MONITORING_HEARTBEAT_FILE", DEFAULT_HEARTBEAT_FILE)),
            experiment=env.get("MONITORING_EXPERIMENT", cls.experiment),
            min_rows=_number(env, "MONITORING_MIN_ROWS", int, cls.min_rows),
            drift_share_threshold=_number(env, "MONITORING_DRIFT_SHARE_THRESHOLD", float, cls.drift_share_threshold),
            window_rows=_number(env, "MONITORING_WINDOW_ROWS", int, None),
            window_hours=_number(env, "MONITORING_WINDOW_HOURS", float, None),
            max_sample_rows=_number(env, "MONITORING_MAX_SAMPLE_ROWS", int, cls.max_sample_rows),
            on_drift=env.get("MONITORING_ON_DRIFT", cls.on_drift),  # type: ignore[arg-type]  # checked in __post_init__
            cooldown_minutes=_number(env, "MONITORING_COOLDOWN_MINUTES", float, cls.cooldown_minutes),
            interval_minutes=_number(env, "MONITORING_INTERVAL_MINUTES", float, cls.interval_minutes),
            min_labeled_rows=_number(env, "MONITORING_MIN_LABELED_ROWS", int, cls.min_labeled_rows),
            max_missing_share_increase=_number(
                env, "MONITORING_MAX_MISSING_SHARE_INCREASE", float, cls.max_missing_share_increase
            ),
            log_retention_days=_number(env, "MONITORING_LOG_RETENTION_DAYS", int, cls.log_retention_days),
            # Next to the reports by default: a writable volume in the stack (the log itself is read only).
            log_index_file=Path(env.get("MONITORING_LOG_INDEX_FILE", reports.parent / "monitoring-log-index.json")),
            alert=_alert_from_env(env),
        )


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
