"""Train the configured scikit-learn Pipeline, log it to MLflow, register it as `@challenger`."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from pipelines.audit import AuditTrail
from pipelines.config import PipelineConfig
from pipelines.data import VersionedData
from pipelines.digests import short
from pipelines.errors import CannotRun
from pipelines.estimators import import_path
from pipelines.features import build_pipeline
from pipelines.onnx_export import CONVERTED, ONNX_ARTIFACT, ONNX_RUN_TAG, NotConvertible, to_onnx
from pipelines.registry import (
    CHALLENGER,
    GIT_SHA_TAG,
    RUN_ID_TAG,
    connect,
    git_sha,
    resolve,
)
from pipelines.snapshots import load_snapshot, log_dataset, source_tags
from pipelines.task import task_for
from pipelines.team_code import code_sha256, forget_modules, make_importable
from pipelines.team_requirements import canonical, requirement_names
from services.contract import (
    CODE_SHA256_TAG,
    CONFIG_ARTIFACT,
    DATA_VERSION_TAG,
    ESTIMATOR_TAG,
    TARGET_TAG,
    TASK_TAG,
)
from services.serving.model_trust import TRUSTED_TYPES, types_outside_pin

# What every served model needs; model_packages adds the estimator's and transformer's own packages.
MODEL_PACKAGES = ["mlflow-skinny", "scikit-learn", "numpy", "scipy", "pandas", "skops"]
MODEL_ARTIFACT, CODE_DIR = "model", "code"  # MLflow copies `code_paths` into <model>/code/<folder name>


class TrainError(CannotRun, ValueError):
    """The model config cannot build an estimator (for instance an unknown parameter)."""


def fit(frame: pd.DataFrame, config: PipelineConfig) -> tuple[Pipeline, pd.DataFrame, dict[str, float]]:
    """Train on the snapshot's train split; metrics on its frozen holdout. Deterministic for a seed."""
    data, task = config.data, task_for(config.task)
    pipeline = build_pipeline(config)  # a bad estimator, param or transformer stops here, before any split
    try:
        train, holdout = task.split_snapshot(frame, data)
    except ValueError as exc:  # a class too rare to appear on both sides of a stratified split
        raise TrainError(f"cannot split '{data.target}' into train and holdout: {exc}") from None
    if unseen := task.holdout_only_labels(train[data.target], holdout[data.target]):
        raise TrainError(f"data.split: {data.split} put class(es) {unseen} of '{data.target}' in the holdout only; "
                         "the model could never predict them (use data.split: stratified, or add rows)")
    try:
        pipeline.fit(train[data.features], train[data.target])
        return pipeline, holdout, task.evaluate_on(pipeline, holdout, data)
    except Exception as exc:  # an estimator of any library (LightGBMError, a team's RuntimeError): its message
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise TrainError(f"training {config.model.estimator} failed with model.params {config.model.params}: "
                         f"{reason}") from None


def check_trusted(model: Pipeline, declared: Iterable[str] = ()) -> None:
    """Refuse to log a model that needs skops types beyond the pin and `model.trusted_types`: no loader would
    load it. The message names exactly the types to add."""
    if outside := types_outside_pin(model, declared):
        raise TrainError(
            f"the fitted model needs skops type(s) outside the trusted list: {', '.join(outside)}. Gate, bento "
            "and serving load only TRUSTED_TYPES (services/serving/model_trust.py) and the pipeline config's "
            "model.trusted_types; if these types are safe to load, add them to model.trusted_types"
        )


def model_packages(config: PipelineConfig, model: Pipeline) -> list[str]:
    """MODEL_PACKAGES plus the installed distribution of every module the model's steps and their base classes
    come from (lightgbm, xgboost-cpu, ...: a team class deriving from LGBMRegressor needs lightgbm too). The
    team's own code travels as code paths; its `model.requirements` are added as pinned where the model is logged."""
    distributions = metadata.packages_distributions()
    team = {folder.name for folder in config.code_folders}
    steps = [model, *(value for value in model.get_params(deep=True).values() if hasattr(value, "get_params"))]
    tops = {cls.__module__.partition(".")[0] for step in steps for cls in type(step).__mro__} - team
    found = list(MODEL_PACKAGES)
    for name in sorted(dist for top in tops for dist in distributions.get(top, [])):
        if name not in found:
            found.append(name)
    return found


def log_onnx(model: Pipeline, config: PipelineConfig, workdir: Path) -> str:
    """Log the pipeline converted to ONNX in the active run; say whether it converted, and why not."""
    try:
        converted = to_onnx(model, config.data, config.task)
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


def lineage_tags(config: PipelineConfig, data: VersionedData, sha: str) -> dict[str, str]:
    """What a run and its model version record of how the model was made."""
    return {GIT_SHA_TAG: sha, DATA_VERSION_TAG: data.version, TASK_TAG: config.task,
            ESTIMATOR_TAG: import_path(config.model.estimator), CODE_SHA256_TAG: code_sha256(config.code_folders),
            **source_tags(config.data, data.provenance)}


def train(config: PipelineConfig, data: VersionedData) -> TrainResult:
    """One training run: fit, then snapshot + lineage, metrics, registered model version aliased `challenger`.
    The model is fitted and checked before the run starts: a bad config or an untrusted type logs nothing."""
    client = connect(config)
    model, holdout, metrics = fit(data.frame, config)
    check_trusted(model, config.model.trusted_types)
    mlflow.set_experiment(config.tracking.experiment)
    tags = lineage_tags(config, data, git_sha())
    # MLflow hints that integer labels cannot hold missing values; labels never do here.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mlflow.set_tags({**tags, TARGET_TAG: config.data.target})
        mlflow.log_params(
            {"estimator": config.model.estimator, "seed": config.data.seed,
             "holdout_fraction": config.data.holdout_fraction, "rows": len(data.frame),
             **{f"model.{key}": value for key, value in config.model.params.items()}}
        )
        (workdir / "pipeline.json").write_text(json.dumps(config.public_dump(), indent=2))
        mlflow.log_artifact(str(workdir / "pipeline.json"), artifact_path=str(Path(CONFIG_ARTIFACT).parent))
        log_dataset(data, holdout, config, workdir)
        mlflow.log_metrics(metrics)

        example = holdout[config.data.features].head(5)
        declared = requirement_names(config.model.requirements)  # the team's own pins win over a detected one
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            # Left to itself MLflow records the whole platform's lock (Pulumi, Evidently, ...) or whatever
            # this process imported; serving needs exactly these.
            pip_requirements=[*(f"{package}=={metadata.version(package)}" for package in model_packages(config, model)
                                if canonical(package) not in declared), *config.model.requirements],
            code_paths=[str(folder) for folder in config.code_folders] or None,
            registered_model_name=config.model_name,
            # The pin and the config's reviewed additions, not what this model happens to contain: every loader
            # ignores the artifact's own list (services/serving/model_trust.py); recorded so MLflow's agrees.
            skops_trusted_types=sorted(TRUSTED_TYPES | set(config.model.trusted_types)),
        )
        mlflow.set_tag(ONNX_RUN_TAG, log_onnx(model, config, workdir))
    version = str(info.registered_model_version)
    for key, value in {**tags, RUN_ID_TAG: run.info.run_id}.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    client.set_registered_model_alias(config.model_name, CHALLENGER, version)
    AuditTrail.of(config, client).write("train", version, f"registered @{CHALLENGER}", run_id=run.info.run_id,
                                        **tags)
    return TrainResult(run_id=run.info.run_id, model_version=version, data_version=data.version, metrics=metrics)


@dataclass(frozen=True)
class Reproduction:
    model_version: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    recorded_git_sha: str
    current_git_sha: str
    code: str  # where the team's code came from: "" when the version has none

    @property
    def identical(self) -> bool:
        return self.recorded == self.reproduced


def logged_code(config: PipelineConfig, model_uri: str, recorded_sha256: str, workdir: Path) -> PipelineConfig:
    """The recorded config with its code paths pointing at the copies logged with the model, made importable
    first on sys.path; `TrainError` if the copy is not the code the version was trained with."""
    if not config.code_paths:
        return config
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(workdir)))
    folders = [downloaded / CODE_DIR / folder.name for folder in config.code_folders]
    if code_sha256(folders) != recorded_sha256:
        raise TrainError(f"the team code logged with {model_uri} does not match its {CODE_SHA256_TAG} tag "
                         f"({recorded_sha256 or 'none'}); it cannot be reproduced from that copy")
    forget_modules(folders)
    make_importable(folders)
    return config.model_copy(update={"code_paths": folders})


def reproduce(config: PipelineConfig, version: str) -> Reproduction:
    """Retrain a registered version from its recorded snapshot (re-read and checked, when it is a reference),
    config and logged team code; compare metrics."""
    client = connect(config)
    model = resolve(client, config.model_name, version=version)
    with tempfile.TemporaryDirectory() as tmp:
        trained_with = logged_code(model.trained_with, model.uri, model.code_sha256, Path(tmp))
        _, _, metrics = fit(load_snapshot(model.run_id), trained_with)
    names = ", ".join(folder.name for folder in trained_with.code_folders)
    return Reproduction(
        model_version=version,
        recorded={k: v for k, v in client.get_run(model.run_id).data.metrics.items() if k in metrics},
        reproduced=metrics,
        recorded_git_sha=model.git_sha,
        current_git_sha=git_sha(),
        code=f"refitted with the copy of {names} logged with v{version} (sha256 {short(model.code_sha256)})"
        if names else "",
    )
