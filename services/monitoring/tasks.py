"""What monitoring asks of the task a model version solves (its run's recorded `task`), in one place.

The monitoring image carries services/ only, so this is its own small view of pipelines/task.py: how served
predictions, feedback labels and the reference's target are typed so both sides compare (numbers for
regression, class labels as strings for classification), which kind of column Evidently compares them as,
and which Evidently quality preset judges the predictions against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd
from evidently import BinaryClassification, DataDefinition, MulticlassClassification, Regression
from evidently.core.container import MetricContainer
from evidently.presets import ClassificationPreset, RegressionPreset

from services.contract import CLASSIFICATION, REGRESSION, TaskName

TARGET = "target"
PREDICTION = "prediction"
ColumnKind = Literal["numerical", "categorical"]


@dataclass(frozen=True)
class MonitoredTask:
    name: TaskName
    kind: ColumnKind  # how Evidently compares predictions (and the reference's target)

    def values(self, column: pd.Series) -> pd.Series:
        """Predictions, labels or targets typed alike; a value that is not one becomes missing."""
        if self.kind == "numerical":
            return pd.to_numeric(column, errors="coerce").astype(float)
        # Object dtype first: a missing label must not turn int labels into floats ("1.0" != "1").
        column = column.astype(object)
        return column.where(column.isna(), column.astype(str))

    def columns(self, *names: str) -> DataDefinition:
        """A data definition declaring these columns of the task's kind."""
        return DataDefinition(**{f"{self.kind}_columns": list(names)})

    def quality(self, labeled: pd.DataFrame) -> tuple[DataDefinition, MetricContainer]:
        """The definition and Evidently preset judging `prediction` against `target` on labeled rows."""
        if self.name == REGRESSION:
            return DataDefinition(numerical_columns=[TARGET, PREDICTION], regression=[Regression()]), RegressionPreset()
        classes = sorted(set(labeled[TARGET]) | set(labeled[PREDICTION]))
        if len(classes) > 2:
            kind = MulticlassClassification(target=TARGET, prediction_labels=PREDICTION)
        else:  # Evidently's binary metrics need the positive class among the labels; "1" is the usual one.
            positive = "1" if "1" in classes else classes[-1]
            kind = BinaryClassification(target=TARGET, prediction_labels=PREDICTION, pos_label=positive)
        return DataDefinition(categorical_columns=[TARGET, PREDICTION], classification=[kind]), ClassificationPreset()


TASKS: dict[str, MonitoredTask] = {
    CLASSIFICATION: MonitoredTask(CLASSIFICATION, "categorical"),
    REGRESSION: MonitoredTask(REGRESSION, "numerical"),
}


def monitored_task(name: str) -> MonitoredTask:
    return TASKS[name]
