"""`python -m services.monitoring`: one run (exit code = verdict), `--loop` for the stack, `--healthcheck`, `--trace`.

Exit codes: 0 OK, 3 DRIFT, 4 NOT ENOUGH DATA; 1 the run failed (say, MLflow unreachable); 2 bad settings.
Settings come from the environment (see README.md and settings.MonitorSettings.from_env).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading

from services.contract import ON_DRIFT_CHOICES
from services.monitoring.observability import heartbeat_age_s, job_logger, json_handler, log_event, read_heartbeat
from services.monitoring.settings import MonitorSettings, SettingsError

HEALTHY_BEATS = 2  # missed intervals before the health check fails
START_GRACE_S = 120.0  # the first run also downloads the training snapshot


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.monitoring", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--loop", action="store_true", help="run every interval_minutes of the policy until stopped")
    mode.add_argument("--healthcheck", action="store_true",
                      help="exit 0 if the loop's heartbeat is fresh and its last run succeeded")
    mode.add_argument("--trace", metavar="REQUEST_ID", help="print where one prediction was logged and judged")
    parser.add_argument("--on-drift", choices=ON_DRIFT_CHOICES, help="override the policy's on_drift")
    parser.add_argument("--window-rows", type=int, help="judge the newest N rows instead of 'since the last report'")
    parser.add_argument("--window-hours", type=float, help="judge the rows of the last N hours")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # stdout carries the JSON log (and the summary last): no progress bars or "View run" lines from MLflow.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:
        settings = MonitorSettings.from_env().overridden(
            on_drift=args.on_drift, window_rows=args.window_rows, window_hours=args.window_hours)
    except SettingsError as exc:
        print(f"monitoring: {exc}", file=sys.stderr)
        return 2
    if args.healthcheck:
        return _healthcheck(settings)
    # Evidently and MLflow load only past this point: the container health check runs every 30 s and
    # must stay cheap (importing them costs ~12 s of CPU).
    from services.monitoring.job import run_forever, run_once

    if args.trace:
        return _trace(settings, args.trace)
    logger = job_logger()
    logger.addHandler(json_handler(logging.StreamHandler(sys.stdout)))
    logger.setLevel(logging.INFO)
    if args.loop:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_forever(settings, stop)
        return 0
    try:
        result = run_once(settings)
    except Exception as exc:  # one clear line instead of a traceback; the JSON log has the same
        log_event("monitoring.error", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
        print(f"monitoring failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(result.summary)
    return result.exit_code


def _trace(settings: MonitorSettings, request_id: str) -> int:
    from services.monitoring.trace import trace_request

    try:
        found = trace_request(settings, request_id)
    except Exception as exc:  # one clear line instead of a traceback
        print(f"trace failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if found is None:
        print(f"request {request_id} is not in the inference log at {settings.inference_log_dir}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(found), default=str))
    return 0


def _healthcheck(settings: MonitorSettings) -> int:
    age = heartbeat_age_s(settings.heartbeat_file)
    limit = HEALTHY_BEATS * settings.policy.interval_minutes * 60 + START_GRACE_S
    if age is None:
        print(f"no heartbeat at {settings.heartbeat_file}", file=sys.stderr)
        return 1
    if age > limit:
        print(f"heartbeat {settings.heartbeat_file} is {age:.0f}s old (limit {limit:.0f}s)", file=sys.stderr)
        return 1
    error = read_heartbeat(settings.heartbeat_file).get("last_error")
    if error:  # fresh, but the job is failing: unhealthy until a run succeeds
        print(f"the last monitoring run failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
