"""Retrain requests: what DRIFT triggers, kept as tags on the report run that asked, so the stack and a laptop share it.

A request lives in the monitoring experiment, on the report run of the drifted window (tag `retrain_requested=true`
beside the request's own tags), not on the registered model: the monitoring job's MLflow user may write only
its own experiment and reads the registry, so it cannot touch what a release trusts (the gate's tags, the aliases).

A request is opened only on the verdict of the version that serves, the one aliased `champion`
(`services.contract.CHAMPION_ALIAS`), never on leftover traffic of a retired version; its run records that
version and the data version it was trained on. One drift episode asks once: while a request is open, or within
the cooldown after the last one, DRIFT only reports.

A release closes the request (`close_retrain_request`) only if it acts on it: the released version was trained
after the request was opened, on a data version other than the drifted model's. A redeploy of a model trained
before the drift, or one retrained on the same data, leaves it open and says why.

An opened request is also a record of the model's audit chain (`audit_retrain_request`), written by the job's
own MLflow user in the shape every release step writes (services/audit_store.py).
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlflow.entities import RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import read_mlflow_creds

from services.audit_store import MlflowAuditStore, write_record
from services.contract import CHAMPION_ALIAS, DATA_VERSION_TAG
from services.contract import REPORT_MODEL_TAG as MODEL_NAME  # every report run's tags (records.py)
from services.contract import REPORT_VERSION_TAG as MODEL_VERSION
from services.contract import RETRAIN_OPEN as OPEN
from services.contract import RETRAIN_REQUESTED_AT_TAG as REQUESTED_AT
from services.contract import RETRAIN_REQUESTED_TAG as REQUESTED  # "false" on other DRIFT runs
from services.contract import RETRAIN_STATUS_TAG as STATUS

DRIFTED_DATA = "retrain_data_version"  # the data version the drifted champion was trained on
CLOSED_BY = "retrain_closed_by_run_id"
CLOSED = "done"
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # no such alias or version; not an outage


@dataclass(frozen=True)
class RetrainRequest:
    requested_at: datetime
    is_open: bool
    run_id: str  # the report run that asked, which holds the request
    model_version: str = ""  # the drifted champion
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


def last_retrain_request(client: MlflowClient, experiment: str, model_name: str) -> RetrainRequest | None:
    """The model's newest request in the monitoring experiment named `experiment`, or None."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.{MODEL_NAME} = '{model_name}' and tags.{REQUESTED} = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    tags = runs[0].data.tags
    try:
        requested_at = datetime.fromisoformat(tags.get(REQUESTED_AT, ""))
    except ValueError:
        return None  # an unreadable tag must not block retraining forever
    return RetrainRequest(
        requested_at=requested_at if requested_at.tzinfo else requested_at.replace(tzinfo=UTC),
        is_open=tags.get(STATUS) == OPEN,
        run_id=runs[0].info.run_id,
        model_version=tags.get(MODEL_VERSION, ""),
        data_version=tags.get(DRIFTED_DATA, ""),
    )


def open_retrain_request(client: MlflowClient, report_run_id: str, *, champion: ModelVersion) -> None:
    """Mark the champion's report run as a request, all tags in one call: a request is whole or absent."""
    tags = {
        REQUESTED_AT: datetime.now(UTC).isoformat(),
        STATUS: OPEN,
        DRIFTED_DATA: champion.tags.get(DATA_VERSION_TAG, ""),
        REQUESTED: "true",
    }
    client.log_batch(report_run_id, tags=[RunTag(key, value) for key, value in tags.items()])


def request_retrain_if_due(
    client: MlflowClient,
    experiment: str,
    *,
    report_run_id: str,
    cooldown: timedelta,
    champion: ModelVersion,
) -> bool:
    """Open a request for the drifted champion unless this drift episode already has one; True if opened now."""
    if not retrain_due(datetime.now(UTC), last_retrain_request(client, experiment, champion.name), cooldown):
        return False
    open_retrain_request(client, report_run_id, champion=champion)
    return True


def audit_retrain_request(client: MlflowClient, tracking_uri: str, model_name: str, *, version: str, verdict: str,
                          reason: str, drifted_columns: list[str], report_run_id: str, report_url: str,
                          who: Mapping[str, str] | None = None) -> str:
    """The opened request as an audit record naming `who` (by default the job's MLflow user); "" when written, else
    why not (the request itself, on the report run, stands: a record that cannot be written never fails the run)."""
    try:  # naming the writer may fail too (an unreadable credentials file, a uid without a passwd entry)
        who = who or {"who": read_mlflow_creds().username or getpass.getuser(), "via": "monitoring job"}
        write_record(MlflowAuditStore(client, tracking_uri), model_name, who, "retrain-request", version, "opened",
                     verdict=verdict, reason=reason, drifted_columns=", ".join(drifted_columns),
                     report_run_id=report_run_id, report_url=report_url)
    except Exception as exc:  # noqa: BLE001  MLflow down or refusing (a user without EDIT on `audit`): say so
        return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    return ""


def close_retrain_request(
    client: MlflowClient, experiment: str, model_name: str, *, released_version: str, closed_by_run_id: str
) -> Closure:
    """Close the open request if the released version acts on it (trained after it, on new data)."""
    last = last_retrain_request(client, experiment, model_name)
    if last is None or not last.is_open:
        return Closure(False, "none open")
    why_not = _why_it_stays_open(client, model_name, last, released_version)
    if why_not:
        return Closure(False, f"left open: {why_not}")
    try:
        client.log_batch(last.run_id, tags=[RunTag(STATUS, CLOSED), RunTag(CLOSED_BY, closed_by_run_id)])
    except MlflowException as exc:  # e.g. a deploy login without EDIT on the monitoring experiment: 403
        # The release has served and moved its aliases by now; a request left open only asks again.
        return Closure(False, f"left open: MLflow refused to close it ({exc.message.splitlines()[0]})")
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
    released_data = released.tags.get(DATA_VERSION_TAG, "")
    if not released_data:
        return f"v{released_version} records no '{DATA_VERSION_TAG}' tag, so it cannot be told from the drifted data"
    if released_data == request.data_version:
        return (
            f"v{released_version} was trained on the same data ({released_data[:12]}) as the drifted "
            f"v{request.model_version}; train on newer data and deploy that"
        )
    return None


def _training_started(client: MlflowClient, version: ModelVersion) -> datetime:
    """When the version's training run started (its registration time if it records no run)."""
    millis = version.creation_timestamp
    if version.run_id:
        with contextlib.suppress(MlflowException):
            millis = client.get_run(version.run_id).info.start_time or millis
    return datetime.fromtimestamp(millis / 1000, UTC)
