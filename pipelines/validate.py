"""The release gate: `@challenger` against absolute floors and against `@champion` on one frozen eval set.

The candidate is scored as it will serve (`pipelines.served_model`), by the task it was trained for. Beyond
headline metrics the gate checks slices of every categorical feature, determinism, row-order invariance and
the shape of what the model returns (`pipelines.gate_checks`). First of all the candidate's team code must be
this checkout's (the reviewed code): the digest on its version is only a registry tag, and loading the model
runs its code, so a mismatch fails the gate before anything loads. Each step returns its result and `validate`
assembles the report from them. A failing gate moves nothing; the caller exits non-zero.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.audit import AuditTrail
from pipelines.config import DataConfig, GatesConfig, PipelineConfig
from pipelines.fairness import fairness_result, fairness_vs_champion
from pipelines.gate_checks import (
    Check,
    Result,
    behaviour_checks,
    code_check,
    floor_checks,
    incomparable,
    parity_checks,
    regression_checks,
    slice_checks,
)
from pipelines.model_card import CardFacts, record_card
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
from pipelines.served_model import CandidateModels, Served, load_candidate, load_served
from pipelines.snapshots import load_snapshot
from pipelines.task import Task, task_for
from pipelines.team_code import code_sha256
from services.contract import SERVING_RUNTIME_TAG

REPORT_ARTIFACT = "validation/report.json"


@dataclass(frozen=True)
class VersionFacts:
    """What the gate shows of a version: the problem it solves, its estimator's import path, what serves it."""

    version: str
    task: str
    estimator: str
    runtime: str

    @classmethod
    def of(cls, model: ResolvedVersion, runtime: str | None = None) -> VersionFacts:
        return cls(model.version, model.task, model.estimator, runtime or model.runtime)


@dataclass
class ValidationReport:
    candidate: VersionFacts
    champion: VersionFacts | None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    override: str | None = None  # why a check an operator waived was let pass; recorded on the version
    onnx_sha256: str | None = None  # the ONNX file that was checked, when the runtime is onnxruntime
    metrics: dict[str, float] = field(default_factory=dict)  # the candidate's, as it serves, on the eval set
    fairness: list[dict] = field(default_factory=list)  # per sensitive column and group: rows and group metrics

    @property
    def model_version(self) -> str:
        return self.candidate.version

    @property
    def champion_version(self) -> str | None:
        return self.champion.version if self.champion else None

    @property
    def runtime(self) -> str:
        """What serves the version if it passes; every metric is of that runtime."""
        return self.candidate.runtime

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def validate(
    config: PipelineConfig, candidate: ResolvedVersion, *, allow_incomparable: bool = False
) -> ValidationReport:
    """Gate a candidate (normally `@challenger`); record the verdict on its version and the report in its run.

    A champion comparison that cannot be made fails the gate; `allow_incomparable` lets it pass, and the
    waiver is recorded in the report, on the version and (by deploy) in the audit run.
    """
    client = connect(config)
    code = reviewed_code(config, candidate)
    if code.passed:
        champion = resolve_alias_if_set(client, candidate.name, CHAMPION)
        models = load_candidate(client, config, candidate)
        report = gate(candidate, champion, models, config, allow_incomparable=allow_incomparable)
    else:  # loading the model imports its code: code this checkout does not hold is never run
        report = ValidationReport(candidate=VersionFacts.of(candidate), champion=None)
    report.checks.insert(0, code)
    not_run = "" if code.passed else "the gate stopped at the team-code check: the model was not loaded"
    try:  # before the verdict is recorded: a version reads passed or failed only with its card written
        record_card(client, card_facts(client, config, candidate, report, not_run))
    except Exception as exc:  # the verdict stands without a card (MLflow refused it, the source is gone)
        report.notes.append(f"the model card was not written: {str(exc).splitlines()[0][:300]}")
    _record(client, config, candidate, report)
    return report


def reviewed_code(config: PipelineConfig, candidate: ResolvedVersion) -> Check:
    """The candidate's team code (the digest on its version) against this checkout's `code_paths`."""
    return code_check(candidate.code_sha256, code_sha256(config.code_folders))


def gate(candidate: ResolvedVersion, champion: ResolvedVersion | None, models: CandidateModels,
         config: PipelineConfig, *, allow_incomparable: bool = False) -> ValidationReport:
    """Every check of the candidate, by the task it was trained for, on its own schema and frozen eval set
    (whatever today's config says); the gates and trusted types are today's `config`'s."""
    task = task_for(candidate.task)
    data, holdout, model, gates = candidate.data, candidate.holdout, models.served, config.gates
    metrics = task.evaluate_on(model, holdout, data)
    fairness = fairness_result(model, holdout, data, config.fairness, task.name)
    results = [
        runtime_result(models, holdout, data, gates, task),
        Result(floor_checks(metrics, gates, task)),
        Result(slice_checks(model, holdout, data, gates, task)),
        Result(behaviour_checks(model, holdout, data, task)),
        fairness,
    ]
    # The champion loads after the candidate's last prediction: its code may share the candidate's package
    # names, and an import the candidate's code made while predicting would then find the champion's copy.
    results.insert(2, champion_result(champion, candidate.version, model, holdout, data, config, task,
                                      allow_incomparable=allow_incomparable))
    return ValidationReport(
        candidate=VersionFacts.of(candidate, models.runtime),
        champion=VersionFacts.of(champion) if champion else None,
        checks=[check for result in results for check in result.checks],
        notes=[note for result in results for note in result.notes],
        override="; ".join(result.override for result in results if result.override) or None,
        onnx_sha256=models.onnx_sha256,
        metrics=metrics,
        fairness=fairness.groups or [],
    )


def runtime_result(models: CandidateModels, holdout: pd.DataFrame, data: DataConfig, gates: GatesConfig,
                   task: Task) -> Result:
    """The ONNX model's parity with the scikit-learn model when it serves, else why scikit-learn serves."""
    if models.onnx is None:
        return Result(notes=[f"served by scikit-learn: the pipeline was {models.not_converted}"])
    return Result(parity_checks(models.sklearn, models.onnx, holdout, data, gates, task))


def champion_result(champion: ResolvedVersion | None, candidate_version: str, model: Served, holdout: pd.DataFrame,
                    data: DataConfig, config: PipelineConfig, task: Task, *, allow_incomparable: bool) -> Result:
    """Non-regression against the champion, on the eval rows it did not train on, both as they serve (the
    champion trusting what today's `config` lists); the gates are `config`'s."""
    gates = config.gates
    if champion is None:
        return Result(notes=["no @champion yet: first release, gated by thresholds only"])
    if champion.version == candidate_version:
        return Result()
    if champion.task != task.name:
        return incomparable(champion.version, f"it was trained for {champion.task}, the candidate "
                            f"for {task.name}", allowed=allow_incomparable)
    try:
        rows = unseen_by(champion, holdout)
        if len(rows) < gates.min_slice_rows:
            raise ValueError(f"only {len(rows)} eval rows the champion did not train on")
        served_champion = load_served(config, champion)
        champion_metrics = task.evaluate_on(served_champion, rows, champion.data)
    except (KeyError, ValueError) as exc:
        return incomparable(champion.version, str(exc).strip("'\""), allowed=allow_incomparable)
    notes = [f"compared with champion v{champion.version} on the {len(rows)} eval rows it did not train on"
             ] if len(rows) < len(holdout) else []
    fairness = fairness_vs_champion(model, served_champion, champion.data, rows, data, config.fairness, task.name)
    checks = regression_checks(task.evaluate_on(model, rows, data), champion_metrics, gates, task)
    return Result([*checks, *fairness.checks], notes, fairness.override)


def unseen_by(champion: ResolvedVersion, holdout: pd.DataFrame) -> pd.DataFrame:
    """The eval rows the champion did not train on (data changes move rows across the split)."""
    columns = [*champion.data.features, champion.data.target]
    missing = [c for c in columns if c not in holdout.columns]
    if missing:
        raise KeyError(f"the eval set lacks the champion's column(s) {missing}")
    champion_train, _ = task_for(champion.task).split_snapshot(load_snapshot(champion.run_id), champion.data)
    seen = set(pd.util.hash_pandas_object(champion_train[columns], index=False))
    fresh = ~pd.util.hash_pandas_object(holdout[columns], index=False).isin(seen)
    return holdout[fresh.to_numpy()]


def card_facts(client: MlflowClient, config: PipelineConfig, candidate: ResolvedVersion,
               report: ValidationReport, not_run: str) -> CardFacts:
    run = client.get_run(candidate.run_id).data
    return CardFacts.now(version=candidate, card=config.card, passed=report.passed, runtime=report.runtime,
                         metrics=report.metrics, checks=report.checks, notes=report.notes, fairness=report.fairness,
                         holdout=None if not_run else candidate.holdout, not_run=not_run,
                         run_params=run.params, run_tags=run.tags, champion_version=report.champion_version)


def _record(client: MlflowClient, config: PipelineConfig, candidate: ResolvedVersion, report: ValidationReport) -> None:
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
    failed = {"failed_checks": "; ".join(check.name for check in report.failures)} if report.failures else {}
    override = {"gate_override": report.override} if report.override else {}
    AuditTrail.of(config, client, candidate.name).write(
        "gate", candidate.version, PASSED if report.passed else FAILED, runtime=report.runtime,
        champion_version=report.champion_version or "", **failed, **override)
