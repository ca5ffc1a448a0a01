"""Fairness at the gate: fairlearn's `MetricFrame` on the frozen eval set, per value of each sensitive column.

Per group: selection rate, accuracy, true and false positive rates (binary targets), accuracy (more classes)
or mean absolute error (regression). Across groups: fairlearn's between-groups difference and ratio of those,
judged against the config's `fairness.limits` (a `*_difference` at most, a `*_ratio` at least). Groups with
fewer than `fairness.min_group_rows` eval rows are shown, not judged. A failing check passes only when the
config's `fairness.waivers` names it, and the waiver is recorded on the version like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.fairness_limits import DEFAULT_LIMITS, LIMITS, Target
from pipelines.gate_checks import Check, Result
from services.contract import REGRESSION
from services.serving.onnx_model import MISSING_CATEGORY

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
    predicted = np.asarray(model.predict(frame[data.features]))
    truth = frame[data.target].to_numpy()
    target = _target_kind(task, truth)
    metrics, problem = _group_metrics(target, truth, fairness)
    limits = fairness.limits if fairness.limits is not None else DEFAULT_LIMITS[target]
    checks, groups, notes = [], [], []
    for column in data.sensitive_features:
        values = frame[column].astype(object).fillna(MISSING_CATEGORY).astype(str).to_numpy()
        sizes = pd.Series(values).value_counts()
        judged = sizes[sizes >= fairness.min_group_rows].index
        table = _by_group(metrics, truth, predicted, values) if problem is None else pd.DataFrame()
        groups += [{"column": column, "group": group, "rows": int(sizes[group]), "judged": group in judged,
                    **({name: round(float(value), 4) for name, value in table.loc[group].items()}
                       if group in table.index else {})}
                   for group in sorted(sizes.index)]
        if problem is not None:
            checks.append(Check(f"fairness[{column}]", problem, False, threshold="a label to count selections"))
            continue
        if len(judged) < 2:
            notes.append(f"fairness[{column}]: fewer than two groups of >= {fairness.min_group_rows} eval rows; "
                         "not judged")
            continue
        keep = np.isin(values, judged)
        between = _between(metrics, truth[keep], predicted[keep], values[keep])
        checks += [_limit_check(name, bound, column, target, between) for name, bound in sorted(limits.items())]
    return _waived(FairnessResult(checks=checks, notes=notes, groups=groups), fairness.waivers)


def _target_kind(task: str, truth: np.ndarray) -> Target:
    if task == REGRESSION:
        return "regression"
    return "binary" if len(np.unique(truth)) <= 2 else "multiclass"


def _group_metrics(target: Target, truth: np.ndarray, fairness: FairnessConfig) -> tuple[dict[str, Any], str | None]:
    """fairlearn's metric per name for this target, or why there are none (a positive label that is no class)."""
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, mean_absolute_error

    if target == "regression":
        return {"mean_absolute_error": mean_absolute_error}, None
    if target == "multiclass":
        return {"accuracy": accuracy_score}, None
    labels = sorted(np.unique(truth).tolist())
    wanted = fairness.positive_label
    positive = labels[-1] if wanted is None else next((label for label in labels if str(label) == str(wanted)), None)
    if positive is None:
        return {}, f"fairness.positive_label {wanted!r} is not a class of the target ({labels})"

    def with_positive(metric: Any) -> Any:
        return lambda y_true, y_pred: metric(y_true, y_pred, pos_label=positive)

    return {"selection_rate": with_positive(selection_rate), "accuracy": accuracy_score,
            "true_positive_rate": with_positive(true_positive_rate),
            "false_positive_rate": with_positive(false_positive_rate)}, None


def _frame(metrics: dict[str, Any], truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> Any:
    from fairlearn.metrics import MetricFrame

    return MetricFrame(metrics=metrics, y_true=truth, y_pred=predicted, sensitive_features=groups)


def _by_group(metrics: dict[str, Any], truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    return _frame(metrics, truth, predicted, groups).by_group


def _between(metrics: dict[str, Any], truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Every limit's figure over the judged groups: fairlearn's between-groups difference and ratio."""
    frame = _frame(metrics, truth, predicted, groups)
    difference, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
    figures = {"accuracy_difference": difference.get("accuracy"),
               "error_difference": difference.get("mean_absolute_error"),
               "error_ratio": ratio.get("mean_absolute_error")}
    if "selection_rate" in difference:
        figures |= {
            "demographic_parity_difference": difference["selection_rate"],
            "demographic_parity_ratio": ratio["selection_rate"],
            "equalized_odds_difference": max(difference["true_positive_rate"], difference["false_positive_rate"]),
            "equalized_odds_ratio": min(ratio["true_positive_rate"], ratio["false_positive_rate"]),
        }
    return {name: float(value) for name, value in figures.items() if value is not None}


def _limit_check(name: str, bound: float, column: str, target: Target, between: dict[str, float]) -> Check:
    check_name = f"{name}[{column}]"
    defined_for, side = LIMITS[name]
    if target not in defined_for:
        return Check(check_name, f"not defined for a {target} target", False,
                     threshold=f"one of {sorted(n for n, (d, _) in LIMITS.items() if target in d)}")
    value = between[name]
    passed = value <= bound if side == "max" else value >= bound
    return Check(check_name, round(value, 4), bool(passed), threshold=f"{'<=' if side == 'max' else '>='} {bound}")


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
