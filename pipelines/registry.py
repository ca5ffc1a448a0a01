"""The MLflow model registry as the release's source of truth: versions, aliases, promotion, rollback.

Aliases: `challenger` = newest trained candidate, `champion` = what serves, `previous` = what served before.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.config import REPO_ROOT, TRACKING_URI_ENV, PipelineConfig

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous"


class RegistryError(RuntimeError):
    """A model version or alias the step needs is not in the registry."""


def connect(config: PipelineConfig) -> MlflowClient:
    """Point MLflow at the configured tracking server and return a client."""
    users_choice = os.environ.get(TRACKING_URI_ENV)
    mlflow.set_tracking_uri(config.tracking.resolved_uri)
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
class AliasMove:
    """Which versions hold `champion` and `previous` after a promotion or rollback."""

    champion: str
    previous: str | None


def promote(client: MlflowClient, name: str, version: str) -> AliasMove:
    """champion -> previous, `version` -> champion; `challenger` is dropped once it serves."""
    current = by_alias(client, name, CHAMPION)
    if current is not None and current.version != version:
        client.set_registered_model_alias(name, PREVIOUS, current.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    challenger = by_alias(client, name, CHALLENGER)
    if challenger is not None and challenger.version == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    previous = by_alias(client, name, PREVIOUS)
    return AliasMove(champion=version, previous=previous.version if previous else None)


def swap_back(client: MlflowClient, name: str) -> AliasMove:
    """Rollback: `previous` serves again as champion, the demoted champion becomes `previous`."""
    previous = require_alias(client, name, PREVIOUS)
    champion = require_alias(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.set_registered_model_alias(name, PREVIOUS, champion.version)
    return AliasMove(champion=previous.version, previous=champion.version)


def aliases_of(client: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version for the registered model; empty before the first training run."""
    try:
        return dict(client.get_registered_model(name).aliases)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return {}
        raise
