"""Deploy and rollback, health-gated: aliases move only after the new server answers a smoke request.

A release hands one built bento to a serving target (`ServingTarget`): `pipelines.local.LocalTarget`
(the embedded default) or `pipelines.stack.StackTarget` (the Pulumi stack). The target serves it and
checks it with a smoke request from the version's own frozen eval set, or raises `DeployError` with the
old server still serving. Only then do the aliases move. Every attempt, failed or not, leaves audit
records (`pipelines.audit`). One release at a time per state dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx
from mlflow.tracking import MlflowClient

from pipelines.audit import AuditTrail, Written
from pipelines.bento import BuiltBento, build
from pipelines.canary import Verdict
from pipelines.config import PipelineConfig
from pipelines.data import to_records
from pipelines.errors import CannotRun, Refused
from pipelines.model_card import note_fact
from pipelines.platform import PROBE_TIMEOUT_S, PlatformError, request
from pipelines.registry import (
    CHALLENGER,
    PASSED,
    RETIRED_TAG,
    VALIDATION_OVERRIDE_TAG,
    VALIDATION_TAG,
    AliasMove,
    AliasMoveFailed,
    connect,
    move_aliases,
    plan_promotion,
    plan_rollback,
    refuse_retired,
    require_alias,
    resolve,
)
from pipelines.serving_state import Deployment
from services.contract import REQUEST_ID_HEADER, SMOKE_TOKEN_HEADER
from services.monitoring.retrain import close_retrain_request

SMOKE_ROWS = 5


class DeployError(Refused):
    """The new server did not become healthy; nothing moved."""

    step = "deploy"


@dataclass(frozen=True)
class DeployResult:
    deployment: Deployment
    aliases: AliasMove
    audit_run_id: str
    audit_url: str
    retrain_request: str = ""  # what the release did to monitoring's retrain request, in a few words
    canary: Verdict | None = None  # the canary analysis, when the release went through one


class CanaryAborted(DeployError):
    """The canary analysis said no: the candidate was removed, the champion keeps all traffic."""


class ServesUnrecorded(CannotRun):
    """The new version serves, but the target's record of what serves (a stack's release pointer) could not be
    written: the release must not say it failed. `finish` holds the `set-aliases` options that write it."""

    def __init__(self, deployment: Deployment, reason: str, finish: str) -> None:
        super().__init__(reason)
        self.deployment, self.finish = deployment, finish


class ServingTarget(Protocol):
    """Where a release serves.

    `roll_out` serves the bento and passes `check_serving` with the smoke rows, or raises `DeployError`
    (or `PlatformError`) leaving the old server serving, or `ServesUnrecorded` when it serves unrecorded.
    """

    name: str

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment: ...


@runtime_checkable
class CanaryTarget(ServingTarget, Protocol):
    """A target that can serve a candidate beside the champion and judge it (`pipelines.canary`).

    `roll_out_canary` returns the deployment after promoting it, or None (candidate removed, champion
    serving as before), with the analysis either way.
    """

    def roll_out_canary(self, bento: BuiltBento, smoke: list[dict], percent: int) -> tuple[Deployment | None, Verdict]:
        ...


def deploy(config: PipelineConfig, bento: BuiltBento, target: ServingTarget,
           canary_percent: int | None = None) -> DeployResult:
    """Serve a validated `@challenger` bento, then promote it: champion -> previous, challenger -> champion.

    With `canary_percent`, the bento first serves that share of requests beside the champion and is
    promoted only if the canary analysis says so (the target must be a `CanaryTarget`).
    """
    if canary_percent is not None and not isinstance(target, CanaryTarget):
        raise DeployError(f"a canary release needs the stack target (TARGET=stack); {target.name} has no front "
                          "that splits traffic")
    client = connect(config)
    with release_lock(config):
        # Read again under the lock: the alias or the gate's verdict may have changed since the bento was built.
        challenger = require_alias(client, config.model_name, CHALLENGER)
        if challenger.version != bento.model_version:
            raise DeployError(
                f"bento {bento.tag} holds v{bento.model_version} but @challenger is v{challenger.version}")
        refuse_retired(config.model_name, challenger.version, challenger.tags.get(RETIRED_TAG, ""), "deploy")
        if challenger.tags.get(VALIDATION_TAG) != PASSED:
            raise DeployError(f"v{challenger.version} has not passed the gate (`make validate`)")
        override = challenger.tags.get(VALIDATION_OVERRIDE_TAG)
        waiver = {"gate_override": override} if override else {}
        move = plan_promotion(client, config.model_name, bento.model_version)
        result = _release(client, config, bento, target, "deploy", move, waiver, canary_percent)
    # Monitoring's retrain request is closed only by a model trained after it on new data; else it stays open.
    closure = close_retrain_request(client, config.monitoring.experiment, config.model_name,
                                    released_version=bento.model_version, closed_by_run_id=result.audit_run_id)
    return dataclasses.replace(result, retrain_request=closure.text)


def rollback(config: PipelineConfig, target: ServingTarget) -> DeployResult:
    """Serve `@previous` again and swap the champion and previous aliases back."""
    client = connect(config)
    with release_lock(config):
        move = plan_rollback(client, config.model_name)
        if move is None:
            raise DeployError(f"nothing to roll back to: model '{config.model_name}' has no @previous yet "
                              "(it is set by the second release)")
        bento = build(config, resolve(client, config.model_name, version=move.champion))
        return _release(client, config, bento, target, "rollback", move)


_held_locks = threading.local()  # the release locks this thread holds


@contextlib.contextmanager
def release_lock(config: PipelineConfig) -> Iterator[None]:
    """One deploy or rollback at a time per state dir, from its gate to its alias move: two would race in the
    bento store, for the port and for the aliases. A second is refused at once rather than queued behind a
    release it knows nothing of. The thread holding the lock may take it again (a release, then its deploy)."""
    path = config.platform.state_dir / "run" / "release.lock"
    held: set[Path] = vars(_held_locks).setdefault("paths", set())
    if path in held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeployError(f"another deploy or rollback is running (lock {path}); try again when it ends") from None
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)


def check_serving(url: str, bento: BuiltBento, smoke: list[dict], where_to_look: str,
                  headers: Mapping[str, str] | None = None, server_name: str | None = None) -> None:
    """The smoke request every target must pass: 200, one prediction per row, from the bento's model version.

    `headers` carry what the server needs to know it is a release check (the smoke token, which keeps the
    rows out of monitoring) and, with access control on, the serving credential; `server_name` is the name
    the URL's server answers TLS as (`pipelines.platform.request`).
    """
    try:
        response = request("POST", f"{url}/predict", max(PROBE_TIMEOUT_S, 30.0),
                           {REQUEST_ID_HEADER: f"release-check-{uuid.uuid4()}", **(headers or {})}, server_name,
                           json={"rows": smoke})
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


def canary_words(canary_percent: int | None) -> str:
    return f" (canary {canary_percent}%)" if canary_percent is not None else ""


def release_check_headers(smoke_token: str | None, serving_token: str | None) -> dict[str, str]:
    """The headers of a release's own requests to a server: its smoke token and the serving credential."""
    headers = {SMOKE_TOKEN_HEADER: smoke_token} if smoke_token else {}
    return {**headers, "authorization": f"Bearer {serving_token}"} if serving_token else headers


def _release(
    client: MlflowClient, config: PipelineConfig, bento: BuiltBento, target: ServingTarget, action: str,
    move: AliasMove, extra_audit: dict[str, str] | None = None, canary_percent: int | None = None,
) -> DeployResult:
    """Roll out, then move the aliases; an audit record before the rollout ("in progress"), one with how it ended.
    `client`: the registry the release read its aliases from, which it writes the outcome to."""
    model = bento.model
    smoke = to_records(model.holdout[model.data.features].head(SMOKE_ROWS))
    canary = {"canary_percent": str(canary_percent)} if canary_percent is not None else {}
    audit = AuditTrail.of(config, client)
    facts = {"target": target.name, "bento_tag": bento.tag, **model.labels, **(extra_audit or {}), **canary,
             "planned_champion": move.champion, "planned_previous": move.previous or ""}
    audit.write(action, model.version, "in progress", **facts)  # a release that dies halfway still says so

    def ended(outcome: str, **details: str) -> tuple[Written | None, str]:
        written, unrecorded = audit.write_or_say(action, model.version, outcome, **facts, **details)
        if written is not None:  # else MLflow is not answering: the card would not be written either
            note_fact(client, model, f"{action} to {target.name}{canary_words(canary_percent)}: {outcome}"
                      f"{'; ' + details['reason'] if 'reason' in details else ''}")
        return written, unrecorded

    verdict = None
    try:
        if canary_percent is None:
            deployment: Deployment | None = target.roll_out(bento, smoke)
        else:
            assert isinstance(target, CanaryTarget)  # deploy() checked
            deployment, verdict = target.roll_out_canary(bento, smoke, canary_percent)
    except (DeployError, PlatformError) as exc:
        _, unrecorded = ended("failed", reason=str(exc).splitlines()[0][:500])
        raise DeployError(f"{exc}{unrecorded}") from None
    except ServesUnrecorded as exc:  # as an alias move that did not finish: it serves, one command finishes it
        recovery = f"{move.recovery_command} {exc.finish}"
        _, unrecorded = ended("serving, pointer not recorded", url=exc.deployment.url, recovery=recovery)
        raise AliasMoveFailed(f"v{move.champion} serves on {target.name} but its release pointer was not recorded "
                              f"({exc}); finish with: {recovery}{unrecorded}") from None
    analysis = verdict.figures.as_tags() if verdict is not None else {}
    if deployment is None:
        assert verdict is not None
        reasons = "; ".join(verdict.failures)
        _, unrecorded = ended("canary aborted", reason=reasons[:500], **analysis)
        raise CanaryAborted(f"canary aborted, v{move.previous or 'none'} keeps serving: {reasons}{unrecorded}")
    try:
        move_aliases(client, config.model_name, move)
    except AliasMoveFailed as exc:
        # Its message carries the recovery command: an audit that cannot be written (MLflow down) must not hide it.
        _, unrecorded = ended("serving, aliases not moved", url=deployment.url, recovery=move.recovery_command,
                              **analysis)
        raise AliasMoveFailed(f"{exc}{unrecorded}") from None
    # It serves and the aliases moved: the release is done, so a record that cannot be written is only said.
    written, unrecorded = audit.write_or_say(action, model.version, "serving", **facts, url=deployment.url,
                                             champion=move.champion, previous=move.previous or "", **analysis)
    figures = ", ".join(f"{key}={value}" for key, value in sorted(analysis.items()))
    note_fact(client, model, f"{action} to {target.name}{canary_words(canary_percent)}: serving at {deployment.url} "
              f"as @champion (previous: {'v' + move.previous if move.previous else 'none'})"
              + (f"; canary figures {figures}" if figures else ""))
    return DeployResult(deployment=deployment, aliases=move, audit_run_id=written.run_id if written else "",
                        audit_url=written.url if written else unrecorded.strip(" ()"), canary=verdict)
