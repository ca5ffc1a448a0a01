"""Retrain requests: what DRIFT triggers, kept as tags on the registered model so the stack and a laptop share it.

A request is open from `retrain_requested_at` until the release that acts on it (`make train deploy`) calls
`close_retrain_request`. One drift episode asks once: while a request is open, or within the cooldown after
the last one, DRIFT only reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlflow.tracking import MlflowClient

REQUESTED_AT = "retrain_requested_at"
STATUS = "retrain_status"
REASON = "retrain_reason"
MONITORING_RUN = "retrain_monitoring_run_id"
CLOSED_BY = "retrain_closed_by_run_id"
OPEN, CLOSED = "requested", "done"
MAX_TAG_CHARS = 4000  # well under MLflow's tag value limit


@dataclass(frozen=True)
class RetrainRequest:
    requested_at: datetime
    is_open: bool
    reason: str
    monitoring_run_id: str


def retrain_due(now: datetime, last: RetrainRequest | None, cooldown: timedelta) -> bool:
    """A new request is due unless one is still open or the last one is younger than the cooldown."""
    if last is None:
        return True
    return not last.is_open and now - last.requested_at >= cooldown


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
    )


def open_retrain_request(client: MlflowClient, model_name: str, *, reason: str, monitoring_run_id: str) -> None:
    for key, value in {
        REQUESTED_AT: datetime.now(UTC).isoformat(),
        STATUS: OPEN,
        REASON: reason[:MAX_TAG_CHARS],
        MONITORING_RUN: monitoring_run_id,
    }.items():
        client.set_registered_model_tag(model_name, key, value)


def close_retrain_request(client: MlflowClient, model_name: str, *, closed_by_run_id: str) -> bool:
    """Mark the open request as acted on (a release ran); False if none was open."""
    last = last_retrain_request(client, model_name)
    if last is None or not last.is_open:
        return False
    client.set_registered_model_tag(model_name, STATUS, CLOSED)
    client.set_registered_model_tag(model_name, CLOSED_BY, closed_by_run_id)
    return True


def request_retrain_if_due(
    client: MlflowClient, model_name: str, *, reason: str, monitoring_run_id: str, cooldown: timedelta
) -> bool:
    """Open a request unless this drift episode already has one; True if one was opened now."""
    if not retrain_due(datetime.now(UTC), last_retrain_request(client, model_name), cooldown):
        return False
    open_retrain_request(client, model_name, reason=reason, monitoring_run_id=monitoring_run_id)
    return True
