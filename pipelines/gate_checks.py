"""The gate's checks, per task: each takes what it judges and returns its `Check`s (or a `Result` with notes).

Nothing here reads the registry or fills a report; `pipelines.validate` runs the checks and assembles one.
The task (`pipelines.task`) says which way each metric is better, how a slice is scored and how the ONNX
model must agree with the scikit-learn one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import DataConfig, GatesConfig
from pipelines.digests import short
from pipelines.task import Task
from services.contract import CLASSIFICATION, REGRESSION
from services.serving.onnx_model import MISSING_CATEGORY


@dataclass(frozen=True)
class Check:
    name: str
    candidate: float | str
    passed: bool
    champion: float | str | None = None
    threshold: str = ""


@dataclass(frozen=True)
class Result:
    """What one step of the gate found: its checks, what the operator should know, and any waiver it granted."""

    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    override: str | None = None


def floor_checks(candidate: dict[str, float], gates: GatesConfig, task: Task) -> list[Check]:
    """Absolute floors (ceilings, for losses) on the candidate's metrics over the whole eval set."""
    checks = []
    for metric, bound in gates.min_metrics.items():
        if (spec := task.metrics.get(metric)) is None:
            checks.append(_unknown_metric(metric, task))
            continue
        value = candidate.get(metric)
        ok = value is not None and spec.within(value, bound)
        checks.append(Check(metric, _round(value), ok, threshold=f"{spec.comparison} {bound}"))
    return checks


def regression_checks(candidate: dict[str, float], champion: dict[str, float], gates: GatesConfig,
                      task: Task) -> list[Check]:
    """Non-regression: both models scored on the same rows, the candidate may lose at most `max_regression`."""
    checks = []
    for metric, allowed in gates.max_regression.items():
        if (spec := task.metrics.get(metric)) is None:
            checks.append(_unknown_metric(f"{metric} vs champion", task))
            continue
        value, best = candidate.get(metric), champion.get(metric)
        if best is None:
            continue
        limit = spec.worst_allowed(best, allowed)
        ok = value is not None and spec.within(value, limit)
        checks.append(Check(f"{metric} vs champion", _round(value), ok, _round(best), f"{spec.comparison} {limit:.4f}"))
    return checks


def _unknown_metric(name: str, task: Task) -> Check:
    # The configured gates name a metric of another task (today's config trained something else).
    return Check(name, f"not a {task.name} metric", False, threshold=f"one of {sorted(task.metrics)}")


def slice_checks(model: Any, frame: pd.DataFrame, data: DataConfig, gates: GatesConfig, task: Task) -> list[Check]:
    """The task's slice score per value of each categorical feature must stay near the score of all rows
    (accuracy for classification, mean absolute error for regression)."""
    predicted = np.asarray(model.predict(frame[data.features]))
    truth = frame[data.target].to_numpy()
    floor = task.slice_floor(task.slice_score(predicted, truth), gates.max_slice_drop, gates.max_slice_error_ratio)
    spec, checks = task.slice_metric, []
    for column in data.categorical_features:
        values = frame[column].astype(object).fillna(MISSING_CATEGORY).to_numpy()
        for value, rows in pd.Series(values).groupby(values).indices.items():
            if len(rows) < gates.min_slice_rows:
                continue
            score = task.slice_score(predicted[rows], truth[rows])
            checks.append(Check(f"{spec.name}[{column}={value}] (n={len(rows)})", round(score, 4),
                                spec.within(score, floor), threshold=f"{spec.comparison} {floor:.4f}"))
    return checks


def behaviour_checks(model: Any, frame: pd.DataFrame, data: DataConfig, task: Task) -> list[Check]:
    """Determinism, invariance to row order, and the shape and domain of what the model returns."""
    features = frame[data.features]
    first, second = np.asarray(model.predict(features)), np.asarray(model.predict(features))
    order = np.random.default_rng(data.seed).permutation(len(features))
    shuffled = np.asarray(model.predict(features.iloc[order]))
    realigned = np.empty_like(shuffled)
    realigned[order] = shuffled
    repeatable, invariant = _same(first, second), _same(first, realigned)
    return [
        Check("deterministic predictions", "yes" if repeatable else "no", repeatable, threshold="identical on repeat"),
        Check("row-order invariance", "yes" if invariant else "no", invariant, threshold="identical when shuffled"),
        *OUTPUT_CHECKS[task.name](model, features, first),
    ]


def _same(first: np.ndarray, second: np.ndarray) -> bool:
    # A NaN answer repeated is the same answer (the output checks fail it); labels cannot hold NaN.
    return bool(np.array_equal(first, second, equal_nan=first.dtype.kind in "fc"))


def _class_outputs(model: Any, features: pd.DataFrame, predicted: np.ndarray) -> list[Check]:
    known = set(model.classes_)
    checks = [Check("prediction labels", f"{len(predicted)} rows",
                    predicted.shape == (len(features),) and set(predicted) <= known,
                    threshold="one known class per row")]
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(features))
        ok = proba.shape == (len(features), len(known)) and bool(np.allclose(proba.sum(axis=1), 1.0))
        checks.append(Check("probabilities", f"shape {proba.shape}", ok, threshold="rows sum to 1"))
    return checks


def _number_outputs(model: Any, features: pd.DataFrame, predicted: np.ndarray) -> list[Check]:
    numeric = predicted.dtype.kind in "iuf"
    finite = int(np.isfinite(predicted).sum()) if numeric else 0
    ok = predicted.shape == (len(features),) and finite == len(features)
    found = f"{finite} of {len(features)} finite" if numeric else f"dtype {predicted.dtype}"
    return [Check("predictions", f"{found}, shape {predicted.shape}", ok, threshold="one finite number per row")]


# What a served answer must look like, per task.
OUTPUT_CHECKS: dict[str, Callable[[Any, pd.DataFrame, np.ndarray], list[Check]]] = {
    CLASSIFICATION: _class_outputs, REGRESSION: _number_outputs}


def parity_checks(sklearn_model: Any, onnx_model: Any, frame: pd.DataFrame, data: DataConfig, gates: GatesConfig,
                  task: Task) -> list[Check]:
    """The ONNX model against the scikit-learn model it was converted from, on every row of the eval set."""
    found = task.parity(sklearn_model, onnx_model, frame[data.features],
                        probability_gap=gates.onnx_max_probability_gap, absolute_gap=gates.onnx_max_absolute_gap,
                        relative_gap=gates.onnx_max_relative_gap)
    return [Check(check.name, check.found, check.passed, threshold=check.threshold) for check in found]


def code_check(recorded: str, reviewed: str) -> Check:
    """The digest of the team code the candidate was logged with (its tag) against this checkout's code (the
    reviewed code); "" is no code. Never waived: the tag lives in the registry it would protect."""
    return Check("team code = this checkout's", short(recorded) or "none", recorded == reviewed,
                 threshold=f"sha256 {short(reviewed)}" if reviewed else "no team code")


def incomparable_check(champion_version: str, reason: str, *, allowed: bool) -> Check:
    """The comparison with the champion could not be made: a failed check unless an operator waived it."""
    return Check(f"comparable with champion v{champion_version}", f"no: {reason}", allowed,
                 threshold="waived by --allow-incomparable" if allowed else "required (--allow-incomparable waives)")


def incomparable(champion_version: str, reason: str, *, allowed: bool) -> Result:
    """The comparison's result when it cannot be made, with the waiver an operator granted, if any."""
    return Result([incomparable_check(champion_version, reason, allowed=allowed)],
                  override=f"champion v{champion_version} not compared: {reason}" if allowed else None)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
