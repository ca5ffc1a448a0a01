"""The release gate: `@challenger` against absolute floors and against `@champion` on one frozen eval set.

Beyond headline metrics the gate checks slices of every categorical feature, determinism, row-order
invariance and the prediction schema. A failing gate moves nothing; the caller exits non-zero.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig, GatesConfig, PipelineConfig
from pipelines.data import load_snapshot
from pipelines.onnx_export import CONVERTED, ONNX_RUN_TAG
from pipelines.registry import (
    CHAMPION,
    FAILED,
    ONNX_SHA256_TAG,
    PASSED,
    VALIDATION_OVERRIDE_TAG,
    VALIDATION_TAG,
    ResolvedVersion,
    connect,
    resolve_alias_if_set,
)
from pipelines.task import Task, task_for
from pipelines.train import evaluate, split
from services.contract import ONNX_RUNTIME, SERVING_RUNTIME_TAG, SKLEARN_RUNTIME
from services.serving.onnx_model import OnnxModel

Classifier = Pipeline | OnnxModel  # what the gate scores: the version as it would serve
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
    override: str | None = None  # why a check an operator waived was let pass; recorded on the version
    runtime: str = SKLEARN_RUNTIME  # what serves the version if it passes; every metric is of that runtime
    onnx_sha256: str | None = None  # the ONNX file that was checked, when the runtime is onnxruntime

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def floor_checks(candidate: dict[str, float], gates: GatesConfig, task: Task) -> list[Check]:
    """Absolute floors (ceilings, for losses) on the candidate's metrics over the whole eval set."""
    checks = []
    for metric, bound in gates.min_metrics.items():
        value, spec = candidate.get(metric), task.metrics[metric]
        ok = value is not None and spec.within(value, bound)
        checks.append(Check(metric, _round(value), ok, threshold=f"{spec.comparison} {bound}"))
    return checks


def regression_checks(candidate: dict[str, float], champion: dict[str, float], gates: GatesConfig,
                      task: Task) -> list[Check]:
    """Non-regression: both models scored on the same rows, the candidate may lose at most `max_regression`."""
    checks = []
    for metric, allowed in gates.max_regression.items():
        value, best = candidate.get(metric), champion.get(metric)
        if best is None:
            continue
        spec = task.metrics[metric]
        limit = spec.worst_allowed(best, allowed)
        ok = value is not None and spec.within(value, limit)
        checks.append(Check(f"{metric} vs champion", _round(value), ok, _round(best), f"{spec.comparison} {limit:.4f}"))
    return checks


def unseen_by(champion: ResolvedVersion, holdout: pd.DataFrame) -> pd.DataFrame:
    """The eval rows the champion did not train on (data changes move rows across the split)."""
    columns = [*champion.data.features, champion.data.target]
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise KeyError(f"the eval set lacks the champion's column(s) {missing}")
    champion_train, _ = split(load_snapshot(champion.run_id), champion.data, task_for(champion.trained_with.task))
    seen = set(pd.util.hash_pandas_object(champion_train[columns], index=False))
    fresh = ~pd.util.hash_pandas_object(holdout[columns], index=False).isin(seen)
    return holdout[fresh.to_numpy()]


def slice_checks(model: Classifier, frame: pd.DataFrame, data: DataConfig, gates: GatesConfig) -> list[Check]:
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


def behaviour_checks(model: Classifier, frame: pd.DataFrame, data: DataConfig) -> list[Check]:
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


def incomparable_check(champion_version: str, reason: str, *, allowed: bool) -> Check:
    """The comparison with the champion could not be made: a failed check unless an operator waived it."""
    return Check(f"comparable with champion v{champion_version}", f"no: {reason}", allowed,
                 threshold="waived by --allow-incomparable" if allowed else "required (--allow-incomparable waives)")


def validate(
    config: PipelineConfig, candidate: ResolvedVersion, *, allow_incomparable: bool = False
) -> ValidationReport:
    """Gate a candidate (normally `@challenger`); record the verdict on its version and the report in its run.

    A champion comparison that cannot be made fails the gate; `allow_incomparable` lets it pass, and the
    waiver is recorded in the report, on the version and (by deploy) in the audit run.
    """
    client = connect(config)
    champion = resolve_alias_if_set(client, candidate.name, CHAMPION)
    # The candidate is judged on its own schema and frozen eval set, whatever today's config says.
    data, holdout = candidate.data, candidate.holdout
    report = ValidationReport(model_version=candidate.version,
                              champion_version=champion.version if champion else None)
    model = _served_model(client, candidate, holdout, config.gates, report)
    task = task_for(candidate.trained_with.task)
    report.checks += floor_checks(evaluate(model, holdout, data, task), config.gates, task)
    if champion is None:
        report.notes.append("no @champion yet: first release, gated by thresholds only")
    elif champion.version != candidate.version:
        report.checks += _against_champion(config, model, champion, holdout, data, report, allow_incomparable)
    report.checks += slice_checks(model, holdout, data, config.gates)
    report.checks += behaviour_checks(model, holdout, data)
    _record(client, candidate, report)
    return report


def _against_champion(
    config: PipelineConfig, model: Classifier, champion: ResolvedVersion, holdout: pd.DataFrame, data: DataConfig,
    report: ValidationReport, allow_incomparable: bool,
) -> list[Check]:
    task = task_for(config.task)
    try:
        rows = unseen_by(champion, holdout)
        if len(rows) < config.gates.min_slice_rows:
            raise ValueError(f"only {len(rows)} eval rows the champion did not train on")
        champion_metrics = evaluate(_load(champion), rows, champion.data, task)  # as it serves
    except (KeyError, ValueError) as exc:
        reason = str(exc).strip("'\"")
        if allow_incomparable:
            report.override = f"champion v{champion.version} not compared: {reason}"
        return [incomparable_check(champion.version, reason, allowed=allow_incomparable)]
    if len(rows) < len(holdout):
        report.notes.append(
            f"compared with champion v{champion.version} on the {len(rows)} eval rows it did not train on")
    return regression_checks(evaluate(model, rows, data, task), champion_metrics, config.gates, task)


def parity_checks(sklearn_model: Pipeline, onnx_model: OnnxModel, frame: pd.DataFrame, data: DataConfig,
                  tolerance: float) -> list[Check]:
    """The ONNX model against the scikit-learn model it was converted from, on every row of the eval set."""
    features = frame[data.features]
    differing = int((onnx_model.predict(features) != sklearn_model.predict(features)).sum())
    gap = float(np.abs(onnx_model.predict_proba(features) - sklearn_model.predict_proba(features)).max())
    return [
        Check("ONNX labels = scikit-learn's", f"{differing} of {len(features)} differ", differing == 0,
              threshold="identical on every eval row"),
        Check("ONNX probabilities vs scikit-learn's", f"max gap {gap:.1e}", gap <= tolerance,
              threshold=f"<= {tolerance:.0e}"),
    ]


def _served_model(client: MlflowClient, candidate: ResolvedVersion, holdout: pd.DataFrame, gates: GatesConfig,
                  report: ValidationReport) -> Classifier:
    """The model that will serve the candidate: its ONNX model when one was logged (after the parity checks,
    which fail the gate when it disagrees), else the scikit-learn model."""
    from pipelines.bento import download_onnx, load_model

    sklearn_model = load_model(candidate)
    onnx_state = client.get_run(candidate.run_id).data.tags.get(ONNX_RUN_TAG, "not converted: trained before ONNX")
    if onnx_state != CONVERTED:
        report.notes.append(f"served by scikit-learn: the pipeline was {onnx_state}")
        return sklearn_model
    onnx_bytes = download_onnx(candidate)
    onnx_model = OnnxModel(onnx_bytes)
    report.checks += parity_checks(sklearn_model, onnx_model, holdout, candidate.data,
                                   gates.onnx_max_probability_gap)
    report.runtime, report.onnx_sha256 = ONNX_RUNTIME, hashlib.sha256(onnx_bytes).hexdigest()
    return onnx_model


def _load(model: ResolvedVersion) -> Classifier:
    """The version as it serves: the ONNX file its gate checked, or its scikit-learn model."""
    from pipelines.bento import load_model, load_onnx

    return load_onnx(model) if model.runtime == ONNX_RUNTIME else load_model(model)


def _record(client: MlflowClient, candidate: ResolvedVersion, report: ValidationReport) -> None:
    # The runtime first: a version reads "passed" only once what serves it is recorded.
    client.set_model_version_tag(candidate.name, candidate.version, SERVING_RUNTIME_TAG, report.runtime)
    if report.onnx_sha256:
        client.set_model_version_tag(candidate.name, candidate.version, ONNX_SHA256_TAG, report.onnx_sha256)
    else:
        with contextlib.suppress(MlflowException):  # no ONNX file serves it now
            client.delete_model_version_tag(candidate.name, candidate.version, ONNX_SHA256_TAG)
    client.set_model_version_tag(candidate.name, candidate.version, VALIDATION_TAG,
                                 PASSED if report.passed else FAILED)
    if report.override:
        client.set_model_version_tag(candidate.name, candidate.version, VALIDATION_OVERRIDE_TAG, report.override)
    else:
        with contextlib.suppress(MlflowException):  # an earlier gate's waiver does not carry over
            client.delete_model_version_tag(candidate.name, candidate.version, VALIDATION_OVERRIDE_TAG)
    client.log_text(candidate.run_id, json.dumps({**asdict(report), "passed": report.passed}, indent=2),
                    REPORT_ARTIFACT)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
