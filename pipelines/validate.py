"""The release gate: `@challenger` against absolute floors and against `@champion` on one frozen eval set.

Beyond headline metrics the gate checks slices of every categorical feature, determinism, row-order
invariance and the prediction schema. A failing gate moves nothing; the caller exits non-zero.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig, GatesConfig, PipelineConfig
from pipelines.data import HOLDOUT_ARTIFACT, load_snapshot
from pipelines.registry import CHALLENGER, CHAMPION, by_alias, connect, require_alias
from pipelines.train import evaluate, recorded_config, split

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


def floor_checks(candidate: dict[str, float], gates: GatesConfig) -> list[Check]:
    """Absolute floors (ceilings, for losses) on the candidate's metrics over the whole eval set."""
    checks = []
    for metric, bound in gates.min_metrics.items():
        value = candidate.get(metric)
        lower = metric in LOWER_IS_BETTER
        ok = value is not None and (value <= bound if lower else value >= bound)
        checks.append(Check(metric, _round(value), ok, threshold=f"{'<=' if lower else '>='} {bound}"))
    return checks


def regression_checks(candidate: dict[str, float], champion: dict[str, float], gates: GatesConfig) -> list[Check]:
    """Non-regression: both models scored on the same rows, the candidate may lose at most `max_regression`."""
    checks = []
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


def unseen_by(champion_run_id: str, holdout: pd.DataFrame) -> tuple[pd.DataFrame, DataConfig]:
    """The eval rows the champion did not train on (data changes move rows across the split), and its schema."""
    trained_with = recorded_config(champion_run_id).data
    columns = [*trained_with.features, trained_with.target]
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise KeyError(f"the eval set lacks the champion's column(s) {missing}")
    champion_train, _ = split(load_snapshot(champion_run_id), trained_with)
    seen = set(pd.util.hash_pandas_object(champion_train[columns], index=False))
    fresh = ~pd.util.hash_pandas_object(holdout[columns], index=False).isin(seen)
    return holdout[fresh.to_numpy()], trained_with


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
    data = recorded_config(challenger.run_id).data  # the schema the candidate was trained with
    holdout = load_snapshot(challenger.run_id, HOLDOUT_ARTIFACT)
    model = _load(config, challenger.version)
    report = ValidationReport(model_version=challenger.version,
                              champion_version=champion.version if champion else None)
    report.checks += floor_checks(evaluate(model, holdout, data), config.gates)
    if champion is None:
        report.notes.append("no @champion yet: first release, gated by thresholds only")
    elif champion.version != challenger.version:
        report.checks += _against_champion(config, model, champion, holdout, data, report.notes)
    report.checks += slice_checks(model, holdout, data, config.gates)
    report.checks += behaviour_checks(model, holdout, data)
    _record(client, config, challenger.run_id, report)
    return report


def _against_champion(
    config: PipelineConfig, model: Pipeline, champion: ModelVersion, holdout: pd.DataFrame, data: DataConfig,
    notes: list[str],
) -> list[Check]:
    try:
        rows, champion_data = unseen_by(champion.run_id, holdout)
        if len(rows) < config.gates.min_slice_rows:
            raise ValueError(f"only {len(rows)} eval rows the champion did not train on")
        champion_metrics = evaluate(_load(config, champion.version), rows, champion_data)
    except (KeyError, ValueError) as exc:
        notes.append(f"champion v{champion.version} cannot be compared ({exc}); gated by thresholds only")
        return []
    if len(rows) < len(holdout):
        notes.append(f"compared with champion v{champion.version} on the {len(rows)} eval rows it did not train on")
    return regression_checks(evaluate(model, rows, data), champion_metrics, config.gates)


def _load(config: PipelineConfig, version: str) -> Pipeline:
    return mlflow.sklearn.load_model(f"models:/{config.model_name}/{version}")


def _record(client: MlflowClient, config: PipelineConfig, run_id: str, report: ValidationReport) -> None:
    client.set_model_version_tag(config.model_name, report.model_version, "validation",
                                 "passed" if report.passed else "failed")
    client.log_text(run_id, json.dumps({**asdict(report), "passed": report.passed}, indent=2), REPORT_ARTIFACT)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
