"""Steady client load during a release: the measure of "a release drops no request".

`SteadyLoad` runs a few client workers, each sending valid one-row `/predict` requests over its own
kept-alive connection for as long as the block runs, and checks every answer (200, the row's
prediction, a model version). Each test's figures go to the end-of-run summary ("release load"),
so a CI log says how many requests each scenario sent, how many failed and which versions answered.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import pytest

ROW = {"age": 41, "income": 52000.0, "loan_amount": 12000.0, "credit_score": 690, "debt_ratio": 0.31,
       "employment": "salaried", "region": "east", "purpose": "car"}
_REPORTS: list[str] = []


@dataclass
class SteadyLoad:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    rows: Sequence[dict] = (ROW,)  # sent one per request, in turn
    workers: int = 4
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    # Per version, when it first and last answered (monotonic seconds): the switch is where they overlap.
    first_seen: dict[str, float] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]

    def __enter__(self) -> SteadyLoad:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        self.seconds = time.monotonic() - self.started

    def _worker(self) -> None:
        rows = itertools.cycle(self.rows)
        with httpx.Client(timeout=60, headers=dict(self.headers)) as client:
            while not self._stop.is_set():
                self._record(*self._one(client, next(rows)))

    def _one(self, client: httpx.Client, row: dict) -> tuple[str | None, str | None]:
        """(model version, None) for a good answer, (None, what went wrong) otherwise."""
        try:
            response = client.post(f"{self.url}/predict", json={"rows": [row]})
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return None, f"{response.status_code} {response.text[:200]}"
        body = response.json()
        if len(body.get("predictions", [])) != 1 or not body.get("model_version"):
            return None, f"200 without one prediction and a model version: {response.text[:200]}"
        return str(body["model_version"]), None

    def _record(self, version: str | None, failure: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            self.sent += 1
            if failure is not None:
                self.failures.append(failure)
                return
            self.versions[version] += 1
            self.first_seen.setdefault(version, now)
            self.last_seen[version] = now

    def wait_for_answers(self, count: int = 20, timeout_s: float = 60) -> None:
        """Block until the load has had `count` answers, so a release starts under load."""
        deadline = time.monotonic() + timeout_s
        while self.sent < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def overlap_seconds(self, old: str, new: str) -> float:
        """How long both versions answered: from the new one's first answer to the old one's last."""
        if old not in self.last_seen or new not in self.first_seen:
            return 0.0
        return max(0.0, self.last_seen[old] - self.first_seen[new])

    def report(self, scenario: str, old: str, new: str) -> str:
        versions = ", ".join(f"v{version}: {count}" for version, count in sorted(self.versions.items()))
        line = (f"{scenario}: {self.sent} requests in {self.seconds:.1f} s by {self.workers} clients, "
                f"{len(self.failures)} failed; answered by {versions}; v{old} and v{new} both answered for "
                f"{self.overlap_seconds(old, new):.2f} s")
        _REPORTS.append(line)
        return line


@contextlib.contextmanager
def under_load(url: str, scenario: str, old: str, new: str, rows: Sequence[dict] = (ROW,),
               headers: Mapping[str, str] | None = None) -> Iterator[SteadyLoad]:
    """Steady clients on `url` for the whole block (started before it, running on after it), each request with
    `headers`; then the figures go to the summary and not one request may have failed."""
    with SteadyLoad(url, headers=headers or {}, rows=rows) as load:
        load.wait_for_answers()
        yield load
        load.wait_for_answers(load.sent + 20)
    print(load.report(scenario, old, new))
    assert load.failures == [], load.failures[:5]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORTS:
        terminalreporter.section("release load")
        for line in _REPORTS:
            terminalreporter.line(line)
