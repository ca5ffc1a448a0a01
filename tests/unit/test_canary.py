"""The canary analysis' rules (pipelines/canary.py): figures from raw observations, and the verdict."""

from __future__ import annotations

import json
import random

import pytest

from pipelines.canary import CANDIDATE, CHAMPION, Observed, answers_of, figures, judge, prediction_distance
from pipelines.config import CanaryConfig
from services.contract import CLASSIFICATION, REGRESSION

LIMITS = CanaryConfig(min_requests=50, max_duration_s=60, max_error_rate_increase=0.01, max_p99_ratio=2.0,
                      max_prediction_distance=0.3)


def probabilities(rng: random.Random, n: int, *, flipped: bool = False) -> list[dict[str, float]]:
    rows = []
    for _ in range(n):
        p = rng.betavariate(2, 5)
        p = 1 - p if flipped else p
        rows.append({"0": 1 - p, "1": p})
    return rows


def observed(*, candidate_errors: int = 0, candidate_ms: float = 20.0, candidate_requests: int = 100,
             flipped: bool = False) -> Observed:
    rng = random.Random(7)
    champion = [(200, rng.uniform(10, 30)) for _ in range(400)]
    candidate = [(500 if i < candidate_errors else 200, rng.uniform(candidate_ms / 2, candidate_ms * 1.5))
                 for i in range(candidate_requests)]
    candidate_probabilities = probabilities(rng, candidate_requests, flipped=flipped)
    return Observed(answers_of({CHAMPION: champion, CANDIDATE: candidate}),
                    {CHAMPION: probabilities(rng, 400), CANDIDATE: candidate_probabilities})


def test_a_candidate_like_the_champion_is_promoted():
    verdict = judge(figures(observed(), 30.0), LIMITS)
    assert verdict.promote, verdict.failures
    assert verdict.figures.requests == {CHAMPION: 400, CANDIDATE: 100}
    assert verdict.figures.prediction_distance < 0.2


def test_each_limit_aborts_and_says_why():
    assert "5xx rate 5.00%" in judge(figures(observed(candidate_errors=5), 30.0), LIMITS).failures[0]
    assert "p99" in judge(figures(observed(candidate_ms=200.0), 30.0), LIMITS).failures[0]
    (far_off,) = judge(figures(observed(flipped=True), 30.0), LIMITS).failures
    assert "predictions differ from the champion's" in far_off
    too_few = judge(figures(observed(candidate_requests=10), 60.0), LIMITS).failures
    assert "only 10 requests reached the candidate in 60 s" in too_few[0]


def test_the_distance_is_zero_for_the_same_distribution_and_one_for_disjoint_ones():
    same = [{"0": 0.8, "1": 0.2}] * 50
    assert prediction_distance(same, same) == 0.0
    assert prediction_distance(same, [{"0": 0.1, "1": 0.9}] * 50) == 1.0
    assert prediction_distance([], same) == 0.0  # nothing to compare yet


def test_the_audit_tags_carry_every_figure():
    tags = figures(observed(), 12.5).as_tags()
    assert tags["canary_seconds"] == "12.5" and tags["canary_candidate_requests"] == "100"
    assert {"canary_champion_5xx_rate", "canary_candidate_p99_ms", "canary_prediction_distance"} <= tags.keys()


def test_bad_log_lines_are_skipped_and_counted_never_a_failed_analysis(monkeypatch):
    """One odd line in the front's or the inference log must not stop the analysis (the canary would keep
    serving, the audit would stay "in progress"): it is skipped and counted."""
    from datetime import UTC, datetime

    from pipelines import canary

    since = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    good = {"request_id": "r", "row": 0, "timestamp": "2026-12-01T12:00:05+00:00", "model_name": "loans",
            "model_version": "6", "features": {"age": 40}, "prediction": 1, "probabilities": {"0": 0.3, "1": 0.7}}
    inference = [
        json.dumps(good),
        json.dumps(good).replace('"row": 0', '"row": Infinity'),  # seen: OverflowError out of the analysis
        json.dumps({**good, "probabilities": [0.3, 0.7]}),
        json.dumps({**good, "model_version": "5"}),
    ]
    front = [
        json.dumps({"backend": "ready", "server": "canary1", "status": 200, "response_ms": 12}),
        json.dumps({"backend": "ready", "server": "release1", "status": 200, "response_ms": 9}),
        "[NOTICE] haproxy started",  # HAProxy's own lines: not requests, not counted
        "42",
        json.dumps({"backend": "ready", "server": "canary1", "status": "teapot", "response_ms": 12}),
        json.dumps({"backend": "ready", "server": "release1", "response_ms": 9}),
        json.dumps({"backend": "ready", "server": "canary1", "status": 200, "response_ms": "Infinity"}),
    ]
    outputs = {"logs": "\n".join(front), "exec": "\n".join(inference)}
    monkeypatch.setattr(canary, "_docker", lambda arguments: outputs[arguments[0]])

    seen = canary.DockerWindow("mlops", {CHAMPION: "5", CANDIDATE: "6"}, since, CLASSIFICATION)()

    assert seen.answers.requests == {CHAMPION: 1, CANDIDATE: 1}
    assert [len(seen.outputs[role]) for role in (CHAMPION, CANDIDATE)] == [1, 1]
    assert seen.skipped_lines == 5  # 2 inference records, 3 access-log entries
    assert figures(seen, 10.0).as_tags()["canary_skipped_log_lines"] == "5"


def test_a_models_canary_reads_only_its_models_log_folder(monkeypatch):
    from datetime import UTC, datetime

    from pipelines import canary

    calls = []
    monkeypatch.setattr(canary, "_docker", lambda arguments: calls.append(arguments) or "")
    folder = "/var/lib/inference/models/bike-rentals"
    canary.DockerWindow("mlops", {CHAMPION: "1", CANDIDATE: "2"}, datetime.now(UTC), REGRESSION,
                        answered=lambda: ({CHAMPION: [], CANDIDATE: []}, 0), model_name="bike-rentals",
                        log_dir=folder)()
    (exec_call,) = calls
    assert exec_call[:2] == ["exec", "mlops-monitoring"] and exec_call[-1].startswith(f"find {folder} -maxdepth 1 ")


def answers(n: int, refused: int, failed: int = 0, seed: int = 3) -> list[tuple[int, float]]:
    """n answers, `refused` of them a 422, `failed` a 500, in a shuffled order."""
    rng = random.Random(seed)
    statuses = [422] * refused + [500] * failed + [200] * (n - refused - failed)
    rng.shuffle(statuses)
    return [(status, rng.uniform(10, 30)) for status in statuses]


def judged(champion: list[tuple[int, float]], candidate: list[tuple[int, float]]):
    rng = random.Random(11)
    seen = Observed(answers_of({CHAMPION: champion, CANDIDATE: candidate}),
                    {CHAMPION: probabilities(rng, 400), CANDIDATE: probabilities(rng, 100)})
    return judge(figures(seen, 30.0), LIMITS)


def test_a_candidate_that_refuses_every_row_the_champion_accepts_is_not_promoted():
    # Seen: a candidate answering 422 to every row was promoted (only 5xx counted; no row, no distance).
    rng = random.Random(5)
    seen = Observed(answers_of({CHAMPION: answers(400, 0), CANDIDATE: answers(100, 100)}),
                    {CHAMPION: probabilities(rng, 400), CANDIDATE: []})
    verdict = judge(figures(seen, 30.0), LIMITS)
    assert not verdict.promote
    assert any("4xx rate 100.00% vs the champion's 0.00%" in failure for failure in verdict.failures)
    assert figures(seen, 30.0).as_tags()["canary_candidate_4xx_rate"] == "1.0000"


@pytest.mark.parametrize(
    ("champion_refused", "candidate_refused", "candidate_failed", "promote"),
    [
        (0, 0, 0, True),
        (40, 10, 0, True),  # both refuse the same share of bad rows (10%): the candidate refuses no good one
        (40, 5, 0, True),  # it refuses fewer than the champion does
        (0, 2, 0, False),  # 2% of rows the champion accepts
        (40, 20, 0, False),  # 20% vs 10%: it refuses rows the champion accepts
        (0, 0, 2, False),  # 5xx as before
        (0, 1, 1, False),  # neither alone is over 1%, together they are: 2% of answers are not answers
    ],
)
def test_refusals_count_beyond_the_share_the_champion_refuses(
    champion_refused, candidate_refused, candidate_failed, promote
):
    champion = answers(400, champion_refused)
    for seed in range(5):  # any order of the same answers judges the same
        candidate = answers(100, candidate_refused, candidate_failed, seed=seed)
        assert judged(champion, candidate).promote is promote
        assert judged(list(reversed(champion)), candidate).promote is promote


def served_values(monkeypatch, shift: float) -> Observed:
    """A regression canary's window as the stack logs it: predicted values, no probabilities; the candidate
    (v6) answers the champion's (v5) values plus `shift`."""
    from datetime import UTC, datetime

    from pipelines import canary

    rng = random.Random(15)
    since = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def record(i: int, version: str, value: float) -> str:
        return json.dumps({"request_id": f"r{i}", "row": 0, "timestamp": "2026-12-01T12:00:05+00:00",
                           "model_name": "demand", "model_version": version, "features": {"price": 3.0},
                           "prediction": value})

    inference = [record(i, "5", rng.gauss(100, 15)) for i in range(400)]
    inference += [record(i, "6", rng.gauss(100, 15) + shift) for i in range(100)]
    front = [json.dumps({"backend": "ready", "server": server, "status": 200, "response_ms": 10})
             for server in ["release1"] * 400 + ["canary1"] * 100]
    outputs = {"logs": "\n".join(front), "exec": "\n".join(inference)}
    monkeypatch.setattr(canary, "_docker", lambda arguments: outputs[arguments[0]])
    return canary.DockerWindow("mlops", {CHAMPION: "5", CANDIDATE: "6"}, since, REGRESSION)()


def test_a_regression_candidate_answering_values_far_off_is_aborted_on_prediction_distance(monkeypatch):
    seen = served_values(monkeypatch, shift=60.0)
    assert seen.outputs[CANDIDATE][0].keys() == {"prediction"}
    (far_off,) = judge(figures(seen, 30.0), LIMITS).failures
    assert "predictions differ from the champion's: distance" in far_off


def test_a_regression_candidate_answering_the_same_values_is_promoted(monkeypatch):
    verdict = judge(figures(served_values(monkeypatch, shift=0.0), 30.0), LIMITS)
    assert verdict.promote, verdict.failures
    assert verdict.figures.prediction_distance < 0.2 and verdict.figures.requests[CANDIDATE] == 100
