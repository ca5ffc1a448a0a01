"""Serving throughput by batch size, as ratios to single-row requests measured in the same run.

Stands up its own local platform (MLflow + a deployed bento) in a temp state dir on free ports, sends
a bounded number of requests per batch size from a few client threads, and writes
`bench/results/serving.md`. Run with `make bench`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import yaml

from pipelines import platform
from pipelines.bento import build
from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.data import load_versioned
from pipelines.deploy import deploy
from pipelines.local import LocalTarget
from pipelines.registry import connect, resolve
from pipelines.train import train
from pipelines.validate import validate

RESULTS = Path(__file__).parent / "results" / "serving.md"
BATCH_SIZES = [1, 10, 100, 1000]
REQUESTS_PER_SIZE = 120
CLIENT_THREADS = 4
ROW = {"age": 41, "income": 52000.0, "loan_amount": 12000.0, "credit_score": 690, "debt_ratio": 0.31,
       "employment": "salaried", "region": "east", "purpose": "car"}


def measure(url: str, batch: int) -> tuple[float, float]:
    """(rows per second, median latency in ms) for `REQUESTS_PER_SIZE` requests of `batch` rows."""
    body = {"rows": [ROW] * batch}
    latencies: list[float] = []

    def one(_: int) -> None:
        started = time.perf_counter()
        response = client.post(f"{url}/predict", json=body)
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(CLIENT_THREADS) as pool:
        one(0)  # warm-up
        latencies.clear()
        started = time.perf_counter()
        list(pool.map(one, range(REQUESTS_PER_SIZE)))
        elapsed = time.perf_counter() - started
    return REQUESTS_PER_SIZE * batch / elapsed, statistics.median(latencies) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
        mlflow_port = platform.free_port()
        raw["platform"].update(state_dir=state, mlflow_port=mlflow_port, serving_port=platform.free_port())
        raw["tracking"]["uri"] = f"http://127.0.0.1:{mlflow_port}"
        path = Path(state) / "pipeline.yaml"
        path.write_text(yaml.safe_dump(raw))
        config = load_config(path)
        try:
            print("starting MLflow, training and deploying a model ...", file=sys.stderr)
            platform.start_mlflow(config)
            trained = train(config, load_versioned(config.data))
            candidate = resolve(connect(config), config.model_name, version=trained.model_version)
            if not validate(config, candidate).passed:
                raise SystemExit("the bench model did not pass the gate; see `make validate`")
            deployed = deploy(config, build(config, candidate), LocalTarget(config))
            rows = []
            for batch in BATCH_SIZES:
                print(f"batch {batch}: {REQUESTS_PER_SIZE} requests ...", file=sys.stderr)
                rows.append((batch, *measure(deployed.deployment.url, batch)))
        finally:
            for name in ("serving", "serving-candidate", "mlflow"):
                platform.Process(name, config.platform.state_dir).stop()
    baseline = rows[0][1]
    lines = [
        "# Serving throughput by batch size",
        "",
        f"{REQUESTS_PER_SIZE} requests per size from {CLIENT_THREADS} client threads to one local `bentoml serve`"
        f" worker ({config.model.estimator}); every row is also written to the inference log.",
        "Ratios are to single-row requests in the same run, so they compare across machines.",
        "",
        "| rows per request | rows/s | median latency (ms) | throughput vs 1 row |",
        "|---:|---:|---:|---:|",
        *[f"| {batch} | {rate:,.0f} | {latency:.1f} | {rate / baseline:.1f}x |" for batch, rate, latency in rows],
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
