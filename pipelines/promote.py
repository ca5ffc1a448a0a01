"""Promote the artifact: copy one exact model version from one MLflow registry into another, then gate it there.

The copy is bit-identical: the model's files (its MLmodel with the signature, the skops file, the
requirements) and the training run's artifacts (data snapshot, frozen eval set, recorded config) are
downloaded from the source and uploaded unchanged to a new run and logged model in the target, with the
run's tags, params, metrics and dataset inputs (the data snapshot's reference: name, digest, source).
Lineage tags on the new version and run name the source registry (without its credentials), the source
version, its run id and a digest of the model's files. Each registry sees only its own credentials.

The target's own gate (`pipelines.validate`, against the target's `@champion`) then judges the copy. If it
passes, the copy becomes the target's `@challenger`, ready for `make deploy`; if it fails, or anything
goes wrong on the way, everything the promotion created in the target is deleted again: nothing moves.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.audit import AuditTrail
from pipelines.config import TRACKING_URI_ENV, PipelineConfig
from pipelines.errors import CannotRun
from pipelines.platform import require_mlflow
from pipelines.promote_credentials import Registry, only, registry
from pipelines.registry import (
    CHALLENGER,
    RUN_ID_TAG,
    VALIDATION_OVERRIDE_TAG,
    VALIDATION_TAG,
    RegistryError,
    connect,
    refuse_retired,
    resolve,
)
from pipelines.release_pointer import SERVING_IMAGE_TAG
from pipelines.validate import ValidationReport, validate

FROM_REGISTRY_TAG = "promoted_from_registry"
FROM_VERSION_TAG = "promoted_from_version"
FROM_RUN_TAG = "promoted_from_run_id"
ARTIFACT_DIGEST_TAG = "artifact_digest"
# Source version tags that are the source's own verdicts, not facts about the model: the target decides anew.
NOT_COPIED = {VALIDATION_TAG, VALIDATION_OVERRIDE_TAG, RUN_ID_TAG}
Progress = Callable[[str], None]


class PromotionError(CannotRun):
    """The promotion cannot run: same registry twice, or a version the source does not have."""


@dataclass(frozen=True)
class Exported:
    """One source version, downloaded: its model files, its run's artifacts and its records."""

    name: str
    version: str
    run_id: str
    registry: str  # the source URI without credentials
    model_dir: Path
    run_dir: Path
    digest: str
    version_tags: dict[str, str]
    run: mlflow.entities.Run
    logged_model: mlflow.entities.LoggedModel | None

    @property
    def lineage(self) -> dict[str, str]:
        return {FROM_REGISTRY_TAG: self.registry, FROM_VERSION_TAG: self.version, FROM_RUN_TAG: self.run_id,
                ARTIFACT_DIGEST_TAG: self.digest}


@dataclass
class Promotion:
    """What a promotion did in the target; `target_version` is None when its gate said no (nothing stays)."""

    source_version: str
    lineage: dict[str, str]
    target_registry: str  # its URI without credentials
    report: ValidationReport | None = None
    target_version: str | None = None
    target_run_id: str | None = None
    created: list[str] = field(default_factory=list)  # what was made in the target, for the undo

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


def promote(
    config: PipelineConfig, version: str, *, source_uri: str, target_uri: str, progress: Progress | None = None
) -> Promotion:
    """Copy `version` of the configured model from `source_uri` into `target_uri` and run the target's gate.

    Each registry is reached with its own credentials only (`pipelines.promote_credentials`).
    """
    say = progress or (lambda _message: None)
    configured = config.tracking.resolved_uri
    source, target = registry("from", source_uri, configured), registry("to", target_uri, configured)
    if source.uri.rstrip("/") == target.uri.rstrip("/"):
        raise PromotionError(f"--from and --to name the same registry ({source.uri})")
    with tempfile.TemporaryDirectory(prefix="promote-") as tmp:
        with connected(config, source) as (source_config, client):
            say(f"reading {config.model_name} v{version} from {source_config.tracking.display_uri}")
            exported = export_version(client, source_config, version, Path(tmp))
        with connected(config, target) as (target_config, client):
            return import_and_gate(client, target_config, exported, say)


@contextlib.contextmanager
def connected(config: PipelineConfig, side: Registry) -> Iterator[tuple[PipelineConfig, MlflowClient]]:
    """The config and a client for one registry, with its credentials only; the tracking env is as before afterwards.

    The URI goes through MLFLOW_TRACKING_URI, which every reader of the config (the gate included) takes first.
    """
    saved = os.environ.get(TRACKING_URI_ENV)
    os.environ[TRACKING_URI_ENV] = side.uri
    try:
        with only(side):
            scoped = config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": side.uri})})
            require_mlflow(scoped)
            yield scoped, connect(scoped)
    finally:
        if saved is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved


def export_version(client: MlflowClient, config: PipelineConfig, version: str, workdir: Path) -> Exported:
    try:
        resolved = resolve(client, config.model_name, version=version)
    except RegistryError as exc:
        raise PromotionError(f"{exc} in {config.tracking.display_uri}") from None
    refuse_retired(resolved.name, resolved.version, resolved.retired, "promote")
    found = client.get_model_version(resolved.name, resolved.version)
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri, dst_path=str(workdir / "model")))
    run_dir = Path(mlflow.artifacts.download_artifacts(run_id=resolved.run_id, dst_path=str(workdir / "run")))
    model_id = getattr(found, "model_id", None)
    return Exported(
        name=resolved.name, version=resolved.version, run_id=resolved.run_id,
        registry=config.tracking.display_uri, model_dir=model_dir, run_dir=run_dir, digest=tree_digest(model_dir),
        version_tags=dict(found.tags), run=client.get_run(resolved.run_id),
        logged_model=client.get_logged_model(model_id) if model_id else None,
    )


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes, in path order: equal digests, identical files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def import_and_gate(client: MlflowClient, config: PipelineConfig, exported: Exported, say: Progress) -> Promotion:
    promotion = Promotion(source_version=exported.version, lineage=exported.lineage,
                          target_registry=config.tracking.display_uri)
    try:
        say(f"copying v{exported.version} into {config.tracking.display_uri}")
        _copy_in(client, config, exported, promotion)
        say(f"gating the copy (v{promotion.target_version}) against the target's @champion")
        candidate = resolve(client, exported.name, version=promotion.target_version)
        promotion.report = validate(config, candidate)
    except BaseException:
        _undo(client, exported.name, promotion)
        raise
    if promotion.report.passed:
        client.set_registered_model_alias(exported.name, CHALLENGER, promotion.target_version)
        AuditTrail.of(config, client, exported.name).write(
            "promote", promotion.target_version or "", f"copied in as @{CHALLENGER}", **promotion.lineage)
    else:
        _undo(client, exported.name, promotion)
    return promotion


def _copy_in(client: MlflowClient, config: PipelineConfig, exported: Exported, promotion: Promotion) -> None:
    source = exported.run
    experiment = mlflow.set_experiment(config.tracking.experiment).experiment_id
    own_tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    run = client.create_run(experiment, run_name=f"promoted v{exported.version}",
                            tags={**own_tags, **exported.lineage})
    promotion.target_run_id = run.info.run_id
    promotion.created.append("run")
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(key, value, 0, 0) for key, value in source.data.metrics.items()],
        params=[Param(key, value) for key, value in source.data.params.items()],
        tags=[RunTag("mlflow.note.content", f"Copied from {exported.registry} v{exported.version}")],
    )
    if source.inputs and source.inputs.dataset_inputs:
        client.log_inputs(run.info.run_id, datasets=source.inputs.dataset_inputs)
    client.log_artifacts(run.info.run_id, str(exported.run_dir))
    client.set_terminated(run.info.run_id)

    original = exported.logged_model
    model = client.create_logged_model(
        experiment, name=original.name if original else "model", source_run_id=run.info.run_id,
        tags={**(original.tags if original else {}), **exported.lineage},
        params=original.params if original else None, model_type=original.model_type if original else None,
    )
    promotion.created.append(f"logged model {model.model_id}")
    client.log_model_artifacts(model.model_id, str(exported.model_dir))
    client.finalize_logged_model(model.model_id, "READY")

    if not _registered_model_exists(client, exported.name):
        client.create_registered_model(exported.name)
        promotion.created.append("registered model")
    tags = copied_version_tags(exported.version_tags)
    made = client.create_model_version(
        exported.name, source=f"models:/{model.model_id}", run_id=run.info.run_id, model_id=model.model_id,
        tags={**tags, RUN_ID_TAG: run.info.run_id, **exported.lineage},
        description=f"Promoted from {exported.registry}, version {exported.version}",
    )
    promotion.target_version = str(made.version)
    promotion.created.append("model version")


def copied_version_tags(source_tags: dict[str, str]) -> dict[str, str]:
    """The source version's tags the copy keeps: not the source's verdicts, nor the images it serves as on the
    source's stacks (`serving_image.<namePrefix>`: a target stack of the same prefix would serve them)."""
    return {key: value for key, value in source_tags.items()
            if key not in NOT_COPIED and not key.startswith(f"{SERVING_IMAGE_TAG}.")}


def _registered_model_exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _undo(client: MlflowClient, name: str, promotion: Promotion) -> None:
    """Delete what the promotion created in the target, newest first; the registry is as it was."""
    for made in reversed(promotion.created):
        with contextlib.suppress(MlflowException):
            if made == "model version":
                client.delete_model_version(name, promotion.target_version)
            elif made == "registered model":
                client.delete_registered_model(name)
            elif made.startswith("logged model "):
                client.delete_logged_model(made.removeprefix("logged model "))
            elif made == "run":
                client.delete_run(promotion.target_run_id)
    promotion.target_version = None
