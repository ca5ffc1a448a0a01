"""Canary analysis: a candidate served beside the champion on the stack, judged on live traffic.

While the front sends the candidate its share of requests (stack config `canaryPercent`), the analysis
watches both over a window: until the candidate answered `canary.min_requests` requests, or
`canary.max_duration_s` passed. It then compares them:
- failed answers, and p99 of the response time: from the stack's Prometheus where it publishes one (its
  `prometheus_url` output; pipelines/canary_prometheus.py), else from the front's access log (one JSON line per
  request: backend, server, status, response ms; `docker logs` of the front container). Failed means a 5xx,
  or a 4xx beyond the share of 4xx the champion answers: both get the same mix of requests, so the
  champion's refusals are the rows that are bad, and the candidate's extra ones are rows the champion
  accepted (a candidate that refuses every row logs no prediction, so only this catches it);
- the distance between their prediction distributions: the largest Kolmogorov-Smirnov statistic over
  the outputs the task compares (pipelines/task.py `compared_outputs`: the class probabilities for
  classification, the predicted value for regression), from the inference log (each record carries its
  model version).
The candidate is promoted only if each figure is within its limit; too few requests in the window is
a reason to abort too. `judge` is pure, so the rules are unit-tested; `DockerWindow` reads the stack.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from pipelines.config import CanaryConfig
from pipelines.errors import CannotRun
from pipelines.task import task_for
from services.contract import TaskName, front_users_backend, inference_log_dir
from services.inference_record import BadRecord, InferenceRecord

CANDIDATE, CHAMPION = "candidate", "champion"
# The front's server names (services/front/haproxy.cfg): `release<n>` in front of the champion's
# container, `canary<n>` in front of the candidate's; only a model's users' backend carries user traffic.
_ROLE_OF_SERVER = {"release": CHAMPION, "canary": CANDIDATE}


class CanaryError(CannotRun):
    """The stack's logs could not be read for the analysis."""


@dataclass(frozen=True)
class Figures:
    """What the window showed of each version."""

    seconds: float
    requests: dict[str, int]
    error_rates: dict[str, float]  # 5xx share of the answers
    refusal_rates: dict[str, float]  # 4xx share
    p99_ms: dict[str, float]
    prediction_distance: float
    skipped_lines: int = 0

    def as_tags(self) -> dict[str, str]:
        return {
            "canary_seconds": f"{self.seconds:.1f}",
            **{f"canary_{role}_requests": str(n) for role, n in self.requests.items()},
            **{f"canary_{role}_5xx_rate": f"{rate:.4f}" for role, rate in self.error_rates.items()},
            **{f"canary_{role}_4xx_rate": f"{rate:.4f}" for role, rate in self.refusal_rates.items()},
            **{f"canary_{role}_p99_ms": f"{ms:.1f}" for role, ms in self.p99_ms.items()},
            "canary_prediction_distance": f"{self.prediction_distance:.3f}",
            "canary_skipped_log_lines": str(self.skipped_lines),
        }


@dataclass(frozen=True)
class Verdict:
    figures: Figures
    failures: tuple[str, ...]  # why not to promote; empty: promote

    @property
    def promote(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Answers:
    """What each role answered in the window: requests, their 5xx and 4xx shares, p99 of the response time."""

    requests: dict[str, int]
    error_rates: dict[str, float]
    refusal_rates: dict[str, float]
    p99_ms: dict[str, float]


def answers_of(responses: dict[str, list[tuple[int, float]]]) -> Answers:
    """The answers of per-role (status, response ms) pairs, one per request (the front's access log)."""
    requests, error_rates, refusal_rates, p99 = {}, {}, {}, {}
    for role in (CHAMPION, CANDIDATE):
        answers = responses.get(role, [])
        requests[role] = len(answers)
        error_rates[role] = _share(answers, 500)
        refusal_rates[role] = _share(answers, 400)
        times = [ms for _, ms in answers if ms >= 0]
        p99[role] = float(np.percentile(times, 99)) if times else 0.0
    return Answers(requests, error_rates, refusal_rates, p99)


@dataclass(frozen=True)
class Observed:
    """Observations of one window: what each role answered, and the compared outputs of each logged row
    (output name -> value: class probabilities, or the predicted value)."""

    answers: Answers
    outputs: dict[str, list[dict[str, float]]]
    skipped_lines: int = 0  # access-log entries, query results and inference records that could not be read


def figures(observed: Observed, seconds: float) -> Figures:
    answers = observed.answers
    distance = prediction_distance(observed.outputs.get(CHAMPION, []), observed.outputs.get(CANDIDATE, []))
    return Figures(seconds, answers.requests, answers.error_rates, answers.refusal_rates, answers.p99_ms, distance,
                   observed.skipped_lines)


def _share(answers: list[tuple[int, float]], status_class: int) -> float:
    """The share of answers with a status in [status_class, status_class + 100)."""
    hits = sum(status_class <= status < status_class + 100 for status, _ in answers)
    return hits / len(answers) if answers else 0.0


def prediction_distance(champion: list[dict[str, float]], candidate: list[dict[str, float]]) -> float:
    """The largest two-sample Kolmogorov-Smirnov statistic over the compared outputs, each class's probability
    or the predicted value (0: same distributions, 1: disjoint). A class one side never answers is 0 there."""
    if not champion or not candidate:
        return 0.0
    from scipy.stats import ks_2samp

    names = set(champion[0]) | set(candidate[0])
    return max(float(ks_2samp([p.get(n, 0.0) for p in champion], [p.get(n, 0.0) for p in candidate]).statistic)
               for n in names)


def judge(found: Figures, limits: CanaryConfig) -> Verdict:
    failures = []
    if found.requests[CANDIDATE] < limits.min_requests:
        failures.append(f"only {found.requests[CANDIDATE]} requests reached the candidate in {found.seconds:.0f} s "
                        f"(canary.min_requests {limits.min_requests})")
    errors, refusals = found.error_rates, found.refusal_rates
    # Fewer refusals than the champion's earn no credit against 5xx.
    increase = errors[CANDIDATE] - errors[CHAMPION] + max(0.0, refusals[CANDIDATE] - refusals[CHAMPION])
    if increase > limits.max_error_rate_increase:
        failures.append(f"5xx rate {errors[CANDIDATE]:.2%} vs the champion's {errors[CHAMPION]:.2%}, "
                        f"4xx rate {refusals[CANDIDATE]:.2%} vs the champion's {refusals[CHAMPION]:.2%}: "
                        f"{increase:.2%} more requests failed or refused than the champion's share "
                        f"(canary.max_error_rate_increase {limits.max_error_rate_increase:.2%})")
    ratio = found.p99_ms[CANDIDATE] / max(found.p99_ms[CHAMPION], 1.0)
    if ratio > limits.max_p99_ratio:
        failures.append(f"p99 {found.p99_ms[CANDIDATE]:.0f} ms is {ratio:.1f}x the champion's "
                        f"(canary.max_p99_ratio {limits.max_p99_ratio})")
    if found.prediction_distance > limits.max_prediction_distance:
        failures.append(f"predictions differ from the champion's: distance {found.prediction_distance:.2f} "
                        f"(canary.max_prediction_distance {limits.max_prediction_distance})")
    return Verdict(found, tuple(failures))


def watch(observe: Callable[[], Observed], limits: CanaryConfig, progress: Callable[[str], None] = print,
          poll_s: float = 2.0) -> Verdict:
    """Observe until the candidate answered enough requests or the window closed, then judge."""
    started = time.monotonic()
    while True:
        seconds = time.monotonic() - started
        found = figures(observe(), seconds)
        if found.requests[CANDIDATE] >= limits.min_requests or seconds >= limits.max_duration_s:
            return judge(found, limits)
        progress(f"canary: {found.requests[CANDIDATE]} of {limits.min_requests} requests answered by the candidate "
                 f"after {seconds:.0f} s")
        time.sleep(poll_s)


@dataclass(frozen=True)
class DockerWindow:
    """The stack since the canary started: what each role answered (from `answered`, the stack's Prometheus,
    when given; else from the front's access log) and the inference log on its volume."""

    name_prefix: str
    versions: dict[str, str]  # role -> model version
    since: datetime
    task: TaskName  # the candidate's (its pipeline config's): which served outputs are compared
    answered: Callable[[], tuple[Answers, int]] | None = None  # (answers, results it could not read)
    model_name: str | None = None  # the canary's model: only its inference records count (None: every record)
    backend: str = front_users_backend(None)  # the front's backend of that model's users' requests
    log_dir: str = inference_log_dir(None)  # where that model's servers write the inference log

    def __call__(self) -> Observed:
        answers, bad_entries = self.answered() if self.answered is not None else self._front_log()
        outputs, bad_records = self._outputs()
        return Observed(answers, outputs, bad_entries + bad_records)

    def _front_log(self) -> tuple[Answers, int]:
        logs = _docker(["logs", "--since", self.since.isoformat(), f"{self.name_prefix}-front"])
        found: dict[str, list[tuple[int, float]]] = {CHAMPION: [], CANDIDATE: []}
        skipped = 0
        for line in logs.splitlines():
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue  # HAProxy's own start-up and health messages
            if not isinstance(entry, dict):
                continue
            role = _ROLE_OF_SERVER.get(str(entry.get("server", "")).rstrip("0123456789"))
            if entry.get("backend") != self.backend or role is None:
                continue
            answer = _answer(entry)
            if answer is None:
                skipped += 1
            else:
                found[role].append(answer)
        return answers_of(found), skipped

    def _outputs(self) -> tuple[dict[str, list[dict[str, float]]], int]:
        # Only the top level: the smoke subdirectory holds a release's own checks, not traffic.
        script = (f"find {self.log_dir} -maxdepth 1 -name '*.jsonl' -newermt @{int(self.since.timestamp())} "
                  "-exec cat {} +")
        lines = _docker(["exec", f"{self.name_prefix}-monitoring", "sh", "-c", script]).splitlines()
        role_of = {version: role for role, version in self.versions.items()}
        task = task_for(self.task)
        found: dict[str, list[dict[str, float]]] = {CHAMPION: [], CANDIDATE: []}
        skipped = 0
        for line in lines:
            try:
                record = InferenceRecord.parse(line)
            except BadRecord:
                skipped += 1  # a line being written right now, or a malformed one
                continue
            role = role_of.get(record.model_version)
            outputs = task.compared_outputs(record.prediction, record.probabilities)
            theirs = self.model_name is None or record.model_name == self.model_name
            if role is not None and theirs and record.timestamp >= self.since and outputs:
                found[role].append(outputs)
        return found, skipped


def _answer(entry: dict[str, object]) -> tuple[int, float] | None:
    """(status, response ms) of one access-log entry, or None when it does not hold them."""
    status, ms = entry.get("status"), entry.get("response_ms")
    if isinstance(status, bool) or not isinstance(status, int) or isinstance(ms, bool) \
            or not isinstance(ms, int | float) or not math.isfinite(ms):
        return None
    return status, float(ms)


def _docker(arguments: list[str]) -> str:
    done = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise CanaryError(f"docker {' '.join(arguments[:2])} failed: {done.stderr.strip()[-300:]}")
    return done.stdout + done.stderr  # HAProxy logs to stdout; `docker logs` keeps the streams apart
