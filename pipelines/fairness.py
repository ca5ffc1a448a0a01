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
    target = _target_kind(task, model, truth, predicted)
    metrics, problem = _group_metrics(target, model, truth, predicted, fairness)
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
        between = _between(table.loc[list(judged)])
        checks += [_limit_check(name, bound, column, target, between) for name, bound in sorted(limits.items())]
    return _waived(FairnessResult(checks=checks, notes=notes, groups=groups), fairness.waivers)


def _target_kind(task: str, model: Any, truth: np.ndarray, predicted: np.ndarray) -> Target:
    """From the model's classes where it has them: an eval set may miss a class a random split left out."""
    if task == REGRESSION:
        return "regression"
    classes = getattr(model, "classes_", None)
    labels = set(classes.tolist() if classes is not None else [*truth.tolist(), *predicted.tolist()])
    return "binary" if len(labels) <= 2 else "multiclass"


def _group_metrics(target: Target, model: Any, truth: np.ndarray, predicted: np.ndarray,
                   fairness: FairnessConfig) -> tuple[dict[str, Any], str | None]:
    """The metric per name for this target, or why there are none (a positive label that is no class)."""
    from sklearn.metrics import accuracy_score, mean_absolute_error

    if target == "regression":
        return {"mean_absolute_error": mean_absolute_error}, None
    if target == "multiclass":
        return {"accuracy": accuracy_score}, None
    classes = getattr(model, "classes_", None)
    labels = sorted(set(classes.tolist() if classes is not None else [*truth.tolist(), *predicted.tolist()]), key=str)
    wanted = fairness.positive_label
    positive = labels[-1] if wanted is None else next((label for label in labels if _same_label(label, wanted)), None)
    if positive is None:
        return {}, f"fairness.positive_label {wanted!r} is not a class of the target ({labels})"

    def rate(among: Any) -> Any:
        """The share predicted positive among the rows `among` picks; NaN when it picks none (undefined)."""
        def metric(y_true: np.ndarray, y_pred: np.ndarray) -> float:
            rows = among(np.asarray(y_true) == positive)
            return float(np.mean(np.asarray(y_pred)[rows] == positive)) if rows.any() else float("nan")
        return metric

    everyone = rate(lambda is_positive: np.ones_like(is_positive, dtype=bool))
    return {"selection_rate": everyone, "accuracy": accuracy_score,
            "true_positive_rate": rate(lambda is_positive: is_positive),
            "false_positive_rate": rate(lambda is_positive: ~is_positive)}, None


def _same_label(label: Any, wanted: Any) -> bool:
    """The config's label against a class: numerically when both are numbers (1 is 1.0), else as text."""
    numbers = (int, float, np.number)
    if isinstance(label, numbers) and isinstance(wanted, numbers) and not isinstance(wanted, bool):
        return bool(label == wanted)
    return str(label) == str(wanted)


def _by_group(metrics: dict[str, Any], truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    from fairlearn.metrics import MetricFrame

    return MetricFrame(metrics=metrics, y_true=truth, y_pred=predicted, sensitive_features=groups).by_group


def _spread(values: pd.Series) -> tuple[float, float]:
    """(difference, ratio) between the groups where the figure is defined: max - min and min / max (1 when
    every group is at 0: they are equal); NaN when fewer than two groups have it."""
    defined = values.dropna()
    if len(defined) < 2:
        return float("nan"), float("nan")
    low, high = float(defined.min()), float(defined.max())
    return high - low, 1.0 if high == 0 else low / high


def _between(table: pd.DataFrame) -> dict[str, float]:
    """Every limit's figure over the judged groups' rows of the per-group table."""
    spread = {name: _spread(table[name]) for name in table.columns}
    figures = {"accuracy_difference": spread.get("accuracy", (None,))[0],
               "error_difference": spread.get("mean_absolute_error", (None,))[0],
               "error_ratio": spread.get("mean_absolute_error", (None, None))[1]}
    if "selection_rate" in spread:
        tpr, fpr = spread["true_positive_rate"], spread["false_positive_rate"]
        figures |= {
            "demographic_parity_difference": spread["selection_rate"][0],
            "demographic_parity_ratio": spread["selection_rate"][1],
            # A rate no two groups define (no positives, or no negatives) leaves the other to judge.
            "equalized_odds_difference": float(np.fmax(tpr[0], fpr[0])),
            "equalized_odds_ratio": float(np.fmin(tpr[1], fpr[1])),
        }
    return {name: float(value) for name, value in figures.items() if value is not None}


def _limit_check(name: str, bound: float, column: str, target: Target, between: dict[str, float]) -> Check:
    check_name = f"{name}[{column}]"
    defined_for, side = LIMITS[name]
    if target not in defined_for:
        return Check(check_name, f"not defined for a {target} target", False,
                     threshold=f"one of {sorted(n for n, (d, _) in LIMITS.items() if target in d)}")
    value = between[name]
    if np.isnan(value):
        return Check(check_name, "undefined: fewer than two groups have the rates it compares", False,
                     threshold=f"{'<=' if side == 'max' else '>='} {bound}")
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
