"""Group fairness of predictions against true values, per value of each sensitive column: fairlearn's
`MetricFrame`, shared by the gate (on the frozen eval set, pipelines/fairness.py) and the monitoring job (on live
traffic with feedback labels, services/monitoring/fairness.py), so both judge by the same figures.

Per group: selection rate, accuracy, true and false positive rates (binary targets), accuracy (more classes)
or mean absolute error (regression). Across groups: the difference and ratio of those, judged against the
version's `fairness.limits` (a `*_difference` at most, a `*_ratio` at least; services/fairness_limits.py).
Groups with fewer than `min_group_rows` rows are shown, not judged. numpy, pandas, scikit-learn, fairlearn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from services.contract import REGRESSION
from services.fairness_limits import DEFAULT_LIMITS, LIMITS, Target

MISSING_GROUP = "missing"  # a row whose sensitive value is missing is a group of its own


@dataclass(frozen=True)
class LimitFinding:
    """One limit on one column: its figure (or why there is none), whether it passed, and the bound."""

    name: str  # `<limit>[<column>]`
    value: float | str
    passed: bool
    threshold: str


@dataclass(frozen=True)
class GroupFindings:
    groups: list[dict[str, Any]] = field(default_factory=list)  # {"column", "group", "rows", "judged", <metric>}
    limits: list[LimitFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def group_values(values: Sequence[Any] | pd.Series) -> np.ndarray:
    """A sensitive column's values as group names (text; missing is a group of its own)."""
    return pd.Series(values, dtype=object).fillna(MISSING_GROUP).astype(str).to_numpy()


def group_findings(truth: np.ndarray, predicted: np.ndarray, sensitive: Mapping[str, np.ndarray], *, task: str,
                   classes: Sequence[Any] | None, positive_label: Any, limits: Mapping[str, float] | None,
                   min_group_rows: int) -> GroupFindings:
    """The per-group table and the limit findings of each sensitive column (`sensitive`: column -> group_values)."""
    target = target_kind(task, classes, truth, predicted)
    metrics, problem = _group_metrics(target, classes, truth, predicted, positive_label)
    bounds = limits if limits is not None else DEFAULT_LIMITS[target]
    findings = GroupFindings()
    for column, values in sensitive.items():
        sizes = pd.Series(values).value_counts()
        judged = sizes[sizes >= min_group_rows].index
        table = _by_group(metrics, truth, predicted, values) if problem is None else pd.DataFrame()
        findings.groups.extend(
            {"column": column, "group": group, "rows": int(sizes[group]), "judged": group in judged,
             **({name: round(float(value), 4) for name, value in table.loc[group].items()}
                if group in table.index else {})}
            for group in sorted(sizes.index))
        if problem is not None:
            findings.limits.append(LimitFinding(f"fairness[{column}]", problem, False, "a label to count selections"))
        elif len(judged) < 2:
            findings.notes.append(f"fairness[{column}]: fewer than two groups of >= {min_group_rows} rows; not judged")
        else:
            between = _between(table.loc[list(judged)])
            findings.limits.extend(_limit(name, bound, column, target, between)
                                   for name, bound in sorted(bounds.items()))
    return findings


def target_kind(task: str, classes: Sequence[Any] | None, truth: np.ndarray, predicted: np.ndarray) -> Target:
    """From the model's classes where known: a window or eval set may miss a class."""
    if task == REGRESSION:
        return "regression"
    return "binary" if len(_labels(classes, truth, predicted)) <= 2 else "multiclass"


def _labels(classes: Sequence[Any] | None, truth: np.ndarray, predicted: np.ndarray) -> list[Any]:
    found = list(classes) if classes is not None else [*truth.tolist(), *predicted.tolist()]
    return sorted(set(found), key=str)


def _group_metrics(target: Target, classes: Sequence[Any] | None, truth: np.ndarray, predicted: np.ndarray,
                   wanted: Any) -> tuple[dict[str, Any], str | None]:
    """The metric per name for this target, or why there are none (a positive label that is no class)."""
    from sklearn.metrics import accuracy_score, mean_absolute_error

    if target == "regression":
        return {"mean_absolute_error": mean_absolute_error}, None
    if target == "multiclass":
        return {"accuracy": accuracy_score}, None
    labels = _labels(classes, truth, predicted)
    positive = labels[-1] if wanted is None else next((label for label in labels if same_label(label, wanted)), None)
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


def same_label(label: Any, wanted: Any) -> bool:
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


def _limit(name: str, bound: float, column: str, target: Target, between: dict[str, float]) -> LimitFinding:
    finding_name = f"{name}[{column}]"
    defined_for, side = LIMITS[name]
    if target not in defined_for:
        return LimitFinding(finding_name, f"not defined for a {target} target", False,
                            f"one of {sorted(n for n, (d, _) in LIMITS.items() if target in d)}")
    value = between[name]
    threshold = f"{'<=' if side == 'max' else '>='} {bound}"
    if np.isnan(value):
        return LimitFinding(finding_name, "undefined: fewer than two groups have the rates it compares", False,
                            threshold)
    passed = value <= bound if side == "max" else value >= bound
    return LimitFinding(finding_name, round(value, 4), bool(passed), threshold)
