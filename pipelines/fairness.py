"""Fairness at the gate: the group figures of services/fairness.py on the frozen eval set, per value of each
sensitive column, as gate checks: each limit of the config, and each figure against the champion's on the rows
it did not train on (no worse by more than `fairness.max_worsening`). A failing check passes only when the
config's `fairness.waivers` names it, and the waiver is recorded on the version like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.gate_checks import Check, Result
from services.fairness import GroupFindings, group_findings, group_values
from services.fairness_limits import LIMITS

VERSUS_CHAMPION = " vs champion"  # how a check against the champion's figure is named: `<limit>[<column>] vs champion`

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
    found = _findings(model, frame, data, fairness, task)
    checks = [Check(finding.name, finding.value, finding.passed, threshold=finding.threshold)
              for finding in found.limits]
    limit_waivers = {name: why for name, why in fairness.waivers.items() if not name.endswith(VERSUS_CHAMPION)}
    return _waived(FairnessResult(checks=checks, notes=found.notes, groups=found.groups), limit_waivers)


def fairness_vs_champion(model: Any, champion: Any, champion_data: DataConfig, rows: pd.DataFrame, data: DataConfig,
                         fairness: FairnessConfig, task: str) -> FairnessResult:
    """Each limit's figure of the candidate against the champion's, both on `rows` (the eval rows the champion did
    not train on): a `*_difference` may grow, a `*_ratio` shrink, by at most `fairness.max_worsening`."""
    if not data.sensitive_features:
        return FairnessResult()
    ours = _findings(model, rows, data, fairness, task).limits
    # The champion predicts from its own features, grouped by the candidate's sensitive columns.
    champion_found = _findings(champion, rows, champion_data, fairness, task, sensitive=data.sensitive_features)
    theirs = {finding.name: finding.value for finding in champion_found.limits}
    checks = []
    for finding in ours:
        best = theirs.get(finding.name)
        if not isinstance(finding.value, float | int) or not isinstance(best, float | int):
            continue  # a figure either side lacks is judged (and shown) by the limit check alone
        larger_is_worse = LIMITS[finding.name.split("[")[0]][1] == "max"
        allowed = best + fairness.max_worsening if larger_is_worse else best - fairness.max_worsening
        passed = finding.value <= allowed if larger_is_worse else finding.value >= allowed
        checks.append(Check(f"{finding.name}{VERSUS_CHAMPION}", finding.value, bool(passed), best,
                            f"{'<=' if larger_is_worse else '>='} {allowed:.4f}"))
    return _waived(FairnessResult(checks=checks),
                   {name: why for name, why in fairness.waivers.items() if name.endswith(VERSUS_CHAMPION)})


def _findings(model: Any, frame: pd.DataFrame, data: DataConfig, fairness: FairnessConfig, task: str,
              sensitive: list[str] | None = None) -> GroupFindings:
    classes = getattr(model, "classes_", None)
    return group_findings(
        frame[data.target].to_numpy(), np.asarray(model.predict(frame[data.features])),
        {column: group_values(frame[column]) for column in sensitive or data.sensitive_features}, task=task,
        classes=classes.tolist() if classes is not None else None, positive_label=fairness.positive_label,
        limits=fairness.limits, min_group_rows=fairness.min_group_rows)


def _waived(result: FairnessResult, waivers: dict[str, str]) -> FairnessResult:
    """A failing check the config waives passes, with the reason; the reasons become the gate's override.
    `waivers`: those of this kind of check (limits, or vs the champion), so the other kind's are no unused note."""
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
