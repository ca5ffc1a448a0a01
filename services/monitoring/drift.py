"""Judge a window of traffic against the reference with Evidently, and turn the result into a verdict.

Evidently runs on the sampled window (see inference_log) and the sampled reference: `DataDriftPreset`
(share of drifted columns, a drift score per column) plus `DataSummaryPreset` (missing values and value
statistics against the reference), and the task's quality preset (`ClassificationPreset` or
`RegressionPreset`) on the rows that have ground-truth labels.
The numbers are read from the report's `dict()`, so what the verdict is based on is what the HTML shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset, DataSummaryPreset
from evidently.tests import gte

from services.monitoring.margins import ColumnDriftMargin, drift_margin
from services.monitoring.missing import MissingShift, missing_shares, missing_shifts
from services.monitoring.reference import FeatureSchema
from services.monitoring.tasks import PREDICTION, TARGET, MonitoredTask

SMALL_WINDOW_ROWS = 1000  # Evidently's own switch between p-value tests and distances


class Verdict(StrEnum):
    OK = "OK"
    DRIFT = "DRIFT"
    NOT_ENOUGH_DATA = "NOT ENOUGH DATA"

    @property
    def exit_code(self) -> int:
        # 1 and 2 stay free for crashes and usage errors, so a script can tell a verdict from a failure.
        return {Verdict.OK: 0, Verdict.DRIFT: 3, Verdict.NOT_ENOUGH_DATA: 4}[self]


def decide_verdict(rows: int, drift_share: float | None, *, min_rows: int, drift_share_threshold: float) -> Verdict:
    """DRIFT when at least the threshold share of feature columns drifted; too few rows are not judged."""
    if rows < min_rows or drift_share is None:
        return Verdict.NOT_ENOUGH_DATA
    return Verdict.DRIFT if drift_share >= drift_share_threshold else Verdict.OK


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    score: float
    method: str
    threshold: float
    drifted: bool

    @property
    def margin(self) -> float:
        """How far past its threshold the score is, above 0 when drifted (margins.py)."""
        return drift_margin(self.score, self.threshold, self.drifted)


@dataclass(frozen=True)
class DriftFindings:
    drift_share: float
    drifted_count: int
    columns: list[ColumnDrift]
    missing_share: dict[str, float]
    missing: list[MissingShift] = field(default_factory=list)  # features gone missing: drifted too

    @property
    def drifted(self) -> list[str]:
        """Drifted columns: features gone missing first, then value drift, the strongest first."""
        gone = [m.column for m in self.missing]
        by_margin = sorted(self.columns, key=lambda c: c.margin, reverse=True)
        return [*gone, *(c.column for c in by_margin if c.drifted and c.column not in gone)]

    @property
    def column_count(self) -> int:
        """Feature columns judged: compared by Evidently, or gone missing."""
        return len({c.column for c in self.columns} | {m.column for m in self.missing})


@dataclass(frozen=True)
class PreparedWindow:
    """Current and reference restricted to the columns that can be compared, with matching types."""

    current: pd.DataFrame
    reference: pd.DataFrame
    schema: FeatureSchema
    unknown_columns: list[str]  # logged but not a feature of this model: ignored
    absent_columns: list[str]  # a feature with no value in the window or the reference: not given to Evidently
    missing_current: dict[str, float] = field(default_factory=dict)  # every feature's missing share, window
    missing_reference: dict[str, float] = field(default_factory=dict)  # ... and reference


def prepare(current: pd.DataFrame, reference: pd.DataFrame, schema: FeatureSchema) -> PreparedWindow:
    unknown = sorted(str(column) for column in current.columns if column not in schema.columns)
    current = _typed(current.reindex(columns=schema.columns), schema)
    reference = _typed(reference, schema)
    # Typed first, so a column of unparseable values counts as having none.
    absent = [c for c in schema.columns if current[c].notna().sum() == 0 or reference[c].notna().sum() == 0]
    judged = FeatureSchema(
        numerical=[c for c in schema.numerical if c not in absent],
        categorical=[c for c in schema.categorical if c not in absent],
    )
    return PreparedWindow(
        current=current[judged.columns],
        reference=reference[judged.columns],
        schema=judged,
        unknown_columns=unknown,
        absent_columns=absent,
        missing_current=missing_shares(current),
        missing_reference=missing_shares(reference),
    )


def count_missing(findings: DriftFindings, window: PreparedWindow, *, max_increase: float) -> DriftFindings:
    """Evidently's findings plus the features gone missing (missing.py), counted in the drift share."""
    shifts = missing_shifts(window.missing_current, window.missing_reference, max_increase=max_increase)
    counted = replace(findings, missing=shifts, missing_share={**window.missing_current, **findings.missing_share})
    if not shifts:
        return counted  # Evidently's own share stands
    drifted = len(counted.drifted)
    total = counted.column_count
    return replace(counted, drifted_count=drifted, drift_share=drifted / total if total else 0.0)


def _typed(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Numbers as floats (a bad value becomes missing), categories as strings: JSON `1` and parquet `1` agree."""
    typed = {column: pd.to_numeric(frame[column], errors="coerce") for column in schema.numerical}
    for column in schema.categorical:
        values = frame[column]
        typed[column] = values.where(values.isna(), values.astype(str))
    return pd.DataFrame(typed, index=frame.index)[schema.columns]


def drift_methods(current_rows: int) -> dict[str, str]:
    """Per-column tests for a window of this size; empty means Evidently's defaults.

    Evidently picks its test by the reference's size: above 1000 rows, distances with a fixed 0.1
    threshold (normed Wasserstein, Jensen-Shannon). A distance measured on a small window is mostly noise:
    on 200 undrifted demo rows 22% of runs came out DRIFT (bench/results/monitoring.md). For small windows
    the job uses tests with a p-value instead (KS, chi-square, 0.05), whose false-alarm rate holds at any n.
    """
    if current_rows > SMALL_WINDOW_ROWS:
        return {}
    return {"num_method": "ks", "cat_method": "chisquare"}


def run_drift_report(window: PreparedWindow, *, drift_share_threshold: float, min_rows: int) -> Snapshot:
    definition = DataDefinition(
        numerical_columns=window.schema.numerical, categorical_columns=window.schema.categorical
    )
    methods = drift_methods(len(window.current))
    # One margin per column, from the ValueDrift the preset makes for it (same column and method).
    margins = [ColumnDriftMargin(column=column, method=methods.get(kind))
               for kind, columns in (("num_method", window.schema.numerical), ("cat_method", window.schema.categorical))
               for column in columns]
    report = Report(
        [
            DataDriftPreset(drift_share=drift_share_threshold, **methods),
            # The default row-count test expects the reference's size; the job's own floor is the useful test.
            DataSummaryPreset(row_count_tests=[gte(min_rows)]),
            *margins,
        ],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(window.current, data_definition=definition),
        Dataset.from_pandas(window.reference, data_definition=definition),
    )


def read_findings(result: dict[str, Any]) -> DriftFindings:
    """Drift share, per-column scores and flags, and missing values from a report's `dict()`."""
    share, count = 0.0, 0
    scores: dict[str, tuple[float, str, float]] = {}
    missing: dict[str, float] = {}
    for metric in result["metrics"]:
        config, value = metric.get("config", {}), metric.get("value")
        kind = str(config.get("type", "")).rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share, count = float(value["share"]), int(value["count"])
        elif kind == "ValueDrift":
            scores[config["column"]] = (float(value), str(config.get("method")), float(config.get("threshold")))
        elif kind == "MissingValueCount" and config.get("column"):
            missing[config["column"]] = float(value["share"])
    drifted = {
        test["metric_config"]["params"]["column"]
        for test in result["tests"]
        if test.get("id") == "drift" and str(test.get("status")).rsplit(".", 1)[-1] == "FAIL"
    }
    columns = [
        ColumnDrift(column=name, score=score, method=method, threshold=threshold, drifted=name in drifted)
        for name, (score, method, threshold) in scores.items()
    ]
    return DriftFindings(drift_share=share, drifted_count=count, columns=columns, missing_share=missing)


def prediction_drift(predictions: pd.Series, reference_target: pd.Series | None,
                     task: MonitoredTask) -> tuple[Snapshot, ColumnDrift] | None:
    """What the model answers against what it was trained to answer: the window's served predictions vs the
    reference's target, as the task's kind of column. Apart from the features: it does not move the verdict."""
    current = task.values(predictions).dropna()
    reference = task.values(reference_target).dropna() if reference_target is not None else pd.Series()
    if current.empty or reference.empty:
        return None
    kind_method = {"numerical": "num_method", "categorical": "cat_method"}[task.kind]
    metric = ValueDrift(column=PREDICTION, method=drift_methods(len(current)).get(kind_method))
    definition = task.columns(PREDICTION)
    snapshot = Report([metric], include_tests=True).run(
        Dataset.from_pandas(current.to_frame(PREDICTION), data_definition=definition),
        Dataset.from_pandas(reference.to_frame(PREDICTION), data_definition=definition),
    )
    (found,) = read_findings(snapshot.dict()).columns
    return snapshot, found


def labeled_rows(keys: pd.DataFrame, labels: dict[tuple[str, int], object], task: MonitoredTask) -> pd.DataFrame:
    """Sampled rows that have a ground-truth label: `target` and `prediction`, typed for the task."""
    found = [labels.get((request_id, row)) for request_id, row in zip(keys["request_id"], keys["row"], strict=True)]
    frame = pd.DataFrame({TARGET: task.values(pd.Series(found, dtype=object)),
                          PREDICTION: task.values(keys["prediction"])})
    return frame.dropna().reset_index(drop=True)


def run_quality_report(labeled: pd.DataFrame, task: MonitoredTask) -> tuple[Snapshot, dict[str, float]]:
    """Quality of the served predictions on rows with feedback (the task's Evidently preset); name -> value.

    A metric with a mean and a spread (regression's MAE, MAPE, mean error) is read as its mean."""
    definition, preset = task.quality(labeled)
    snapshot = Report([preset]).run(Dataset.from_pandas(labeled, data_definition=definition), None)
    metrics = {}
    for metric in snapshot.dict()["metrics"]:
        name, value = str(metric.get("config", {}).get("type", "")).rsplit(":", 1)[-1], metric.get("value")
        value = value.get("mean") if isinstance(value, dict) else value
        if isinstance(value, int | float):
            metrics[name.lower()] = float(value)
    return snapshot, metrics
