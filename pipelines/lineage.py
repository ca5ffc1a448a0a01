"""Lineage of a training table in MLflow: `mlflow.log_input` naming where it came from, with its full digest.

MLflow infers a dataset's schema cell by cell in Python (160 s for a 10M-row table, more than the read); the
table is checked by then, so its schema is read off the dtypes instead.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, DataType, Schema
from pandas.api import types as ptypes

from pipelines.data import VersionedData
from pipelines.sources import Provenance

DIGEST_CHARS = 32  # MLflow caps dataset digests at 36 characters; the run tag keeps all 64
MAX_NAME_CHARS = 500  # MLflow's dataset name column


def log_lineage(data: VersionedData, target: str) -> None:
    mlflow.log_input(training_dataset(data, target), context="training")


def training_dataset(data: VersionedData, target: str) -> CheckedTable:
    return CheckedTable(data.frame, source=dataset_source(data.provenance), targets=target,
                        name=dataset_name(data.provenance), digest=data.version[:DIGEST_CHARS])


class CheckedTable(PandasDataset):
    """A checked table: numeric columns are float64, categoricals strings, the time column numbers or datetimes."""

    @cached_property
    def schema(self) -> Schema:
        frame = self.df
        return Schema([ColSpec(column_type(frame[name]), str(name), required=not frame[name].isna().any())
                       for name in frame.columns])


def column_type(values: pd.Series) -> DataType:
    if ptypes.is_bool_dtype(values):
        return DataType.boolean
    if ptypes.is_integer_dtype(values):
        return DataType.long
    if ptypes.is_float_dtype(values):
        return DataType.double
    if ptypes.is_datetime64_any_dtype(values):
        return DataType.datetime
    return DataType.string


class ProvenanceSource(DatasetSource):
    """Lineage of a source MLflow has no dataset source type for (the demo generator, a SQL query)."""

    def __init__(self, provenance: Provenance) -> None:
        self._provenance = provenance

    def _get_source_type(self) -> str:  # type: ignore[override]  # one class for several kinds
        return self._provenance.kind

    def load(self, **kwargs: Any) -> Any:
        raise NotImplementedError("re-read it with pipelines.snapshots.load_snapshot")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> ProvenanceSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return self._provenance.as_record()

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> ProvenanceSource:
        return cls(Provenance(**source_dict))


def dataset_source(provenance: Provenance) -> DatasetSource:
    """MLflow's own source type for a path or an s3:// URL; ours for the rest. Either names the URI."""
    try:
        return resolve_dataset_source(provenance.uri)
    except MlflowException:
        return ProvenanceSource(provenance)


def dataset_name(provenance: Provenance) -> str:
    """The source's URI: MLflow keeps one dataset per experiment, name and digest, and shows the source of the
    first run that logged it, so two sources of the same table under one short name would share one lineage."""
    return provenance.uri[:MAX_NAME_CHARS]
