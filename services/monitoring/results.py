"""What one monitoring run returns: a result per model version, and the run's (from the deciding version)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from services.monitoring.drift import Verdict


@dataclass(frozen=True)
class VersionResult:
    model_version: str
    verdict: Verdict
    summary: str
    rows: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    report_path: Path | None = None
    mlflow_run_id: str | None = None
    drifted_columns: list[str] = field(default_factory=list)
    fairness_within_limits: bool | None = None  # None: live fairness not judged (no sensitive column, few labels)


@dataclass(frozen=True)
class MonitorResult:
    """The outcome of one run; `verdict`, `summary` and the report come from the deciding model version."""

    verdict: Verdict
    summary: str
    report_path: Path | None
    mlflow_run_id: str | None
    mlflow_run_url: str | None
    retrain_requested: bool
    versions: list[VersionResult]
    workspace_dir: Path
    audit_failure: str = ""  # why the retrain request's audit record could not be written ("" written, or none)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code
