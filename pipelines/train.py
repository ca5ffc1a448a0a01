"""Train the configured scikit-learn Pipeline, log it to MLflow, register it as `@challenger`."""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipelines.config import DataConfig, ModelConfig, PipelineConfig
from pipelines.data import VersionedData, load_snapshot, log_dataset
from pipelines.errors import CannotRun
from pipelines.onnx_export import CONVERTED, ONNX_ARTIFACT, ONNX_RUN_TAG, NotConvertible, to_onnx
from pipelines.registry import (
    CHALLENGER,
    GIT_SHA_TAG,
    RUN_ID_TAG,
    connect,
    git_sha,
    resolve,
)
from pipelines.task import Task, task_for
from services.contract import CONFIG_ARTIFACT, DATA_VERSION_TAG, HOLDOUT_ARTIFACT, TARGET_TAG
from services.serving.model_trust import TRUSTED_TYPES, types_outside_pin
from services.serving.onnx_model import MISSING_CATEGORY

ESTIMATORS = {
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
    "logistic_regression": LogisticRegression,
}
# Scaling changes nothing a tree decides, and in ONNX it runs in float32, which would move values across
# split thresholds: only the linear model gets it.
SCALED_ESTIMATORS = {"logistic_regression"}
MODEL_PACKAGES = ["mlflow-skinny", "scikit-learn", "numpy", "scipy", "pandas", "skops"]


class TrainError(CannotRun, ValueError):
    """The model config cannot build an estimator (for instance an unknown parameter)."""


def build_pipeline(data: DataConfig, model: ModelConfig) -> Pipeline:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if model.estimator in SCALED_ESTIMATORS:
        numeric_steps.append(("scale", StandardScaler()))
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), data.numeric_features),
            ("categorical", Pipeline([
                # pandas writes a missing category as NaN (CSV) or None (parquet, JSON null): both mean MISSING.
                ("impute_nan", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                ("impute_none", SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY)),
                ("encode", OneHotEncoder(handle_unknown="ignore")),
            ]), data.categorical_features),
        ]
    )
    estimator_class = ESTIMATORS[model.estimator]
    try:
        estimator = estimator_class(**{"random_state": data.seed, **model.params})
    except TypeError as exc:
        raise TrainError(f"model.params: {exc} (estimator {model.estimator})") from None
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def split(frame: pd.DataFrame, data: DataConfig, task: Task) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeded train / frozen-holdout split of a snapshot, as `data.split` says (the task's default)."""
    return task.split(frame, kind=data.split or task.default_split, holdout_fraction=data.holdout_fraction,
                      seed=data.seed, target=data.target, time_column=data.time_column)


def evaluate(model: Pipeline, frame: pd.DataFrame, data: DataConfig, task: Task) -> dict[str, float]:
    return task.evaluate(model, frame[data.features], frame[data.target])


def fit(frame: pd.DataFrame, data: DataConfig, model: ModelConfig,
        task: Task) -> tuple[Pipeline, pd.DataFrame, dict[str, float]]:
    """Train on the snapshot's train split; metrics on its frozen holdout. Deterministic for a seed."""
    try:
        train, holdout = split(frame, data, task)
    except ValueError as exc:  # a class too rare to appear on both sides of a stratified split
        raise TrainError(f"cannot split '{data.target}' into train and holdout: {exc}") from None
    pipeline = build_pipeline(data, model)
    try:
        pipeline.fit(train[data.features], train[data.target])
    except (TypeError, ValueError) as exc:
        raise TrainError(f"training failed with model.params {model.params}: {exc}") from None
    return pipeline, holdout, evaluate(pipeline, holdout, data, task)


def check_trusted(model: Pipeline) -> None:
    """Refuse to log a model that needs skops types outside the pinned trusted list: no loader would load it."""
    if outside := types_outside_pin(model):
        raise TrainError(
            f"the fitted model needs type(s) outside the pinned trusted list: {', '.join(outside)}. "
            "Gate, bento and serving load only TRUSTED_TYPES in services/serving/model_trust.py; if these "
            "types are safe to load, add them there (and to the estimators its test fits)"
        )


def log_onnx(model: Pipeline, data: DataConfig, workdir: Path) -> str:
    """Log the pipeline converted to ONNX in the active run; say whether it converted, and why not."""
    try:
        converted = to_onnx(model, data)
    except NotConvertible as exc:
        return f"not converted: {exc}"
    path = workdir / Path(ONNX_ARTIFACT).name
    path.write_bytes(converted)
    mlflow.log_artifact(str(path), artifact_path=str(Path(ONNX_ARTIFACT).parent))
    return CONVERTED


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_version: str
    data_version: str
    metrics: dict[str, float]


def train(config: PipelineConfig, data: VersionedData) -> TrainResult:
    """One training run: snapshot + lineage, fit, metrics, registered model version aliased `challenger`."""
    client = connect(config)
    mlflow.set_experiment(config.tracking.experiment)
    sha = git_sha()
    # MLflow hints that integer labels cannot hold missing values; labels never do here.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mlflow.set_tags(
            {"git_sha": sha, "data_version": data.version, "data_source": data.source, TARGET_TAG: config.data.target}
        )
        mlflow.log_params(
            {"estimator": config.model.estimator, "seed": config.data.seed,
             "holdout_fraction": config.data.holdout_fraction, "rows": len(data.frame),
             **{f"model.{key}": value for key, value in config.model.params.items()}}
        )
        (workdir / "pipeline.json").write_text(json.dumps(config.public_dump(), indent=2))
        mlflow.log_artifact(str(workdir / "pipeline.json"), artifact_path=str(Path(CONFIG_ARTIFACT).parent))
        log_dataset(data, config.data, workdir)

        model, holdout, metrics = fit(data.frame, config.data, config.model, task_for(config.task))
        check_trusted(model)  # before anything is logged of a model no loader would load
        holdout.to_parquet(workdir / "holdout.parquet", index=False)
        mlflow.log_artifact(str(workdir / "holdout.parquet"), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))
        mlflow.log_metrics(metrics)

        example = holdout[config.data.features].head(5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            # Left to itself MLflow records the whole platform's lock (Pulumi, Evidently, ...) or whatever
            # this process imported; serving needs exactly these.
            pip_requirements=[f"{package}=={metadata.version(package)}" for package in MODEL_PACKAGES],
            registered_model_name=config.model_name,
            # The pin, not what this model happens to contain: every loader ignores the artifact's own list
            # and loads with the pin (services/serving/model_trust.py); recorded so MLflow's loader agrees.
            skops_trusted_types=sorted(TRUSTED_TYPES),
        )
        mlflow.set_tag(ONNX_RUN_TAG, log_onnx(model, config.data, workdir))
    version = str(info.registered_model_version)
    for key, value in {DATA_VERSION_TAG: data.version, GIT_SHA_TAG: sha, RUN_ID_TAG: run.info.run_id}.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    client.set_registered_model_alias(config.model_name, CHALLENGER, version)
    return TrainResult(run_id=run.info.run_id, model_version=version, data_version=data.version, metrics=metrics)


@dataclass(frozen=True)
class Reproduction:
    model_version: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    recorded_git_sha: str
    current_git_sha: str

    @property
    def identical(self) -> bool:
        return self.recorded == self.reproduced


def reproduce(config: PipelineConfig, version: str) -> Reproduction:
    """Retrain a registered version from its recorded snapshot and config; compare the metrics."""
    client = connect(config)
    model = resolve(client, config.model_name, version=version)
    _, _, metrics = fit(load_snapshot(model.run_id), model.data, model.trained_with.model,
                         task_for(model.trained_with.task))
    return Reproduction(
        model_version=version,
        recorded={k: v for k, v in client.get_run(model.run_id).data.metrics.items() if k in metrics},
        reproduced=metrics,
        recorded_git_sha=model.git_sha,
        current_git_sha=git_sha(),
    )
