"""Deploy and rollback, health-gated: aliases move only after the new server answers a smoke request.

Two targets roll a bento out. `LocalTarget` (the embedded default) first starts the new bento on a
spare port, waits for `/readyz` and sends a smoke request taken from the frozen eval set; only then does
it replace the server on the serving port. `StackTarget` builds a release image and applies the stack
with it, then checks the stack's serving URL the same way. If anything fails, the old server keeps (or
goes back to) serving and the aliases stay where they were. Every attempt, failed or not, leaves an
audit record in MLflow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import getpass
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
import mlflow
from mlflow.entities import RunInfo

from pipelines.bento import BuiltBento, build, use_store
from pipelines.config import PipelineConfig
from pipelines.data import HOLDOUT_ARTIFACT, load_snapshot, to_records
from pipelines.platform import PROBE_TIMEOUT_S, PlatformError, Process, free_port, port_in_use, url_ok, wait_until
from pipelines.registry import (
    CHALLENGER,
    PREVIOUS,
    AliasMove,
    connect,
    git_sha,
    promote,
    require_alias,
    swap_back,
)
from pipelines.stack import StackApplier, StackError, build_release_image
from pipelines.train import recorded_config
from services.monitoring.retrain import close_retrain_request

AUDIT_EXPERIMENT = "deployments"
SMOKE_ROWS = 5
SMOKE_REQUEST_PREFIX = "smoke-"  # monitoring skips these rows: they are not user traffic


class DeployError(RuntimeError):
    """The new server did not become healthy; nothing moved."""


@dataclass(frozen=True)
class Deployment:
    """What serves on the serving port; saved beside the pid file so a failed release can restore it."""

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


def serving_process(config: PipelineConfig) -> Process:
    return Process("serving", config.platform.state_dir)


def current_deployment(config: PipelineConfig) -> Deployment | None:
    state = _deployment_file(config)
    if serving_process(config).pid() is None or not state.exists():
        return None
    return Deployment(**json.loads(state.read_text()))


class Target(Protocol):
    """Where a release serves. `roll_out` serves the bento or raises, leaving the old server serving."""

    name: str

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment: ...


def deploy(config: PipelineConfig, bento: BuiltBento, target: Target | None = None) -> DeployResult:
    """Serve a validated `@challenger` bento, then promote it: champion -> previous, challenger -> champion."""
    client = connect(config)
    with release_lock(config):
        challenger = require_alias(client, config.model_name, CHALLENGER)
        if challenger.version != bento.model_version:
            raise DeployError(
                f"bento {bento.tag} holds v{bento.model_version} but @challenger is v{challenger.version}")
        if challenger.tags.get("validation") != "passed":
            raise DeployError(f"v{challenger.version} has not passed the gate (`make validate`)")
        result = _release(config, bento, target or LocalTarget(config), "deploy",
                          lambda: promote(client, config.model_name, bento.model_version))
    # A freshly trained release is what monitoring's retrain request asked for.
    closed = close_retrain_request(client, config.model_name, closed_by_run_id=result.audit_run_id)
    return dataclasses.replace(result, retrain_request_closed=closed)


def rollback(config: PipelineConfig, target: Target | None = None) -> DeployResult:
    """Serve `@previous` again and swap the champion and previous aliases back."""
    client = connect(config)
    with release_lock(config):
        previous = require_alias(client, config.model_name, PREVIOUS)
        bento = build(config, previous.version)
        return _release(config, bento, target or LocalTarget(config), "rollback",
                        lambda: swap_back(client, config.model_name))


def stop_serving(config: PipelineConfig) -> bool:
    _deployment_file(config).unlink(missing_ok=True)
    return serving_process(config).stop()


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


def _release(
    config: PipelineConfig, bento: BuiltBento, target: Target, action: str, move_aliases: Callable[[], AliasMove]
) -> DeployResult:
    smoke = _smoke_rows(config, bento)
    audit = {"action": action, "target": target.name, "bento_tag": bento.tag, **bento.labels}
    try:
        deployment = target.roll_out(bento, smoke)
    except (DeployError, PlatformError, StackError) as exc:
        _audit(config, {**audit, "outcome": "failed", "reason": str(exc).splitlines()[0][:500]})
        raise DeployError(str(exc)) from None
    aliases = move_aliases()
    run = _audit(config, {**audit, "outcome": "serving", "url": deployment.url,
                          "champion": aliases.champion, "previous": aliases.previous or ""})
    return DeployResult(deployment=deployment, aliases=aliases, audit_run_id=run.run_id,
                        audit_url=f"{config.tracking.display_uri}/#/experiments/{run.experiment_id}/runs/{run.run_id}")


class LocalTarget:
    """`bentoml serve` on this machine: rehearse on a spare port, then switch the serving port."""

    name = "local"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        self._rehearse(bento, smoke)
        return self._switch(bento, smoke)

    def _rehearse(self, bento: BuiltBento, smoke: list[dict]) -> None:
        """Start the new bento on a spare port, check it, stop it. The serving port is not touched."""
        config = self.config
        candidate = Process("serving-candidate", config.platform.state_dir)
        candidate.stop()
        port = free_port(config.platform.host)
        try:
            # Smoke traffic is not user traffic: keep it out of the inference log that monitoring reads.
            url = _start(config, candidate, bento, port, config.platform.state_dir / "smoke-inference")
            _check(url, bento, smoke, f"server log: {candidate.log_file}")
        finally:
            candidate.stop()

    def _switch(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        """Replace the server on the serving port; restore the old one if the new one fails there."""
        config = self.config
        serving = serving_process(config)
        old = current_deployment(config)
        serving.stop()
        try:
            _wait_port_free(config.platform.host, config.platform.serving_port)
            if port_in_use(config.platform.host, config.platform.serving_port):
                raise DeployError(f"port {config.platform.host}:{config.platform.serving_port} is taken by another "
                                  "program; stop it or set platform.serving_port")
            url = _start(config, serving, bento, config.platform.serving_port, config.platform.inference_log_dir)
            _check(url, bento, smoke, f"server log: {serving.log_file}")
        except (DeployError, PlatformError) as failure:
            serving.stop()
            if old is not None:
                self._restore(old, failure)
            raise
        deployment = Deployment(bento.tag, bento.model_version, url, datetime.now(UTC).isoformat())
        _save(config, deployment)
        return deployment

    def _restore(self, old: Deployment, failure: Exception) -> None:
        """Serve the previous bento again; if even that fails, say so without hiding why the release failed."""
        config = self.config
        try:
            _start(config, serving_process(config), _stored(config, old), config.platform.serving_port,
                   config.platform.inference_log_dir)
            _save(config, old)
        except Exception as exc:  # the release's own failure is the error to report; this one is added to it
            raise DeployError(f"{failure}\nand restoring {old.bento_tag} failed too: {exc}") from None


class StackTarget:
    """The Docker stack: a release image per version, applied through the stack config, checked over HTTP."""

    def __init__(self, config: PipelineConfig, stack: StackApplier, name: str = "stack") -> None:
        self.config = config
        self.stack = stack
        self.name = name

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        stack_config = self.stack.config()
        # What serves now; the stack's defaults mean the runtime image's "no model deployed" state.
        before = {"servingImage": stack_config.get("servingImage", ""),
                  "modelVersion": stack_config.get("modelVersion", "none")}
        image = build_release_image(self.config, bento, stack_config)
        try:
            url = self.stack.apply({"servingImage": image, "modelVersion": bento.model_version})["serving_url"]
            wait_until(lambda: url_ok(f"{url}/readyz"), None, self.config.platform.startup_timeout_s,
                       f"{image} at {url}")
            _check(url, bento, smoke, f"container logs: docker logs of the stack's serving container ({image})")
        except (DeployError, PlatformError, StackError):
            self.stack.apply(before)
            raise
        return Deployment(bento.tag, bento.model_version, url, datetime.now(UTC).isoformat())


def _start(config: PipelineConfig, process: Process, bento: BuiltBento, port: int, log_dir: Path) -> str:
    home = use_store(config)
    process.start(
        [sys.executable, "-m", "bentoml", "serve", bento.tag, "--host", config.platform.host, "--port", str(port)],
        env={"BENTOML_HOME": str(home), "INFERENCE_LOG_DIR": str(log_dir), "BENTOML_DO_NOT_TRACK": "true"},
    )
    url = f"http://{config.platform.host}:{port}"
    wait_until(lambda: url_ok(f"{url}/readyz"), process, config.platform.startup_timeout_s,
               f"bento {bento.tag} on {url}")
    return url


def _check(url: str, bento: BuiltBento, smoke: list[dict], where_to_look: str) -> None:
    try:
        response = httpx.post(f"{url}/predict", json={"rows": smoke}, timeout=max(PROBE_TIMEOUT_S, 30.0),
                              headers={"x-request-id": f"{SMOKE_REQUEST_PREFIX}{uuid.uuid4()}"})
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


def _smoke_rows(config: PipelineConfig, bento: BuiltBento) -> list[dict]:
    """A few rows of the version's own frozen eval set, as a client would send them."""
    holdout = load_snapshot(bento.labels["run_id"], HOLDOUT_ARTIFACT)
    features = recorded_config(bento.labels["run_id"]).data.features
    return to_records(holdout[features].head(SMOKE_ROWS))


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


def _deployment_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "serving.json"


def _save(config: PipelineConfig, deployment: Deployment) -> None:
    _deployment_file(config).write_text(json.dumps(asdict(deployment), indent=2))


def _stored(config: PipelineConfig, deployment: Deployment) -> BuiltBento:
    use_store(config)
    import bentoml

    bento = bentoml.get(deployment.bento_tag)
    return BuiltBento(deployment.bento_tag, deployment.model_version, Path(bento.path), dict(bento.info.labels), True)


def _wait_port_free(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_in_use(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)
