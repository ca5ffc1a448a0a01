"""The canary's answers from the stack's Prometheus: what the champion and the candidate answered on /predict.

Two instant PromQL queries over the window since the canary started (`increase` over `[<seconds>s]`, reaching
back `LOOKBACK_S` before it): the requests per model version and status code, and p99 of the response time per
version, from BentoML's own metrics of each serving container joined with the server's `serving_model_info`
(which names its model and version; services/prometheus/rules do the same). BentoML sets a server's counters
to 0 at its first request (a health probe), so a canary's requests count from its start. A release's own
routed checks of the canary (a handful of requests) count here, where the front's log counted users' only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from pipelines.canary import CANDIDATE, CHAMPION, Answers, CanaryError
from services.contract import MODEL_INFO_METRIC

_JOIN = f'* on (instance) group_left (model_version) {MODEL_INFO_METRIC}{{{{model_name="{{model}}"}}}}'
REQUESTS_QUERY = ('sum by (model_version, http_response_code) ('
                  'increase(bentoml_service_request_total{{endpoint="/predict"}}[{seconds}s]) ' + _JOIN + ')')
P99_QUERY = ('histogram_quantile(0.99, sum by (le, model_version) ('
             'increase(bentoml_service_request_duration_seconds_bucket{{endpoint="/predict"}}[{seconds}s]) '
             + _JOIN + '))')
# `increase` counts only between samples inside its range: the range reaches back two scrape intervals (5 s)
# before the canary started, so the last sample before it is the baseline (seen: a short load between two
# scrapes counted 1 of 120 requests without it). The champion's figures may take in those seconds too.
LOOKBACK_S = 10


@dataclass(frozen=True)
class PrometheusAnswers:
    """Called by `canary.DockerWindow` each poll: (answers, results it could not read)."""

    url: str  # the stack's `prometheus_url` output
    model_name: str
    versions: dict[str, str]  # role -> model version
    since: datetime

    def __call__(self) -> tuple[Answers, int]:
        seconds = math.ceil((datetime.now(UTC) - self.since).total_seconds()) + LOOKBACK_S
        names = {"seconds": seconds, "model": self.model_name}
        counted = self._query(REQUESTS_QUERY.format(**names))
        timed = self._query(P99_QUERY.format(**names))
        return answers_from(counted, timed, self.versions)

    def _query(self, promql: str) -> dict:
        try:
            response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
            return response.json()
        except httpx.HTTPError as exc:
            raise CanaryError(f"Prometheus at {self.url} did not answer the canary's query: {exc}") from None
        except ValueError:
            raise CanaryError(f"Prometheus at {self.url} answered HTTP {response.status_code} without JSON: "
                              f"{response.text[:200]!r}") from None


def answers_from(counted: Mapping, timed: Mapping, versions: Mapping[str, str]) -> tuple[Answers, int]:
    """The answers of the two queries' API responses (`/api/v1/query` JSON), and the results not understood."""
    role_of = {version: role for role, version in versions.items()}
    counts: dict[str, dict[int, float]] = {CHAMPION: {}, CANDIDATE: {}}
    skipped = 0
    for labels, value in _samples(counted):
        role, code = role_of.get(labels.get("model_version", "")), labels.get("http_response_code", "")
        if role is None:
            continue  # another version (one that served before the champion)
        if not code.isdigit() or value is None:
            skipped += 1
            continue
        counts[role][int(code)] = counts[role].get(int(code), 0.0) + value
    p99 = {CHAMPION: 0.0, CANDIDATE: 0.0}
    for labels, value in _samples(timed):
        role = role_of.get(labels.get("model_version", ""))
        if role is not None and value is not None:  # NaN: no request of that version in the window
            p99[role] = value * 1000
    requests = {role: round(sum(by_code.values())) for role, by_code in counts.items()}
    return Answers(requests, _shares(counts, 500), _shares(counts, 400), p99), skipped


def _samples(answer: Mapping) -> list[tuple[dict[str, str], float | None]]:
    """(labels, value) of each result of an instant vector answer; value None when it is not a finite number."""
    if answer.get("status") != "success":
        raise CanaryError(f"Prometheus refused the canary's query: {answer.get('errorType', 'error')}: "
                          f"{str(answer.get('error', answer))[:300]}")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector":
        raise CanaryError(f"Prometheus answered a {data.get('resultType')!r} to the canary's query, not a vector")
    samples = []
    for result in data.get("result") or []:
        value = _finite(result.get("value"))
        samples.append(({str(k): str(v) for k, v in (result.get("metric") or {}).items()}, value))
    return samples


def _finite(value: object) -> float | None:
    """The number of a `[timestamp, "number"]` pair (Prometheus writes values as strings), None if not finite."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    try:
        number = float(value[1])
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _shares(counts: dict[str, dict[int, float]], status_class: int) -> dict[str, float]:
    shares = {}
    for role, by_code in counts.items():
        total = sum(by_code.values())
        hits = sum(n for code, n in by_code.items() if status_class <= code < status_class + 100)
        shares[role] = hits / total if total > 0 else 0.0
    return shares
