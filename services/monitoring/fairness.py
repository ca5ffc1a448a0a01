"""Fairness on live traffic (post-deployment bias drift): the gate's group figures (services/fairness.py) on the
window's sampled rows that have feedback with a label and the row's sensitive values (feedback.py `groups`),
judged by the limits the version was gated with (its recorded config: `data.sensitive_features`, `fairness:`).

A value, like judge.py's: `live_fairness` writes nothing. None when the version names no sensitive column or
fewer than `min_labeled_rows` sampled rows have feedback. A limit the version's config waived stays waived here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from services.fairness import GroupFindings, LimitFinding, group_findings, group_values
from services.monitoring.feedback import Feedback
from services.monitoring.tasks import PREDICTION, MonitoredTask


@dataclass(frozen=True)
class FairnessSettings:
    """What the version was gated with, read from its recorded pipeline config (reference.py)."""

    sensitive_features: list[str]
    limits: dict[str, float] | None = None
    min_group_rows: int = 30
    positive_label: Any = None
    waivers: dict[str, str] | None = None

    @classmethod
    def from_recorded(cls, recorded: Mapping[str, Any]) -> FairnessSettings | None:
        """From the run's recorded config; None when it names no sensitive column (or is unreadable)."""
        try:
            columns = [str(column) for column in recorded.get("data", {}).get("sensitive_features") or []]
            section = recorded.get("fairness") or {}
            settings = cls(columns, section.get("limits"), int(section.get("min_group_rows", 30)),
                           section.get("positive_label"), dict(section.get("waivers") or {}))
        except (AttributeError, TypeError, ValueError):
            return None
        return settings if columns else None


@dataclass(frozen=True)
class LiveFairness:
    rows: int  # sampled rows with a label, the figures' rows
    findings: GroupFindings

    @property
    def breaches(self) -> list[LimitFinding]:
        return [finding for finding in self.findings.limits if not finding.passed]

    @property
    def within_limits(self) -> bool | None:
        """None when no limit could be judged (fewer than two groups with enough rows): no verdict either way."""
        return not self.breaches if self.findings.limits else None


def live_fairness(keys: pd.DataFrame, feedback: Mapping[tuple[str, int], Feedback], settings: FairnessSettings | None,
                  task: MonitoredTask, *, min_labeled_rows: int) -> LiveFairness | None:
    """The group figures of the sampled rows (`keys`: request_id, row, prediction) that have feedback."""
    if settings is None:
        return None
    found = [feedback.get((request_id, row)) for request_id, row in zip(keys["request_id"], keys["row"], strict=True)]
    rows = pd.DataFrame({"truth": task.values(pd.Series([f.label if f else None for f in found], dtype=object)),
                         PREDICTION: task.values(keys[PREDICTION]), "feedback": found}).dropna()
    if len(rows) < min_labeled_rows:
        return None
    sensitive = {column: group_values([f.groups.get(column) for f in rows["feedback"]])
                 for column in settings.sensitive_features}
    findings = group_findings(rows["truth"].to_numpy(), rows[PREDICTION].to_numpy(), sensitive, task=task.name,
                              classes=None, positive_label=settings.positive_label, limits=settings.limits,
                              min_group_rows=settings.min_group_rows)
    return LiveFairness(len(rows), _waived(findings, settings.waivers or {}))


def _waived(findings: GroupFindings, waivers: Mapping[str, str]) -> GroupFindings:
    limits = [LimitFinding(f.name, f.value, True, f"{f.threshold} (waived: {waivers[f.name]})")
              if not f.passed and waivers.get(f.name) else f for f in findings.limits]
    return GroupFindings(findings.groups, limits, findings.notes)


def fairness_summary(fairness: LiveFairness | None) -> str:
    """The report line's part: within the version's limits, or which limits live traffic breaks."""
    if fairness is None:
        return ""
    if fairness.within_limits is None:
        return f"; live fairness not judged ({'; '.join(fairness.findings.notes)})"
    if fairness.within_limits:
        return f"; live fairness within the gate's limits ({len(fairness.findings.limits)} checks on " \
               f"{fairness.rows} labeled rows)"
    broken = ", ".join(f"{f.name} {f.value} (limit {f.threshold})" for f in fairness.breaches)
    return f"; live fairness OVER the gate's limits on {fairness.rows} labeled rows: {broken}"


def fairness_metrics(fairness: LiveFairness | None) -> dict[str, float]:
    """The figures as MLflow metrics (`fairness/<limit>[<column>]`), numbers only."""
    if fairness is None:
        return {}
    return {f"fairness/{f.name}": float(f.value) for f in fairness.findings.limits
            if isinstance(f.value, int | float | np.number)}
