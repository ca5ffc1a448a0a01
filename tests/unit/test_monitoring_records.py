"""Where the next default window starts: the newest judged report per model version, over all report runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from mlflow.store.entities.paged_list import PagedList

from services.monitoring.records import last_judged_window_ends

START = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


class PagingClient:
    """MLflow's search_runs as the server answers it: one page of at most `max_results` runs and a token."""

    def __init__(self, runs: list[SimpleNamespace]) -> None:
        self.runs = runs  # newest first, as ordered by start time
        self.queries: list[str] = []

    def search_runs(self, experiment_ids, filter_string="", max_results=1000, order_by=None, page_token=None):
        self.queries.append(filter_string)
        start = int(page_token or 0)
        end = start + max_results
        return PagedList(self.runs[start:end], str(end) if end < len(self.runs) else None)


def report(version: str, end: datetime) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(tags={"model_version": version, "window_end": end.isoformat()}))


def test_the_last_report_of_every_version_is_found_beyond_the_first_page():
    """Item 5: a version whose last report is older than the newest page of runs keeps its bound."""
    busy = [report("2", START + timedelta(minutes=5 * (2000 - i))) for i in range(2000)]  # v2 every 5 minutes
    client = PagingClient([*busy, report("1", START), report("1", START - timedelta(days=1))])

    ends = last_judged_window_ends(client, "loans", "7")

    assert ends == {"2": START + timedelta(minutes=5 * 2000), "1": START}
    assert len(client.queries) == 3


def test_reports_older_than_the_retention_are_not_searched():
    client = PagingClient([report("1", START)])
    last_judged_window_ends(client, "loans", "7", started_after=START)
    since_ms = int(START.timestamp() * 1000)
    query = "tags.model_name = 'loans' and tags.judged = 'true'"
    assert client.queries == [f"{query} and attributes.start_time >= {since_ms}"]
    assert last_judged_window_ends(client, "loans", None) == {}
