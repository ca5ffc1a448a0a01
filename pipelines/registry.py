"""The MLflow model registry as the release's source of truth: versions, aliases, promotion, rollback.

Aliases: `challenger` = newest trained candidate, `champion` = what serves, `previous` = what served before.
A release resolves the version it acts on once (`resolve`) and hands that value to the gate, the bento
build, the deploy and the traffic generator.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from pipelines.config import (
    REPO_ROOT,
    TRACKING_PASSWORD_ENV,
    TRACKING_URI_ENV,
    TRACKING_USERNAME_ENV,
    DataConfig,
    PipelineConfig,
)
from pipelines.errors import CannotRun
from pipelines.estimators import import_path
from pipelines.snapshots import load_snapshot
from pipelines.uris import split_credentials
from services.contract import (
    CHAMPION_ALIAS,
    CODE_SHA256_TAG,
    CONFIG_ARTIFACT,
    DATA_VERSION_TAG,
    ESTIMATOR_TAG,
    HOLDOUT_ARTIFACT,
    SERVING_RUNTIME_TAG,
    SKLEARN_RUNTIME,
)

CHALLENGER, CHAMPION, PREVIOUS = "challenger", CHAMPION_ALIAS, "previous"
# Model version tags: what it was made from (set by training), and the gate's verdict (deploy needs "passed").
GIT_SHA_TAG, RUN_ID_TAG = "git_sha", "run_id"
VALIDATION_TAG, PASSED, FAILED = "validation", "passed", "failed"
VALIDATION_OVERRIDE_TAG = "validation_override"  # why gate checks were waived: the operator, or config waivers
# Set by the gate with its verdict, beside SERVING_RUNTIME_TAG: the digest of the ONNX file it checked, so
# the build serves exactly that file.
ONNX_SHA256_TAG = "onnx_sha256"
RETIRED_TAG = "retired"  # set by `pipelines retire`: when, by whom and why; a retired version never serves again


class RegistryError(CannotRun):
    """A model version or alias the step needs is not in the registry."""


def connect(config: PipelineConfig) -> MlflowClient:
    """Point MLflow at the configured tracking server and return a client.

    A `user:password@` in the URI goes to MLFLOW_TRACKING_USERNAME / _PASSWORD instead: MLflow's own
    error messages quote the tracking URI, and a password must never reach a message or a log.
    """
    users_choice = os.environ.get(TRACKING_URI_ENV)
    uri, username, password = split_credentials(config.tracking.resolved_uri)
    if username is not None:
        os.environ[TRACKING_USERNAME_ENV] = username
    if password is not None:
        os.environ[TRACKING_PASSWORD_ENV] = password
    mlflow.set_tracking_uri(uri)
    # MLflow also writes the URI into MLFLOW_TRACKING_URI, where it would pose as the user's override
    # for every config read later in this process.
    if users_choice is None:
        os.environ.pop(TRACKING_URI_ENV, None)
    else:
        os.environ[TRACKING_URI_ENV] = users_choice
    return MlflowClient()


def git_sha() -> str:
    """The commit the code came from, marked `-dirty` when the work tree has changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


# What MLflow answers for an unknown model or alias; anything else (an outage) must not read as "none".
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return None
        raise


def require_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    version = by_alias(client, name, alias)
    if version is None:
        hint = "run `make train` first" if alias == CHALLENGER else "nothing has been deployed with that alias yet"
        raise RegistryError(f"model '{name}' has no version with alias @{alias}: {hint}")
    return version


def require_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            raise RegistryError(f"model '{name}' has no version {version}") from None
        raise


@dataclass(frozen=True)
class ResolvedVersion:
    """One registered model version and what it was made from, read from the registry once."""

    name: str
    version: str
    run_id: str
    data_version: str
    git_sha: str
    trained_with: PipelineConfig  # the config of its training run: its schema, which may differ from today's
    runtime: str = SKLEARN_RUNTIME  # what serves it, as its last gate decided (scikit-learn before any gate)
    onnx_sha256: str | None = None  # the ONNX file that gate checked, when the runtime is onnxruntime
    tagged_estimator: str = ""  # the estimator's import path as tagged; "" on versions trained before the tag
    code_sha256: str = ""  # the digest of the team's code logged with the model; "" when it has none
    retired: str = ""  # its RETIRED_TAG: "" unless `pipelines retire` retired it

    @property
    def task(self) -> str:
        return self.trained_with.task

    @property
    def estimator(self) -> str:
        """The estimator's import path: its tag, or for older versions their recorded config's."""
        return self.tagged_estimator or import_path(self.trained_with.model.estimator or "unknown")

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def data(self) -> DataConfig:
        return self.trained_with.data

    @functools.cached_property
    def holdout(self) -> pd.DataFrame:
        """Its frozen eval set, fetched on first use (the gate, then the deploy's smoke rows): downloaded, or
        split again from its re-read source under `data.snapshot: reference`."""
        return load_snapshot(self.run_id, HOLDOUT_ARTIFACT)

    @property
    def labels(self) -> dict[str, str]:
        """Its identity as bento and audit labels."""
        return {"model_name": self.name, "model_version": self.version, "run_id": self.run_id,
                "data_version": self.data_version, "git_sha": self.git_sha, "runtime": self.runtime,
                "task": self.task, "estimator": self.estimator, "code_sha256": self.code_sha256}


def resolve(
    client: MlflowClient, name: str, *, alias: str | None = None, version: str | None = None
) -> ResolvedVersion:
    """The version an alias points at, or a version by number; `RegistryError` when there is none."""
    if (alias is None) == (version is None):
        raise ValueError("resolve() takes an alias or a version number")
    found = require_alias(client, name, alias) if alias else require_version(client, name, version or "")
    return _resolved(found)


def resolve_alias_if_set(client: MlflowClient, name: str, alias: str) -> ResolvedVersion | None:
    found = by_alias(client, name, alias)
    return None if found is None else _resolved(found)


def _resolved(found: ModelVersion) -> ResolvedVersion:
    return ResolvedVersion(
        name=found.name, version=found.version, run_id=found.run_id,
        data_version=found.tags.get(DATA_VERSION_TAG, "unknown"), git_sha=found.tags.get(GIT_SHA_TAG, "unknown"),
        trained_with=recorded_config(found.run_id),
        runtime=found.tags.get(SERVING_RUNTIME_TAG, SKLEARN_RUNTIME), onnx_sha256=found.tags.get(ONNX_SHA256_TAG),
        tagged_estimator=found.tags.get(ESTIMATOR_TAG, ""),
        code_sha256=found.tags.get(CODE_SHA256_TAG, ""), retired=found.tags.get(RETIRED_TAG, ""),
    )


class RetiredVersion(RegistryError):
    """The version was retired: it is never deployed, promoted or made champion again."""


def refuse_retired(name: str, version: str, retired: str, doing: str) -> None:
    """`RetiredVersion` when `retired` (the version's RETIRED_TAG) says it was retired."""
    if retired:
        raise RetiredVersion(f"cannot {doing} {name} v{version}: it was retired ({retired}); train a new version "
                             "instead")


def recorded_config(run_id: str) -> PipelineConfig:
    """The validated pipeline config a training run was made with."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CONFIG_ARTIFACT, dst_path=tmp)
        try:
            return PipelineConfig.model_validate_json(Path(path).read_text())
        except ValidationError as exc:
            raise RegistryError(f"run {run_id} was made with a config this code no longer reads: "
                                f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


@dataclass(frozen=True)
class AliasMove:
    """Which versions hold `champion` and `previous` after a promotion or rollback."""

    champion: str
    previous: str | None

    @property
    def recovery_command(self) -> str:
        """The command that finishes this move by hand (it is idempotent)."""
        previous = f" --previous {self.previous}" if self.previous else ""
        return f"uv run pipelines set-aliases --champion {self.champion}{previous}"


class AliasMoveFailed(CannotRun):
    """The new version serves, but the registry did not take the alias move; the message says how to finish it."""


def plan_promotion(client: MlflowClient, name: str, version: str) -> AliasMove:
    """champion -> previous, `version` -> champion (a redeploy of the champion keeps `previous`)."""
    current = by_alias(client, name, CHAMPION)
    if current is not None and current.version != version:
        return AliasMove(champion=version, previous=current.version)
    previous = by_alias(client, name, PREVIOUS)
    return AliasMove(champion=version, previous=previous.version if previous else None)


def plan_rollback(client: MlflowClient, name: str) -> AliasMove | None:
    """`previous` serves again as champion, the demoted champion becomes `previous`; None without `previous`."""
    previous = by_alias(client, name, PREVIOUS)
    if previous is None:
        return None
    champion = require_alias(client, name, CHAMPION)
    return AliasMove(champion=previous.version, previous=champion.version)


def move_aliases(client: MlflowClient, name: str, move: AliasMove, *, attempts: int = 3, pause_s: float = 1.0) -> None:
    """Set the aliases to `move`; `challenger` is dropped once it serves. Idempotent, so a retry is safe.

    The champion moves first: whatever fails after it, the alias still names what serves.
    """
    for attempt in range(1, attempts + 1):
        try:
            client.set_registered_model_alias(name, CHAMPION, move.champion)
            if move.previous is not None:
                client.set_registered_model_alias(name, PREVIOUS, move.previous)
            challenger = by_alias(client, name, CHALLENGER)
            if challenger is not None and challenger.version == move.champion:
                client.delete_registered_model_alias(name, CHALLENGER)
            return
        except (MlflowException, OSError) as exc:
            if attempt == attempts:
                raise AliasMoveFailed(
                    f"v{move.champion} serves, but moving the aliases failed after {attempts} attempts ({exc}); "
                    f"finish it with: {move.recovery_command}") from None
            time.sleep(pause_s * attempt)


def aliases_of(client: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version for the registered model; empty before the first training run."""
    try:
        return dict(client.get_registered_model(name).aliases)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return {}
        raise
