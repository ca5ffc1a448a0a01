"""What one model's monitoring judges by: every threshold, window and action, with its default, bounds and meaning.

The one place these live. The pipeline config's `monitoring:` section is this model (pipelines/config.py
subclasses it to add the local drift alert); the Pulumi program validates the same section of the served model's
pipeline config with it and hands it to the job as one JSON env var (`MONITORING_POLICY_ENV`), which
`MonitorSettings.from_env` reads back through it. Unknown keys and bad values are refused naming the key
(`monitoring.drift_share_threshold: ...`). Pydantic only (it is in the monitoring image), never `pipelines`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.contract import MONITORING_EXPERIMENT, OnDrift

SECTION = "monitoring"  # the pipeline config's key for this model, and the prefix of every error
# Keys the pipeline config's section has beyond the policy (pipelines/config.py): the local run's drift alert. The
# stack's alert comes from its own secrets (driftAlert*), so the stack leaves these out of the job's policy.
LOCAL_ONLY_KEYS = frozenset({"alert"})
MAX_INTERVAL_MINUTES = 24 * 60


class PolicyError(ValueError):
    """A monitoring policy with an unknown key or a bad value; the message names each key."""


class MonitoringPolicy(BaseModel):
    # A typo in a key fails loudly; a default passes the same checks; Infinity and NaN have no JSON of their own.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    experiment: str = Field(MONITORING_EXPERIMENT, min_length=1,
                            description="MLflow experiment the reports and retrain requests are recorded in")
    min_rows: int = Field(200, ge=1, description="fewer logged rows in the window -> NOT ENOUGH DATA")
    drift_share_threshold: float = Field(
        0.3, gt=0.0, le=1.0, description="share of drifted feature columns that makes the verdict DRIFT")
    window_rows: int | None = Field(None, ge=1, description="judge only the newest N rows; default: since the last "
                                                            "report")
    window_hours: float | None = Field(None, gt=0, description="judge only rows of the last N hours")
    max_sample_rows: int = Field(
        50_000, ge=1000, description="rows per side given to Evidently; larger windows are sampled")
    on_drift: OnDrift = Field("retrain", description="retrain: a DRIFT verdict opens a retrain request; none: "
                                                     "report only")
    cooldown_minutes: float = Field(60.0, ge=0, description="one drift episode triggers one retrain request")
    interval_minutes: float = Field(
        5.0, gt=0, le=MAX_INTERVAL_MINUTES, description="how often the stack's monitoring job runs (at most a day)")
    min_labeled_rows: int = Field(
        50, ge=1, description="sampled rows with feedback labels needed for a quality report")
    max_missing_share_increase: float = Field(
        0.1, gt=0.0, le=1.0,
        description="a feature whose share of missing values rises by more than this vs the reference counts as "
                    "drifted (one with no value in the window always does)")
    log_retention_days: int = Field(
        30, ge=1, description="inference log files of days older than this are not read (never deleted)")

    @property
    def explicit_window(self) -> bool:
        """A window set by rows or hours replaces the default 'since the last report'."""
        return self.window_rows is not None or self.window_hours is not None

    def to_json(self) -> str:
        """The policy alone (a subclass's own keys left out), as the job's env carries it."""
        return self.model_dump_json(include=set(MonitoringPolicy.model_fields))

    def policy_fields(self) -> dict[str, Any]:
        return self.model_dump(include=set(MonitoringPolicy.model_fields))

    def overridden(self, **changes: object) -> MonitoringPolicy:
        """This policy with `changes` (None leaves a key as it is), checked again."""
        given = {key: value for key, value in changes.items() if value is not None}
        return checked_policy({**self.policy_fields(), **given})


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join([SECTION, *(str(part) for part in item["loc"])])
        value = item.get("input")
        shown = f" (got {value!r})" if item["type"] != "extra_forbidden" and not isinstance(value, dict) else ""
        message = (f"unknown key; the settings are {', '.join(MonitoringPolicy.model_fields)}"
                   if item["type"] == "extra_forbidden" else item["msg"])
        problems.append(f"{key}: {message}{shown}")
    return "; ".join(problems)


def checked_policy(section: Mapping[str, Any]) -> MonitoringPolicy:
    """The policy of a `monitoring:` section without its local-only keys; PolicyError names every bad key."""
    try:
        return MonitoringPolicy.model_validate({k: v for k, v in section.items() if k not in LOCAL_ONLY_KEYS})
    except ValidationError as exc:
        raise PolicyError(_describe(exc)) from None


def policy_from_json(text: str) -> MonitoringPolicy:
    """The policy the stack passed as JSON; PolicyError says what is wrong, naming the key."""
    try:
        return MonitoringPolicy.model_validate_json(text)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise PolicyError("not a JSON object of monitoring settings") from None
        raise PolicyError(_describe(exc)) from None
