"""Retrain requests: what DRIFT triggers, kept as tags on the registered model so the stack and a laptop share it.

A request is opened only on the verdict of the version that serves, the one aliased `champion`
(`services.contract.CHAMPION_ALIAS`), never on leftover traffic of a retired version; it records that version
and the data version it was trained on. One drift episode asks once: while a request is open, or within the
cooldown after the last one, DRIFT only reports.

A release closes the request (`close_retrain_request`) only if it acts on it: the released version was trained
after the request was opened, on a data version other than the drifted model's. A redeploy of a model trained
before the drift, or one retrained on the same data, leaves it open and says why.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.contract import CHAMPION_ALIAS, DATA_VERSION_TAG

REQUESTED_AT = "retrain_requested_at"
STATUS = "retrain_status"
REASON = "retrain_reason"
MONITORING_RUN = "retrain_monitoring_run_id"
DRIFTED_VERSION = "retrain_model_version"  # the champion whose drift asked
DRIFTED_DATA = "retrain_data_version"  # the data version that champion was trained on
CLOSED_BY = "retrain_closed_by_run_id"
OPEN, CLOSED = "requested", "done"
MAX_TAG_CHARS = 4000  # well under MLflow's tag value limit
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # no such alias or version; not an outage


@dataclass(frozen=True)
class RetrainRequest:
    requested_at: datetime
    is_open: bool
    reason: str
    monitoring_run_id: str
    model_version: str = ""  # the drifted champion ("" for a request opened before this was recorded)
    data_version: str = ""  # its training data version


@dataclass(frozen=True)
class Closure:
    """What a release did to the retrain request, and a short text saying so (the deploy prints it)."""

    closed: bool
    text: str


def retrain_due(now: datetime, last: RetrainRequest | None, cooldown: timedelta) -> bool:
    """A new request is due unless one is still open or the last one is younger than the cooldown."""
    if last is None:
        return True
    return not last.is_open and now - last.requested_at >= cooldown


def champion_version(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version aliased champion, or None when no version is."""
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return None
        raise


def last_retrain_request(client: MlflowClient, model_name: str) -> RetrainRequest | None:
    tags = client.get_registered_model(model_name).tags
    if REQUESTED_AT not in tags:
        return None
    try:
        requested_at = datetime.fromisoformat(tags[REQUESTED_AT])
    except ValueError:
        return None  # an unreadable tag must not block retraining forever
    return RetrainRequest(
        requested_at=requested_at if requested_at.tzinfo else requested_at.replace(tzinfo=UTC),
        is_open=tags.get(STATUS) == OPEN,
        reason=tags.get(REASON, ""),
        monitoring_run_id=tags.get(MONITORING_RUN, ""),
        model_version=tags.get(DRIFTED_VERSION, ""),
        data_version=tags.get(DRIFTED_DATA, ""),
    )


def open_retrain_request(
    client: MlflowClient, model_name: str, *, reason: str, monitoring_run_id: str, champion: ModelVersion
) -> None:
    for key, value in {
        REQUESTED_AT: datetime.now(UTC).isoformat(),
        STATUS: OPEN,
        REASON: reason[:MAX_TAG_CHARS],
        MONITORING_RUN: monitoring_run_id,
        DRIFTED_VERSION: champion.version,
        DRIFTED_DATA: champion.tags.get(DATA_VERSION_TAG, ""),
    }.items():
        client.set_registered_model_tag(model_name, key, value)


def request_retrain_if_due(
    client: MlflowClient,
    model_name: str,
    *,
    reason: str,
    monitoring_run_id: str,
    cooldown: timedelta,
    champion: ModelVersion,
) -> bool:
    """Open a request for the drifted champion unless this drift episode already has one; True if opened now."""
    if not retrain_due(datetime.now(UTC), last_retrain_request(client, model_name), cooldown):
        return False
    open_retrain_request(client, model_name, reason=reason, monitoring_run_id=monitoring_run_id, champion=champion)
    return True


def close_retrain_request(
    client: MlflowClient, model_name: str, *, released_version: str, closed_by_run_id: str
) -> Closure:
    """Close the open request if the released version acts on it (trained after it, on new data)."""
    last = last_retrain_request(client, model_name)
    if last is None or not last.is_open:
        return Closure(False, "none open")
    why_not = _why_it_stays_open(client, model_name, last, released_version)
    if why_not:
        return Closure(False, f"left open: {why_not}")
    client.set_registered_model_tag(model_name, STATUS, CLOSED)
    client.set_registered_model_tag(model_name, CLOSED_BY, closed_by_run_id)
    return Closure(True, f"closed by this release (v{released_version}: trained after the request, on new data)")


def _why_it_stays_open(
    client: MlflowClient, model_name: str, request: RetrainRequest, released_version: str
) -> str | None:
    released = client.get_model_version(model_name, released_version)
    trained_at = _training_started(client, released)
    if trained_at <= request.requested_at:
        return (
            f"v{released_version} was trained before the request ({request.requested_at:%Y-%m-%d %H:%M} UTC); "
            "train on new data and deploy that"
        )
    drifted_version, drifted_data = _drifted(client, model_name, request)
    released_data = released.tags.get(DATA_VERSION_TAG, "")
    if not released_data:
        return f"v{released_version} records no '{DATA_VERSION_TAG}' tag, so it cannot be told from the drifted data"
    if released_data == drifted_data:
        return (
            f"v{released_version} was trained on the same data ({released_data[:12]}) as the drifted "
            f"v{drifted_version}; train on newer data and deploy that"
        )
    return None


def _training_started(client: MlflowClient, version: ModelVersion) -> datetime:
    """When the version's training run started (its registration time if it records no run)."""
    millis = version.creation_timestamp
    if version.run_id:
        with contextlib.suppress(MlflowException):
            millis = client.get_run(version.run_id).info.start_time or millis
    return datetime.fromtimestamp(millis / 1000, UTC)


def _drifted(client: MlflowClient, model_name: str, request: RetrainRequest) -> tuple[str, str]:
    """(version, data version) of the model whose drift opened the request; older requests via their report run."""
    if request.model_version and request.data_version:
        return request.model_version, request.data_version
    try:
        version = client.get_run(request.monitoring_run_id).data.tags.get("model_version", "")
        data = client.get_model_version(model_name, version).tags.get(DATA_VERSION_TAG, "") if version else ""
    except MlflowException:
        return request.model_version or "?", ""
    return version or "?", data
