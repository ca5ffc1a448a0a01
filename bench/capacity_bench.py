"""Capacity: 1, 2 and 5 models on one host, behind the one local front (`make bench`).

One MLflow server and one front; models `capacity-1` ... `capacity-5` are the demo's pipeline (fewer trees, so
five train quickly), each trained, gated, built and deployed locally with one bento worker (the floor a model
costs). After the first, second and fifth deploy, 8 clients spread over the models served so far (client i
sends 1-row requests to model i mod N at `/models/<name>/predict`) give the total throughput, and each model's
bento server with its worker gives its resident memory. Goal (issue "Many models"): the total throughput with 5
models is at least 0.8x one model's, in this run; memory per added model is stated.
Writes `bench/results/capacity.md`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from bench.serving_bench import RESULTS, SECONDS_PER_CELL, Cell, Server, goal, load_cell, publish, rows_body
from pipelines import platform
from pipelines.bento import build
from pipelines.config import DEFAULT_CONFIG_PATH, PipelineConfig, load_config
from pipelines.data import load_versioned, to_records
from pipelines.deploy import deploy
from pipelines.local import LocalTarget, stop_serving
from pipelines.registry import connect, resolve
from pipelines.serving_state import live_release, model_url, slot_process
from pipelines.train import train
from pipelines.validate import validate

MODEL_COUNTS = (1, 2, 5)
CLIENTS, ROUNDS = 8, 2
MIN_TOTAL_VS_ONE = 0.8


@dataclass(frozen=True)
class Step:
    models: int
    cell: Cell
    rss_mib: list[float]  # per model: its bento server and worker


def model_config(state: Path, name: str, shared: dict) -> PipelineConfig:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["model_name"] = name
    raw["model"]["params"]["n_estimators"] = 40
    raw["serving"] = {**raw.get("serving", {}), "workers": 1}
    raw["platform"] = {**raw.get("platform", {}), **shared}
    raw["tracking"] = {"uri": f"http://127.0.0.1:{shared['mlflow_port']}"}
    path = state / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def release(config: PipelineConfig) -> list[dict]:
    """Train, gate, build and deploy the model locally; a one-row sample of its eval set."""
    print(f"releasing {config.model_name} ...", file=sys.stderr)
    trained = train(config, load_versioned(config))
    candidate = resolve(connect(config), config.model_name, version=trained.model_version)
    if not validate(config, candidate).passed:
        raise SystemExit(f"{config.model_name} must pass its gate to be benched; see `make validate`")
    deploy(config, build(config, candidate), LocalTarget(config))
    return to_records(candidate.holdout[config.data.features].head(1))


def resident_mib(config: PipelineConfig) -> float:
    """The model's live bento server and its workers, resident set in MiB."""
    live = live_release(config)
    pid = slot_process(config, live.slot).pid() if live else None
    if pid is None:
        raise SystemExit(f"{config.model_name} has no live bento server")
    server = psutil.Process(pid)
    return sum(process.memory_info().rss for process in [server, *server.children(recursive=True)]) / 2**20


def measure(configs: list[PipelineConfig], sample: list[dict]) -> Step:
    urls = [f"{model_url(config)}/predict" for config in configs]
    server = Server(f"{len(configs)} model(s)", urls[0], rows_body, tuple(urls[1:]))
    cells = [asyncio.run(load_cell(server, sample, CLIENTS, SECONDS_PER_CELL)) for _ in range(ROUNDS)]
    best = max(cells, key=lambda cell: cell.throughput)
    best.errors = sum(cell.errors for cell in cells)
    return Step(len(configs), best, [resident_mib(config) for config in configs])


def main() -> None:
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="capacity-bench-") as tmp:
        state = Path(tmp)
        shared = {"state_dir": str(state), "mlflow_port": platform.free_port(), "serving_port": platform.free_port()}
        configs = [model_config(state, f"capacity-{number}", shared) for number in range(1, max(MODEL_COUNTS) + 1)]
        try:
            platform.start_mlflow(configs[0])
            sample: list[dict] = []
            for count, config in enumerate(configs, start=1):
                sample = release(config)
                if count in MODEL_COUNTS:
                    print(f"loading {count} model(s) ...", file=sys.stderr)
                    steps.append(measure(configs[:count], sample))
        finally:
            for config in configs:
                stop_serving(config)
            platform.Process("mlflow", state).stop()
    write(steps)


def write(steps: list[Step]) -> None:
    one = steps[0]
    lines = [
        "# Capacity: several models on one host",
        "",
        f"The demo's pipeline (40 trees) as {max(MODEL_COUNTS)} models, each deployed locally with one bento worker "
        f"behind the one front; {CLIENTS} clients spread over the models served, 1 row per request, the better of "
        f"{ROUNDS} rounds of {SECONDS_PER_CELL:.0f} s; resident memory of each model's bento server and worker.",
        "",
        "| models | total requests/s | per model requests/s | p50 ms | p99 ms | errors | memory per model MiB "
        "| total MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {s.models} | {s.cell.throughput:,.1f} | {s.cell.throughput / s.models:,.1f} | {s.cell.p50_ms:.1f} | "
          f"{s.cell.p99_ms:.1f} | {s.cell.errors} | {sum(s.rss_mib) / s.models:,.0f} | {sum(s.rss_mib):,.0f} |"
          for s in steps],
        "",
        "## Goals (ratios in this run)",
        "",
        "| goal | measured | goal | result |",
        "|---|---:|---:|---|",
    ]
    for step in steps[1:]:
        ratio = step.cell.throughput / one.cell.throughput
        added = (sum(step.rss_mib) - sum(one.rss_mib)) / (step.models - 1)
        lines += [f"| total throughput, {step.models} models vs 1 | {ratio:.2f}x | >= {MIN_TOTAL_VS_ONE}x | "
                  f"{goal(ratio >= MIN_TOTAL_VS_ONE) if step.models == max(MODEL_COUNTS) else '-'} |",
                  f"| memory per added model ({step.models} models) | {added:,.0f} MiB | stated | - |"]
    errors = sum(step.cell.errors for step in steps)
    lines.append(f"| errors | {errors} | 0 | {goal(errors == 0)} |")
    publish(RESULTS / "capacity.md", lines)


if __name__ == "__main__":
    main()
