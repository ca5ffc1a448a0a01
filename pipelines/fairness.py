"""Fairness at the gate: the group figures of services/fairness.py on the frozen eval set, per value of each
sensitive column, as gate checks. A failing check passes only when the config's `fairness.waivers` names it,
and the waiver is recorded on the version like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.gate_checks import Check, Result
from services.fairness import group_findings, group_values

if TYPE_CHECKING:
    from pipelines.config_model import DataConfig, FairnessConfig


@dataclass(frozen=True)
class FairnessResult(Result):
    """The gate's fairness checks, plus the per-group table the model card shows."""

    groups: list[dict[str, Any]] | None = None  # {"column", "group", "rows", "judged", <metric>: value}


def fairness_result(model: Any, frame: pd.DataFrame, data: DataConfig, fairness: FairnessConfig,
                    task: str) -> FairnessResult:
    if not data.sensitive_features:  # the card says so; nothing to judge
        return FairnessResult()
    classes = getattr(model, "classes_", None)
    found = group_findings(
        frame[data.target].to_numpy(), np.asarray(model.predict(frame[data.features])),
        {column: group_values(frame[column]) for column in data.sensitive_features}, task=task,
        classes=classes.tolist() if classes is not None else None, positive_label=fairness.positive_label,
        limits=fairness.limits, min_group_rows=fairness.min_group_rows)
    checks = [Check(finding.name, finding.value, finding.passed, threshold=finding.threshold)
              for finding in found.limits]
    return _waived(FairnessResult(checks=checks, notes=found.notes, groups=found.groups), fairness.waivers)


def _waived(result: FairnessResult, waivers: dict[str, str]) -> FairnessResult:
    """A failing check the config waives passes, with the reason; the reasons become the gate's override."""
    checks, reasons = [], []
    for check in result.checks:
        reason = waivers.get(check.name)
        if reason and not check.passed:
            check = Check(check.name, check.candidate, True, check.champion, f"{check.threshold} (waived: {reason})")
            reasons.append(f"{check.name} waived by fairness.waivers: {reason}")
        checks.append(check)
    unused = sorted(set(waivers) - {check.name for check in result.checks})
    notes = [*result.notes, *(f"fairness.waivers names no check of this gate: {name}" for name in unused)]
    return FairnessResult(checks=checks, notes=notes, override="; ".join(reasons) or None, groups=result.groups)
