"""The canary's Prometheus reader against answers of Prometheus 2.42's HTTP API (`/api/v1/query`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipelines import canary, canary_prometheus
from pipelines.canary import CANDIDATE, CHAMPION, CanaryError, DockerWindow, Observed, figures, judge
from pipelines.canary_prometheus import PrometheusAnswers, answers_from
from pipelines.config import CanaryConfig
from services.contract import CLASSIFICATION

VERSIONS = {CHAMPION: "5", CANDIDATE: "6"}


def vector(*results: tuple[dict[str, str], str]) -> dict:
    """An instant-vector answer as the API writes it: each value a [unix time, "number as a string"] pair."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": metric, "value": [1764782400.123, value]} for metric, value in results]}}


# Answers shaped as the stack's Prometheus gave them to REQUESTS_QUERY and P99_QUERY (increase() extrapolates,
# so counts come back fractional; a version without requests in the window has a NaN quantile).
COUNTED = vector(
    ({"http_response_code": "200", "model_version": "5"}, "297.00000000000006"),
    ({"http_response_code": "400", "model_version": "5"}, "3"),
    ({"http_response_code": "200", "model_version": "6"}, "95.5"),
    ({"http_response_code": "503", "model_version": "6"}, "4.5"),
    ({"http_response_code": "200", "model_version": "4"}, "12"),  # the version served before: not in the window
)
TIMED = vector(({"model_version": "5"}, "0.0495"), ({"model_version": "6"}, "0.2"), ({"model_version": "4"}, "NaN"))


# Recorded from the stack test's Prometheus 2.42 (both queries over 60 s after a load of 150 requests on v1):
# BentoML's placeholder 500 series answers "0".
RECORDED_COUNTED = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"http_response_code": "200", "model_version": "1"}, "value": [1796320835.184, "150.3162"]},
    {"metric": {"http_response_code": "500", "model_version": "1"}, "value": [1796320835.184, "0"]}]}}
RECORDED_TIMED = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"model_version": "1"}, "value": [1796320835.201, "0.020721610000000085"]}]}}
RECORDED_REFUSAL = {"status": "error", "errorType": "bad_data",
                    "error": "invalid parameter \"query\": 1:162: parse error: unexpected end of input"}


def test_a_recorded_answer_reads_as_the_champions_figures():
    answers, skipped = answers_from(RECORDED_COUNTED, RECORDED_TIMED, {CHAMPION: "1", CANDIDATE: "2"})
    assert answers.requests == {CHAMPION: 150, CANDIDATE: 0} and skipped == 0
    assert answers.error_rates[CHAMPION] == 0.0 and answers.p99_ms[CHAMPION] == pytest.approx(20.72, abs=0.01)


def test_a_recorded_refusal_is_a_clear_error():
    with pytest.raises(CanaryError, match="refused the canary's query: bad_data: invalid parameter"):
        answers_from(RECORDED_REFUSAL, RECORDED_TIMED, VERSIONS)


def test_requests_shares_and_p99_per_role_come_from_the_two_answers():
    answers, skipped = answers_from(COUNTED, TIMED, VERSIONS)
    assert answers.requests == {CHAMPION: 300, CANDIDATE: 100}
    assert answers.error_rates == {CHAMPION: 0.0, CANDIDATE: pytest.approx(0.045)}
    assert answers.refusal_rates == {CHAMPION: pytest.approx(0.01), CANDIDATE: 0.0}
    assert answers.p99_ms == {CHAMPION: pytest.approx(49.5), CANDIDATE: pytest.approx(200.0)}
    assert skipped == 0


def test_the_judge_reads_them_like_the_front_logs():
    answers, _ = answers_from(COUNTED, TIMED, VERSIONS)
    verdict = judge(figures(Observed(answers, {}), 60.0), CanaryConfig(min_requests=100))
    assert not verdict.promote
    assert any("5xx rate 4.50%" in failure for failure in verdict.failures)
    assert any("p99 200 ms is 4.0x the champion's" in failure for failure in verdict.failures)


def test_no_requests_yet_is_zero_not_an_error():
    empty = vector()
    nan = vector(({"model_version": "6"}, "NaN"))
    answers, skipped = answers_from(empty, nan, VERSIONS)
    assert answers.requests == {CHAMPION: 0, CANDIDATE: 0} and answers.p99_ms == {CHAMPION: 0.0, CANDIDATE: 0.0}
    assert answers.error_rates == {CHAMPION: 0.0, CANDIDATE: 0.0} and skipped == 0


def test_results_it_cannot_read_are_skipped_and_counted():
    odd = vector(({"model_version": "6"}, "10"),  # no status code
                 ({"http_response_code": "200", "model_version": "6"}, "+Inf"),
                 ({"http_response_code": "200", "model_version": "6"}, "7"))
    answers, skipped = answers_from(odd, vector(), VERSIONS)
    assert answers.requests[CANDIDATE] == 7 and skipped == 2


@pytest.mark.parametrize(("answer", "message"), [
    ({"status": "error", "errorType": "bad_data", "error": "1:12: parse error: unexpected \"}\""},
     "Prometheus refused the canary's query: bad_data: 1:12: parse error"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "a 'matrix'"),
])
def test_an_answer_that_is_no_vector_is_a_clear_error(answer, message):
    with pytest.raises(CanaryError, match=message):
        answers_from(answer, vector(), VERSIONS)


def test_the_queries_name_the_model_and_the_window_with_a_scrape_before_it(monkeypatch):
    asked = []

    def get(url, params, timeout):
        asked.append(params["query"])
        return httpx.Response(200, json=COUNTED if len(asked) == 1 else TIMED)

    monkeypatch.setattr(canary_prometheus.httpx, "get", get)
    since = datetime.now(UTC) - timedelta(seconds=42.3)
    answers, _ = PrometheusAnswers("http://127.0.0.1:9090", "loan-default", VERSIONS, since)()
    requests, p99 = asked
    assert 'increase(bentoml_service_request_total{endpoint="/predict"}[53s])' in requests
    assert 'serving_model_info{model_name="loan-default"}' in requests
    assert "sum by (model_version, http_response_code) (" in requests
    assert p99.startswith("histogram_quantile(0.99, sum by (le, model_version) (")
    assert "[53s]" in p99 and answers.requests[CANDIDATE] == 100


def test_an_unreachable_prometheus_is_a_canary_error(monkeypatch):
    def refuse(url, params, timeout):
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(canary_prometheus.httpx, "get", refuse)
    with pytest.raises(CanaryError, match="Prometheus at http://127.0.0.1:9 did not answer"):
        PrometheusAnswers("http://127.0.0.1:9", "loan-default", VERSIONS, datetime.now(UTC))()


def test_the_window_takes_its_answers_from_prometheus_and_its_outputs_from_the_inference_log(monkeypatch):
    monkeypatch.setattr(canary, "_docker", lambda arguments: {"exec": ""}[arguments[0]])  # no `docker logs` call
    window = DockerWindow("mlops", VERSIONS, datetime.now(UTC), CLASSIFICATION,
                          answered=lambda: answers_from(COUNTED, TIMED, VERSIONS))
    assert window().answers.requests == {CHAMPION: 300, CANDIDATE: 100}
