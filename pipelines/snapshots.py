"""A training run's snapshot of its table, under the data config's policy, (lineage: pipelines.lineage).

`copy` (the default) stores the checked table and its frozen holdout in the run's artifacts. `reference` stores no
table: SNAPSHOT_REFERENCE_ARTIFACT records the source's `Provenance` (its URI and what pins it: a file's sha256,
an object's version id or ETag, the demo generator's call), the full-table digest, the digest of the holdout and
the data config and task that rebuild both. `load_snapshot` re-reads such a source pinned to the recorded proof,
checks it with the recorded data config and refuses, naming both digests, a table that is not the one trained
on. The holdout is the task's seeded split of the re-read table (`Task.split_snapshot`: the same rows in the same
order give the same split; its recorded digest proves it), so the gate, the deploy's smoke rows and `make
reproduce` work as under `copy`.

The monitoring job does not re-read a referenced source: its image carries services/ only, and it holds no
credentials for the team's lake or database (nor should it). Training logs it MONITORING_SAMPLE_ARTIFACT
instead: a seeded sample of the features and target, `monitoring.max_sample_rows` rows at most, which is all
the job reads of a snapshot anyway (services/monitoring/reference.py).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd

from pipelines.config_model import DataConfig
from pipelines.data import VersionedData, check_schema, data_version
from pipelines.digests import short
from pipelines.lineage import log_lineage
from pipelines.sources import DataError, Provenance, read_source
from pipelines.task import task_for
from services.contract import (
    DATA_SOURCE_KIND_TAG,
    DATA_SOURCE_TAG,
    HOLDOUT_ARTIFACT,
    MONITORING_SAMPLE_ARTIFACT,
    SNAPSHOT_ARTIFACT,
    SNAPSHOT_POLICY_TAG,
    SNAPSHOT_REFERENCE_ARTIFACT,
    TaskName,
)

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig


def check_policy(config: DataConfig, provenance: Provenance) -> None:
    """Refuse to train under `reference` on a source that cannot be re-read as it was (a plain SQL query)."""
    if config.snapshot == "reference" and provenance.unpinnable:
        raise DataError(f"data.snapshot: reference cannot pin {provenance.uri}: {provenance.unpinnable}; "
                        "use data.snapshot: copy to store the table with the run")


def source_tags(config: DataConfig, provenance: Provenance) -> dict[str, str]:
    """What the run and its model version record of where the table came from and how it was kept."""
    return {DATA_SOURCE_TAG: provenance.uri, DATA_SOURCE_KIND_TAG: provenance.kind,
            SNAPSHOT_POLICY_TAG: config.snapshot}


@dataclass(frozen=True)
class SnapshotReference:
    """What a `reference` snapshot records instead of the table: enough to re-read, check and split it again."""

    provenance: Provenance
    data_version: str
    holdout_version: str
    task: TaskName
    data: DataConfig

    def to_json(self) -> str:
        return json.dumps({"provenance": self.provenance.as_record(), "data_version": self.data_version,
                           "holdout_version": self.holdout_version, "task": self.task,
                           "data": self.data.model_dump(mode="json")}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> SnapshotReference:
        raw = json.loads(text)
        return cls(provenance=Provenance(**raw["provenance"]), data_version=raw["data_version"],
                   holdout_version=raw["holdout_version"], task=raw["task"],
                   data=DataConfig.model_validate(raw["data"]))


def log_dataset(data: VersionedData, holdout: pd.DataFrame, config: PipelineConfig, workdir: Path) -> None:
    """Record the table trained on and its frozen holdout in the active run, as `data.snapshot` says, and its
    lineage with `mlflow.log_input`."""
    if config.data.snapshot == "copy":
        log_table(data.frame, SNAPSHOT_ARTIFACT, workdir)
        log_table(holdout, HOLDOUT_ARTIFACT, workdir)
    else:
        reference = SnapshotReference(data.provenance, data.version, data_version(holdout), config.task, config.data)
        (workdir / Path(SNAPSHOT_REFERENCE_ARTIFACT).name).write_text(reference.to_json())
        mlflow.log_artifact(str(workdir / Path(SNAPSHOT_REFERENCE_ARTIFACT).name),
                            artifact_path=str(Path(SNAPSHOT_REFERENCE_ARTIFACT).parent))
        log_table(monitoring_sample(data.frame, config), MONITORING_SAMPLE_ARTIFACT, workdir)
    log_lineage(data, config.data.target)


def log_table(frame: pd.DataFrame, artifact: str, workdir: Path) -> None:
    path = workdir / Path(artifact).name
    frame.to_parquet(path, index=False)
    mlflow.log_artifact(str(path), artifact_path=str(Path(artifact).parent))


def monitoring_sample(frame: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The features and target of at most `monitoring.max_sample_rows` rows, seeded, in table order."""
    columns = [*config.data.features, config.data.target]
    rows = min(len(frame), config.monitoring.max_sample_rows)
    return frame[columns].sample(n=rows, random_state=config.data.seed).sort_index()


def load_snapshot(run_id: str, artifact: str = SNAPSHOT_ARTIFACT) -> pd.DataFrame:
    """The table a run trained on (SNAPSHOT_ARTIFACT) or its frozen holdout (HOLDOUT_ARTIFACT): downloaded when
    copied, re-read from the source and checked when referenced."""
    if mlflow.get_run(run_id).data.tags.get(SNAPSHOT_POLICY_TAG, "copy") == "copy":
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact,
                                                                       dst_path=tmp))
    with tempfile.TemporaryDirectory() as tmp:
        recorded = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SNAPSHOT_REFERENCE_ARTIFACT,
                                                            dst_path=tmp)).read_text()
    try:
        reference = SnapshotReference.from_json(recorded)
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise DataError(f"{SNAPSHOT_REFERENCE_ARTIFACT} of run {run_id} is not a snapshot reference this code "
                        f"reads: {exc}") from None
    table = rebuild(reference, run_id)
    if artifact == SNAPSHOT_ARTIFACT:
        return table
    if artifact != HOLDOUT_ARTIFACT:
        raise ValueError(f"a referenced snapshot rebuilds {SNAPSHOT_ARTIFACT} or {HOLDOUT_ARTIFACT}, not {artifact}")
    return split_holdout(table, reference, run_id)


def rebuild(reference: SnapshotReference, run_id: str) -> pd.DataFrame:
    """The referenced table, re-read at its recorded proof and checked as training checked it; `DataError` unless
    it is the very table trained on."""
    source = reference.provenance.uri
    try:
        raw = read_source(reference.data, pinned=reference.provenance.proof)
        table = check_schema(raw.frame, reference.data, task_for(reference.task))
    except DataError as exc:
        raise DataError(f"the snapshot of run {run_id} is a reference to {source}, which cannot be re-read: "
                        f"{exc}") from None
    found = data_version(table)
    if found != reference.data_version:
        raise DataError(
            f"the source {source} changed since run {run_id} was trained on it: its data version was "
            f"{short(reference.data_version)}, it is now {short(found)}. Under data.snapshot: "
            "reference the run holds no copy; restore the source as it was, or retrain on the new data")
    return table


def split_holdout(table: pd.DataFrame, reference: SnapshotReference, run_id: str) -> pd.DataFrame:
    _, holdout = task_for(reference.task).split_snapshot(table, reference.data)
    if (found := data_version(holdout)) != reference.holdout_version:
        raise DataError(f"the frozen holdout of run {run_id} does not come back from its re-read table: its digest "
                        f"was {short(reference.holdout_version)}, the split now gives "
                        f"{short(found)} (did the split code change?)")
    return holdout
