"""The release gate: `@challenger` against absolute floors and against `@champion` on one frozen eval set.

Beyond headline metrics the gate checks slices of every categorical feature, determinism, row-order
invariance and the prediction schema. A failing gate moves nothing; the caller exits non-zero.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig, GatesConfig, PipelineConfig
from pipelines.data import HOLDOUT_ARTIFACT, load_snapshot
from pipelines.registry import CHALLENGER, CHAMPION, by_alias, connect, require_alias
from pipelines.train import evaluate

LOWER_IS_BETTER = {"log_loss"}
REPORT_ARTIFACT = "validation/report.json"


@dataclass(frozen=True)
class Check:
    name: str
    candidate: float | str
    passed: bool
    champion: float | str | None = None
    threshold: str = ""


@dataclass
class ValidationReport:
    model_version: str
    champion_version: str | None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def metric_checks(
    candidate: dict[str, float], champion: dict[str, float] | None, gates: GatesConfig
) -> list[Check]:
    """Absolute floors (or ceilings, for losses) and non-regression against the champion."""
    checks = []
    for metric, bound in gates.min_metrics.items():
        value = candidate.get(metric)
        lower = metric in LOWER_IS_BETTER
        ok = value is not None and (value <= bound if lower else value >= bound)
        checks.append(Check(metric, _round(value), ok, _round((champion or {}).get(metric)),
                            f"{'<=' if lower else '>='} {bound}"))
    if champion is None:
        return checks
    for metric, allowed in gates.max_regression.items():
        value, best = candidate.get(metric), champion.get(metric)
        if best is None:
            continue
        lower = metric in LOWER_IS_BETTER
        limit = best + allowed if lower else best - allowed
        ok = value is not None and (value <= limit if lower else value >= limit)
        checks.append(Check(f"{metric} vs champion", _round(value), ok, _round(best),
                            f"{'<=' if lower else '>='} {limit:.4f}"))
    return checks


def slice_checks(model: Pipeline, frame: pd.DataFrame, data: DataConfig, gates: GatesConfig) -> list[Check]:
    """Accuracy per value of each categorical feature must stay near the overall accuracy."""
    predicted = pd.Series(model.predict(frame[data.features]), index=frame.index)
    correct = predicted == frame[data.target]
    overall = float(correct.mean())
    floor = overall - gates.max_slice_drop
    checks = []
    for column in data.categorical_features:
        for value, hits in correct.groupby(frame[column].fillna("missing")):
            if len(hits) < gates.min_slice_rows:
                continue
            accuracy = float(hits.mean())
            checks.append(Check(f"accuracy[{column}={value}] (n={len(hits)})", round(accuracy, 4),
                                accuracy >= floor, threshold=f">= {floor:.4f}"))
    return checks


def behaviour_checks(model: Pipeline, frame: pd.DataFrame, data: DataConfig) -> list[Check]:
    """Determinism, invariance to row order, and the shape and domain of what the model returns."""
    features = frame[data.features]
    first, second = model.predict(features), model.predict(features)
    order = np.random.default_rng(data.seed).permutation(len(features))
    shuffled = model.predict(features.iloc[order])
    realigned = np.empty_like(shuffled)
    realigned[order] = shuffled
    known = set(model.classes_)
    checks = [
        Check("deterministic predictions", "yes" if np.array_equal(first, second) else "no",
              bool(np.array_equal(first, second)), threshold="identical on repeat"),
        Check("row-order invariance", "yes" if np.array_equal(first, realigned) else "no",
              bool(np.array_equal(first, realigned)), threshold="identical when shuffled"),
        Check("prediction labels", f"{len(first)} rows", len(first) == len(features) and set(first) <= known,
              threshold="one known class per row"),
    ]
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(features)
        ok = proba.shape == (len(features), len(known)) and bool(np.allclose(proba.sum(axis=1), 1.0))
        checks.append(Check("probabilities", f"shape {proba.shape}", ok, threshold="rows sum to 1"))
    return checks


def validate(config: PipelineConfig) -> ValidationReport:
    """Gate `@challenger`; record the verdict on the model version and the report in its run."""
    client = connect(config)
    challenger = require_alias(client, config.model_name, CHALLENGER)
    champion = by_alias(client, config.model_name, CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        holdout = load_snapshot(challenger.run_id, Path(tmp), HOLDOUT_ARTIFACT)
    model = _load(config, challenger.version)
    report = ValidationReport(model_version=challenger.version,
                              champion_version=champion.version if champion else None)
    champion_metrics = None
    if champion is not None and champion.version != challenger.version:
        try:
            champion_metrics = evaluate(_load(config, champion.version), holdout, config.data)
        except (KeyError, ValueError) as exc:
            report.notes.append(f"champion v{champion.version} cannot score this eval set ({exc}); "
                                "gated by thresholds only")
    elif champion is None:
        report.notes.append("no @champion yet: first release, gated by thresholds only")
    report.checks += metric_checks(evaluate(model, holdout, config.data), champion_metrics, config.gates)
    report.checks += slice_checks(model, holdout, config.data, config.gates)
    report.checks += behaviour_checks(model, holdout, config.data)
    _record(client, config, challenger.run_id, report)
    return report


def _load(config: PipelineConfig, version: str) -> Pipeline:
    return mlflow.sklearn.load_model(f"models:/{config.model_name}/{version}")


def _record(client: MlflowClient, config: PipelineConfig, run_id: str, report: ValidationReport) -> None:
    client.set_model_version_tag(config.model_name, report.model_version, "validation",
                                 "passed" if report.passed else "failed")
    client.log_text(run_id, json.dumps({**asdict(report), "passed": report.passed}, indent=2), REPORT_ARTIFACT)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
