"""Deploy and rollback, health-gated: aliases move only after the new server answers a smoke request.

A release hands one built bento to a serving target (`ServingTarget`): `pipelines.local.LocalTarget`
(the embedded default) or `pipelines.stack.StackTarget` (the Pulumi stack). The target serves it and
checks it with a smoke request from the version's own frozen eval set, or raises `DeployError` with the
old server still serving. Only then do the aliases move. Every attempt, failed or not, leaves an audit
run in MLflow. One release at a time per state dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import getpass
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
import mlflow
from mlflow.entities import RunInfo

from pipelines.bento import BuiltBento, build
from pipelines.config import PipelineConfig
from pipelines.data import to_records
from pipelines.errors import Refused
from pipelines.platform import PROBE_TIMEOUT_S, PlatformError
from pipelines.registry import (
    CHALLENGER,
    PASSED,
    PREVIOUS,
    VALIDATION_TAG,
    AliasMove,
    connect,
    git_sha,
    promote,
    require_alias,
    resolve,
    swap_back,
)
from services.contract import REQUEST_ID_HEADER, SMOKE_REQUEST_PREFIX
from services.monitoring.retrain import close_retrain_request

AUDIT_EXPERIMENT = "deployments"
SMOKE_ROWS = 5


class DeployError(Refused):
    """The new server did not become healthy; nothing moved."""

    step = "deploy"


@dataclass(frozen=True)
class Deployment:
    """What serves where after a rollout."""

    bento_tag: str
    model_version: str
    url: str
    started_at: str


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    aliases: AliasMove
    audit_run_id: str
    audit_url: str
    retrain_request_closed: bool = False


class ServingTarget(Protocol):
    """Where a release serves.

    `roll_out` serves the bento and passes `check_serving` with the smoke rows, or raises `DeployError`
    (or `PlatformError`) leaving the old server serving.
    """

    name: str

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment: ...


def deploy(config: PipelineConfig, bento: BuiltBento, target: ServingTarget) -> DeployResult:
    """Serve a validated `@challenger` bento, then promote it: champion -> previous, challenger -> champion."""
    client = connect(config)
    with release_lock(config):
        # Read again under the lock: the alias or the gate's verdict may have changed since the bento was built.
        challenger = require_alias(client, config.model_name, CHALLENGER)
        if challenger.version != bento.model_version:
            raise DeployError(
                f"bento {bento.tag} holds v{bento.model_version} but @challenger is v{challenger.version}")
        if challenger.tags.get(VALIDATION_TAG) != PASSED:
            raise DeployError(f"v{challenger.version} has not passed the gate (`make validate`)")
        result = _release(config, bento, target, "deploy",
                          lambda: promote(client, config.model_name, bento.model_version))
    # A freshly trained release is what monitoring's retrain request asked for.
    closed = close_retrain_request(client, config.model_name, closed_by_run_id=result.audit_run_id)
    return dataclasses.replace(result, retrain_request_closed=closed)


def rollback(config: PipelineConfig, target: ServingTarget) -> DeployResult:
    """Serve `@previous` again and swap the champion and previous aliases back."""
    client = connect(config)
    with release_lock(config):
        bento = build(config, resolve(client, config.model_name, alias=PREVIOUS))
        return _release(config, bento, target, "rollback", lambda: swap_back(client, config.model_name))


@contextlib.contextmanager
def release_lock(config: PipelineConfig) -> Iterator[None]:
    """One deploy or rollback at a time per state dir: two would race for the port and the aliases."""
    path = config.platform.state_dir / "run" / "release.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another deploy or rollback is running (lock {path}); try again when it ends") from None
        yield


def check_serving(url: str, bento: BuiltBento, smoke: list[dict], where_to_look: str) -> None:
    """The smoke request every target must pass: 200, one prediction per row, from the bento's model version."""
    try:
        response = httpx.post(f"{url}/predict", json={"rows": smoke}, timeout=max(PROBE_TIMEOUT_S, 30.0),
                              headers={REQUEST_ID_HEADER: f"{SMOKE_REQUEST_PREFIX}{uuid.uuid4()}"})
    except httpx.HTTPError as exc:
        raise DeployError(f"smoke request to {url}/predict failed: {exc}") from None
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or body.get("model_version") != bento.model_version:
        raise DeployError(
            f"smoke request to {url}/predict answered {response.status_code} {response.text[:300]!r}; "
            f"expected model_version {bento.model_version}; {where_to_look}"
        )
    if len(body.get("predictions", [])) != len(smoke):
        raise DeployError(f"smoke request got {len(body.get('predictions', []))} predictions for {len(smoke)} rows")


def _release(
    config: PipelineConfig, bento: BuiltBento, target: ServingTarget, action: str,
    move_aliases: Callable[[], AliasMove],
) -> DeployResult:
    model = bento.model
    smoke = to_records(model.holdout[model.data.features].head(SMOKE_ROWS))
    audit = {"action": action, "target": target.name, "bento_tag": bento.tag, **model.labels}
    try:
        deployment = target.roll_out(bento, smoke)
    except (DeployError, PlatformError) as exc:
        _audit(config, {**audit, "outcome": "failed", "reason": str(exc).splitlines()[0][:500]})
        raise DeployError(str(exc)) from None
    aliases = move_aliases()
    run = _audit(config, {**audit, "outcome": "serving", "url": deployment.url,
                          "champion": aliases.champion, "previous": aliases.previous or ""})
    return DeployResult(deployment=deployment, aliases=aliases, audit_run_id=run.run_id,
                        audit_url=f"{config.tracking.display_uri}/#/experiments/{run.experiment_id}/runs/{run.run_id}")


def _audit(config: PipelineConfig, record: dict[str, str]) -> RunInfo:
    """One run per deploy attempt in the `deployments` experiment: who, when, what, and how it went."""
    connect(config)
    experiment = mlflow.set_experiment(AUDIT_EXPERIMENT)
    tags = {"who": getpass.getuser(), "when": datetime.now(UTC).isoformat(), "deployer_git_sha": git_sha(),
            **{k: str(v) for k, v in record.items()}}
    with mlflow.start_run(experiment_id=experiment.experiment_id,
                          run_name=f"{record['action']} v{record['model_version']} {record['outcome']}") as run:
        mlflow.set_tags(tags)
        mlflow.log_dict(tags, "audit.json")
    return run.info
