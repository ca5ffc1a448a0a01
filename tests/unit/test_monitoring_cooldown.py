"""One drift episode asks for one retrain: open requests and the cooldown hold back repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitoring.retrain import RetrainRequest, retrain_due

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def request(age: timedelta, *, is_open: bool) -> RetrainRequest:
    return RetrainRequest(requested_at=NOW - age, is_open=is_open, run_id="run")


@pytest.mark.parametrize(
    ("last", "due"),
    [
        (None, True),  # first drift ever
        (request(timedelta(minutes=5), is_open=True), False),  # same episode, not yet acted on
        (request(timedelta(days=3), is_open=True), False),  # still open: a release has not run yet
        (request(timedelta(minutes=5), is_open=False), False),  # just retrained: give the new model a chance
        (request(HOUR, is_open=False), True),  # cooldown over and drift persists: a new episode
        (request(2 * HOUR, is_open=False), True),
    ],
)
def test_retrain_due(last, due):
    assert retrain_due(NOW, last, HOUR) is due


def test_zero_cooldown_still_waits_for_the_open_request():
    assert retrain_due(NOW, request(timedelta(0), is_open=False), timedelta(0)) is True
    assert retrain_due(NOW, request(timedelta(0), is_open=True), timedelta(0)) is False


def test_consecutive_drift_runs_ask_once():
    """Drift seen every 5 minutes for 3 hours, a release closing each request 30 minutes after it opens."""
    last: RetrainRequest | None = None
    asked = []
    for minute in range(0, 180, 5):
        now = NOW + timedelta(minutes=minute)
        if last and last.is_open and now - last.requested_at >= timedelta(minutes=30):
            last = RetrainRequest(last.requested_at, False, last.run_id)
        if retrain_due(now, last, HOUR):
            last = RetrainRequest(now, True, f"run-{minute}")
            asked.append(minute)
    assert asked == [0, 60, 120]


def test_a_release_whose_login_cannot_write_the_request_leaves_it_open_without_failing(monkeypatch):
    """Closing tags the monitoring user's run: a deploy login without EDIT there is refused (403). The release
    has already served and moved its aliases, so the request stays open and the deploy says so."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    from services.monitoring import retrain

    opened = SimpleNamespace(info=SimpleNamespace(run_id="report-run"), data=SimpleNamespace(tags={
        retrain.REQUESTED_AT: (NOW - HOUR).isoformat(), retrain.STATUS: retrain.OPEN}))

    class RefusesWrites:
        def get_experiment_by_name(self, name):
            return SimpleNamespace(experiment_id="7")

        def search_runs(self, *args, **kwargs):
            return [opened]

        def log_batch(self, *args, **kwargs):
            raise MlflowException("Permission denied", error_code=PERMISSION_DENIED)

    monkeypatch.setattr(retrain, "_why_it_stays_open", lambda *args: None)  # the release acts on the request
    closure = retrain.close_retrain_request(RefusesWrites(), "monitoring", "m", released_version="3",
                                            closed_by_run_id="audit")
    assert not closure.closed
    assert closure.text.startswith("left open:") and "Permission denied" in closure.text
