"""The reference a model version is judged against: its own training snapshot, as recorded in MLflow.

model version -> run id -> the snapshot artifact: its features, and apart from them the target named by the
run's target tag (names in services/contract.py), which the served predictions are compared with. Feature
names and kinds, and the task, come from the run's recorded pipeline config, or, when a run has none, from
the snapshot's columns and dtypes and the run's task tag; the fairness settings its gate judged by come from that
config too. A run recording no task (older runs) is a classification. No copy of the data is kept anywhere
else. A run trained under `data.snapshot: reference` holds no snapshot (the job has no credentials for the
team's source): its MONITORING_SAMPLE_ARTIFACT, a bounded sample of the same columns logged by training, is
read the same way instead.

The snapshot is the full training table, which may not fit in the job's memory: it is read in batches of its
feature columns and sampled as it goes (bottom-k on a seeded random key per row, a uniform sample without
replacement), so memory is bounded by `max_rows` plus one batch whatever the table's size.
"""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.contract import (
    CLASSIFICATION,
    CONFIG_ARTIFACT,
    MONITORING_SAMPLE_ARTIFACT,
    SNAPSHOT_ARTIFACT,
    TARGET_TAG,
    TASK_TAG,
    TaskName,
)
from services.monitoring.fairness import FairnessSettings
from services.monitoring.settings import MonitorSettings
from services.monitoring.tasks import TASKS

BATCH_ROWS = 65_536
READ_BUFFER_BYTES = 1 << 20
CACHED_REFERENCES = 4


class ReferenceMissing(LookupError):
    """The model version has no usable training snapshot recorded in MLflow."""


@dataclass(frozen=True)
class FeatureSchema:
    numerical: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numerical, *self.categorical]


@dataclass(frozen=True)
class Reference:
    model_version: str
    run_id: str
    target: str
    schema: FeatureSchema
    frame: pd.DataFrame  # feature columns only, sampled to the job's bound
    task: TaskName = CLASSIFICATION
    target_values: pd.Series | None = None  # the target of the same sampled rows; None: not in the snapshot
    fairness: FairnessSettings | None = None  # what the version's gate judged fairness by (None: nothing)


def load_reference(client: MlflowClient, model_name: str, version: str, *, max_rows: int, seed: int = 0) -> Reference:
    try:
        run_id = client.get_model_version(model_name, version).run_id
    except MlflowException as exc:
        raise ReferenceMissing(
            f"model version {model_name} v{version} is not in the registry ({exc.error_code})"
        ) from None
    if not run_id:
        raise ReferenceMissing(f"model version {model_name} v{version} records no training run")
    tags = client.get_run(run_id).data.tags
    target = tags.get(TARGET_TAG)
    with tempfile.TemporaryDirectory(prefix="monitoring-reference-") as workdir:
        artifact, snapshot = SNAPSHOT_ARTIFACT, _download(client, run_id, SNAPSHOT_ARTIFACT, workdir)
        if snapshot is None:  # trained under `data.snapshot: reference`
            artifact, snapshot = MONITORING_SAMPLE_ARTIFACT, _download(client, run_id, MONITORING_SAMPLE_ARTIFACT,
                                                                       workdir)
        if snapshot is None:
            raise ReferenceMissing(f"training run {run_id} of {model_name} v{version} has no artifact "
                                   f"{SNAPSHOT_ARTIFACT} (nor {MONITORING_SAMPLE_ARTIFACT})")
        if target is None:
            raise ReferenceMissing(f"training run {run_id} of {model_name} v{version} has no '{TARGET_TAG}' tag")
        config_file = _download(client, run_id, CONFIG_ARTIFACT, workdir)
        recorded = _read_config(config_file) if config_file else {}
        schema = _schema_from_config(recorded)
        task = recorded.get("task", tags.get(TASK_TAG, CLASSIFICATION))
        if task not in TASKS:
            raise ReferenceMissing(f"training run {run_id} of {model_name} v{version} records task {task!r}; "
                                   f"monitoring knows {sorted(TASKS)}")
        try:
            # No pre-buffering and a small read buffer: Arrow would otherwise load whole column chunks.
            parquet = pq.ParquetFile(snapshot, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
            columns = parquet.schema_arrow.names
            schema = schema or _schema_from_frame(parquet.schema_arrow.empty_table().to_pandas().drop(
                columns=[target], errors="ignore"))
            absent = [column for column in schema.columns if column not in columns]
            if absent:
                raise ReferenceMissing(f"{artifact} of run {run_id} lacks feature columns {absent}")
            with_target = [*schema.columns, target] if target in columns and target not in schema.columns else None
            sampled = sample_parquet(parquet, with_target or schema.columns, max_rows=max_rows, seed=seed)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ReferenceMissing(f"{artifact} of run {run_id} is unreadable: {exc}") from None
    return Reference(model_version=version, run_id=run_id, target=target, schema=schema,
                     frame=sampled[schema.columns], task=task, target_values=sampled[target] if with_target else None,
                     fairness=FairnessSettings.from_recorded(recorded))


def sample_parquet(
    parquet: pq.ParquetFile, columns: list[str], *, max_rows: int, seed: int = 0, batch_rows: int = BATCH_ROWS
) -> pd.DataFrame:
    """A uniform sample of at most `max_rows` rows of `columns`, in file order, read one batch at a time."""
    rng = np.random.default_rng(seed)
    kept: pa.Table | None = None
    keys = np.empty(0)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_pandas_metadata=False):
        table = pa.Table.from_batches([batch])
        kept = table if kept is None else pa.concat_tables([kept, table]).combine_chunks()
        keys = np.concatenate([keys, rng.random(batch.num_rows)])
        if kept.num_rows > max_rows:  # the rows with the smallest keys (bottom-k: a uniform sample), in order
            smallest = np.sort(np.argpartition(keys, max_rows)[:max_rows])
            kept, keys = kept.take(pa.array(smallest)), keys[smallest]
    if kept is None:
        kept = parquet.schema_arrow.empty_table().select(columns)
    return kept.replace_schema_metadata(None).to_pandas()


def _download(client: MlflowClient, run_id: str, artifact: str, workdir: str) -> Path | None:
    try:
        return Path(client.download_artifacts(run_id, artifact, workdir))
    except (MlflowException, OSError):
        return None


def _read_config(path: Path) -> dict:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _schema_from_config(recorded: dict) -> FeatureSchema | None:
    try:
        data = recorded["data"]
        schema = FeatureSchema(
            numerical=[str(name) for name in data.get("numeric_features", [])],
            categorical=[str(name) for name in data.get("categorical_features", [])],
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return schema if schema.columns else None


def _schema_from_frame(frame: pd.DataFrame) -> FeatureSchema:
    numerical = [
        str(name)
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    ]
    categorical = [str(name) for name in frame.columns if name not in numerical]
    return FeatureSchema(numerical=numerical, categorical=categorical)


class ReferenceCache:
    """Training snapshots are immutable per model version, so a looping job downloads each once."""

    def __init__(self, size: int = CACHED_REFERENCES) -> None:
        self._size = size
        self._items: OrderedDict[str, Reference] = OrderedDict()

    def get(self, client: MlflowClient, settings: MonitorSettings, version: str) -> Reference:
        if version in self._items:
            self._items.move_to_end(version)
            return self._items[version]
        reference = load_reference(
            client, settings.model_name, version, max_rows=settings.policy.max_sample_rows, seed=settings.seed
        )
        self._items[version] = reference
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return reference
