"""The lineage a run logs: the dataset's schema read off the checked table's dtypes is the one MLflow infers."""

from __future__ import annotations

import mlflow
import pandas as pd

from pipelines.data import check_schema
from pipelines.demo_data import make_loans
from pipelines.lineage import CheckedTable
from pipelines.task import task_for
from tests.unit.test_data import DEMO


def checked_demo() -> pd.DataFrame:
    raw = make_loans(rows=300, seed=3)
    raw.loc[::7, DEMO.categorical_features[0]] = None  # a categorical with missing values
    raw.loc[::11, DEMO.numeric_features[0]] = None
    frame = check_schema(raw, DEMO, task_for("classification"))
    frame["seen_at"] = pd.date_range("2026-01-01", periods=len(frame), freq="h")
    frame["count"] = range(len(frame))
    frame["flag"] = frame["count"] % 2 == 0
    return frame


def test_the_schema_from_dtypes_is_the_one_mlflow_infers():
    frame = checked_demo()
    inferred = mlflow.data.from_pandas(frame, targets=DEMO.target).schema
    assert CheckedTable(frame, source=mlflow.data.from_pandas(frame).source, targets=DEMO.target).schema == inferred
