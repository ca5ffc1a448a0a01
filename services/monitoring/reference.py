"""The reference a model version is judged against: its own training snapshot, as recorded in MLflow.

model version -> run id -> the snapshot artifact, minus the target named by the run's target tag
(names in services/contract.py). Feature names and kinds come from the run's recorded pipeline config, or,
when a run has none, from the snapshot's columns and dtypes. No copy of the data is kept anywhere else.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.contract import CONFIG_ARTIFACT, SNAPSHOT_ARTIFACT, TARGET_TAG


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


def load_reference(client: MlflowClient, model_name: str, version: str, *, max_rows: int, seed: int = 0) -> Reference:
    try:
        run_id = client.get_model_version(model_name, version).run_id
    except MlflowException as exc:
        raise ReferenceMissing(
            f"model version {model_name} v{version} is not in the registry ({exc.error_code})"
        ) from None
    if not run_id:
        raise ReferenceMissing(f"model version {model_name} v{version} records no training run")
    target = client.get_run(run_id).data.tags.get(TARGET_TAG)
    with tempfile.TemporaryDirectory(prefix="monitoring-reference-") as workdir:
        snapshot = _download(client, run_id, SNAPSHOT_ARTIFACT, workdir)
        if snapshot is None:
            raise ReferenceMissing(
                f"training run {run_id} of {model_name} v{version} has no artifact {SNAPSHOT_ARTIFACT}"
            )
        try:
            frame = pd.read_parquet(snapshot)
        except (OSError, ValueError) as exc:
            raise ReferenceMissing(f"{SNAPSHOT_ARTIFACT} of run {run_id} is unreadable: {exc}") from None
        config_file = _download(client, run_id, CONFIG_ARTIFACT, workdir)
        schema = _schema_from_config(config_file) if config_file else None
    if target is None:
        raise ReferenceMissing(f"training run {run_id} of {model_name} v{version} has no '{TARGET_TAG}' tag")
    schema = schema or _schema_from_frame(frame.drop(columns=[target], errors="ignore"))
    absent = [column for column in schema.columns if column not in frame.columns]
    if absent:
        raise ReferenceMissing(f"{SNAPSHOT_ARTIFACT} of run {run_id} lacks feature columns {absent}")
    features = frame[schema.columns]
    if len(features) > max_rows:
        features = features.sample(n=max_rows, random_state=seed)
    return Reference(model_version=version, run_id=run_id, target=target, schema=schema, frame=features)


def _download(client: MlflowClient, run_id: str, artifact: str, workdir: str) -> Path | None:
    try:
        return Path(client.download_artifacts(run_id, artifact, workdir))
    except (MlflowException, OSError):
        return None


def _schema_from_config(path: Path) -> FeatureSchema | None:
    try:
        data = json.loads(path.read_text())["data"]
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
