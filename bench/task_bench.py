"""The examples in one run (`make bench`): training time of each, and the served regression and LightGBM models
against their peers.

Each example (examples/<name>/pipeline.yaml, its data made by its own script) trains on one MLflow server in a
temp state dir; the regression (demand) and the LightGBM one (species) are gated, built, deployed locally and
loaded at 1 row x 8 clients beside the same model version in the bare ASGI app (on onnxruntime when the gate
chose ONNX, else on scikit-learn, and the table says which) and in `mlflow models serve`, with
bench/serving_bench.py's load client, rounds and peers. Goals are the demo's, as ratios in this run: >= 10x
`mlflow models serve`, p99 <= 3x the bare app, zero errors, every answered row in the inference log.
Writes `bench/results/tasks.md`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.serving_bench import (
    BARE_BENTO,
    BARE_ONNX,
    BARE_SKLEARN,
    MAX_P99_VS_BARE_ONNX,
    MIN_VS_MLFLOW,
    MLFLOW_SERVE,
    PLATFORM,
    PROCESSES,
    RESULTS,
    Cell,
    Server,
    bench_config,
    best_of_rounds,
    goal,
    logged_rows,
    publish,
    rows_body,
    start_peers,
)
from pipelines import platform
from pipelines.bento import build
from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.data import load_versioned, to_records
from pipelines.deploy import deploy
from pipelines.local import LocalTarget, stop_serving
from pipelines.registry import connect, resolve
from pipelines.train import train
from pipelines.validate import validate
from services.contract import ONNX_RUNTIME

EXAMPLES = REPO_ROOT / "examples"
TRAINED = ("demand", "species", "team")
SERVED = ("demand", "species")  # the regression and the LightGBM multiclass model
ROWS, CLIENTS = 1, 8


@dataclass(frozen=True)
class Trained:
    config: PipelineConfig
    version: str
    seconds: float


@dataclass(frozen=True)
class Served:
    name: str
    runtime: str  # what the gate chose to serve the version on
    cells: list[Cell]
    answered_rows: int
    logged_rows: int


def example_config(name: str, state: Path, mlflow_port: int | None) -> PipelineConfig:
    """The example's committed config on the bench's ports, its data made fresh by its own script."""
    state.mkdir(parents=True)
    data = state / f"{name}.parquet"
    subprocess.run([sys.executable, str(EXAMPLES / name / "make_data.py"), str(data)], check=True,
                   stdout=subprocess.DEVNULL)
    return bench_config(state, EXAMPLES / name / "pipeline.yaml", mlflow_port, data={"source": str(data)})


def train_timed(config: PipelineConfig) -> Trained:
    print(f"training {config.model_name} ({config.model.estimator}) ...", file=sys.stderr)
    started = time.perf_counter()
    version = train(config, load_versioned(config)).model_version
    return Trained(config, version, time.perf_counter() - started)


def serve_and_load(name: str, trained: Trained) -> Served:
    """Gate, build and deploy the version locally, start its peers, and load all of them alike."""
    config = trained.config
    candidate = resolve(connect(config), config.model_name, version=trained.version)
    report = validate(config, candidate)
    if not report.passed:
        raise SystemExit(f"example {name} must pass its gate to be benched; see `make validate` with its config")
    bento = build(config, candidate)
    deployed = deploy(config, bento, LocalTarget(config))
    peers = (BARE_ONNX, BARE_BENTO, MLFLOW_SERVE) if report.runtime == ONNX_RUNTIME else (BARE_SKLEARN, MLFLOW_SERVE)
    servers = [Server(PLATFORM, f"{deployed.deployment.url}/predict", rows_body), *start_peers(config, bento, peers)]
    sample = to_records(candidate.holdout[config.data.features].head(ROWS))
    log_dir = config.platform.inference_log_dir
    before = logged_rows(log_dir)
    cells = best_of_rounds(servers, sample, CLIENTS)
    platform_cell = next(cell for cell in cells if cell.server == PLATFORM)
    return Served(name, report.runtime, cells, platform_cell.answered * ROWS, logged_rows(log_dir) - before)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="task-bench-") as tmp:
        configs: list[PipelineConfig] = []
        for name in TRAINED:
            configs.append(example_config(name, Path(tmp) / name, configs[0].platform.mlflow_port if configs else None))
        try:
            platform.start_mlflow(configs[0])
            trained = {name: train_timed(config) for name, config in zip(TRAINED, configs, strict=True)}
            served = [serve_and_load(name, trained[name]) for name in SERVED]
        finally:
            for config in reversed(configs):  # the first config's state dir holds the MLflow server
                stop_serving(config)
                for process in PROCESSES:
                    platform.Process(process, config.platform.state_dir).stop()
    write(trained, served)


def write(trained: dict[str, Trained], served: list[Served]) -> None:
    lines = [
        "# The examples: training time, and the served regression and LightGBM models against their peers",
        "",
        "One run, the same MLflow server. Training: `train` of each example's config (fit, metrics, ONNX "
        "conversion, logging, registration).",
        "",
        "| example | task | estimator | train seconds |",
        "|---|---|---|---:|",
        *[f"| {name} | {run.config.task} | {run.config.model.estimator} | {run.seconds:.1f} |"
          for name, run in trained.items()],
        "",
        f"Serving: {ROWS} row per request, {CLIENTS} clients, the same model version in every server "
        "(bench/serving_bench.py's load client and rounds). "
        f"`{BARE_BENTO}` is `bench/bare_bento.py`: the bare app's model in a plain BentoML API, nothing of the "
        "platform's, behind the platform's front: what BentoML's own request path costs.",
        "",
        "| example | runtime (gate) | server | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|",
        *[f"| {s.name} | {s.runtime} | {c.server} | {c.throughput:,.1f} | {c.p50_ms:.1f} | {c.p99_ms:.1f} | "
          f"{c.errors} |" for s in served for c in s.cells],
        "",
        "## Goals (ratios in this run)",
        "",
        "| example | goal | measured | goal | result |",
        "|---|---|---:|---:|---|",
    ]
    for s in served:
        by = {cell.server: cell for cell in s.cells}
        ours, mlflow_serve = by[PLATFORM], by[MLFLOW_SERVE]
        bare = by.get(BARE_ONNX) or by[BARE_SKLEARN]
        vs_mlflow = ours.throughput / mlflow_serve.throughput if mlflow_serve.throughput else float("inf")
        p99 = ours.p99_ms / bare.p99_ms
        lines += [
            f"| {s.name} | throughput vs mlflow models serve | {vs_mlflow:.1f}x | >= {MIN_VS_MLFLOW:.0f}x | "
            f"{goal(vs_mlflow >= MIN_VS_MLFLOW)} |",
            f"| {s.name} | p99 vs {bare.server} | {p99:.2f}x | <= {MAX_P99_VS_BARE_ONNX:.0f}x | "
            f"{goal(p99 <= MAX_P99_VS_BARE_ONNX)} |",
            *_minimal_bento_lines(s.name, ours, by.get(BARE_BENTO), mlflow_serve, bare),
            f"| {s.name} | platform errors | {ours.errors} | 0 | {goal(ours.errors == 0)} |",
            f"| {s.name} | inference log complete | {s.logged_rows:,} of {s.answered_rows:,} | all | "
            f"{goal(s.logged_rows == s.answered_rows)} |",
        ]
    publish(RESULTS / "tasks.md", lines)


def _minimal_bento_lines(name: str, ours: Cell, minimal: Cell | None, mlflow_serve: Cell, bare: Cell) -> list[str]:
    """What BentoML's request path itself allows (no goal): the minimal service against the same peers, and the
    platform against it."""
    if minimal is None:
        return []
    return [f"| {name} | ({BARE_BENTO}: throughput vs mlflow models serve) | "
            f"{minimal.throughput / mlflow_serve.throughput:.1f}x | - | - |",
            f"| {name} | ({BARE_BENTO}: p99 vs {bare.server}) | {minimal.p99_ms / bare.p99_ms:.2f}x | - | - |",
            f"| {name} | (platform /predict: throughput vs the minimal BentoML service) | "
            f"{ours.throughput / minimal.throughput:.2f}x | - | - |"]


if __name__ == "__main__":
    main()
