"""The release steps as the CLI shows them: a spinner while the library works, then the result's view.

The commands and `pipelines demo` share these; each takes a loaded config and raises the library's
own errors (the CLI turns them into exit codes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from pipelines import platform, views
from pipelines.config import PipelineConfig, load_config
from pipelines.errors import Refused

if TYPE_CHECKING:
    from pipelines.bento import BuiltBento
    from pipelines.data import VersionedData
    from pipelines.deploy import ServingTarget
    from pipelines.registry import ResolvedVersion

console = Console()


def connected_config(config_path: Path | None) -> PipelineConfig:
    config = load_config(config_path)
    platform.require_mlflow(config)
    return config


def resolve_version(config: PipelineConfig, *, alias: str | None = None, version: str | None = None) -> ResolvedVersion:
    from pipelines.registry import connect, resolve

    return resolve(connect(config), config.model_name, alias=alias, version=version)


def start_platform(config: PipelineConfig) -> None:
    with console.status(f"Starting MLflow on {config.platform.mlflow_url} ..."):
        url = platform.start_mlflow(config)
    console.print(views.key_values("Local platform", {
        "MLflow": url, "state": config.platform.state_dir, "log": platform.mlflow_process(config).log_file}))


def check_data(config: PipelineConfig) -> VersionedData:
    """The configured table, checked; the estimator and feature code are checked first (before any data)."""
    from pipelines.data import load_versioned
    from pipelines.features import build_pipeline

    with console.status("Checking the model config ..."):
        build_pipeline(config)
    with console.status("Loading and checking data ..."):
        data = load_versioned(config)
    console.print(views.key_values("Dataset", {"source": data.source, "rows": len(data.frame),
                                               "columns": len(data.frame.columns), "data version": data.version}))
    return data


def train_model(config: PipelineConfig, data: VersionedData) -> None:
    from pipelines.train import train

    with console.status(f"Training {config.model.estimator} and logging to {config.tracking.display_uri} ..."):
        result = train(config, data)
    console.print(views.trained(config, result))


def gate_candidate(config: PipelineConfig, candidate: ResolvedVersion, *, allow_incomparable: bool = False) -> None:
    """Run the gate on the candidate; Refused (after its table) when it fails."""
    from pipelines.model_card import card_place
    from pipelines.validate import validate

    with console.status(f"Validating v{candidate.version} against the gates ..."):
        report = validate(config, candidate, allow_incomparable=allow_incomparable)
    console.print(views.gate(report))
    console.print(f"model card: {card_place(config, candidate)}")
    for note in report.notes:
        console.print(f"note: {note}")
    if report.override:
        console.print(f"[yellow]waived[/yellow] (by the operator or the reviewed config): {report.override} "
                      "(recorded on the version)")
    if not report.passed:
        console.print(f"[red]gate failed[/red]: {len(report.failures)} check(s) failed; "
                      "nothing was built or deployed, aliases unchanged")
        raise Refused
    console.print(f"[green]gate passed[/green]: v{report.model_version} may be released, served by {report.runtime}")


def build_bento(config: PipelineConfig, model: ResolvedVersion) -> BuiltBento:
    from pipelines.bento import build

    with console.status("Building the bento from the registry ..."):
        bento = build(config, model)
    console.print(views.bento(bento))
    return bento


def release_candidate(config: PipelineConfig, target: ServingTarget, *, allow_incomparable: bool = False,
                      canary_percent: int | None = None) -> None:
    """Gate @challenger, build exactly the version that passed, roll it out, promote it."""
    from pipelines.deploy import deploy, release_lock
    from pipelines.registry import CHALLENGER, refuse_retired

    with release_lock(config):  # from the gate on: a second release would gate, build and serve the same version
        candidate = resolve_version(config, alias=CHALLENGER)
        refuse_retired(candidate.name, candidate.version, candidate.retired, "deploy")
        gate_candidate(config, candidate, allow_incomparable=allow_incomparable)
        bento = build_bento(config, candidate)
        how = f"as a canary ({canary_percent}% of requests) " if canary_percent else ""
        with console.status(f"Rolling out {bento.tag} {how}to {target.name} and checking it ..."):
            result = deploy(config, bento, target, canary_percent)
    console.print(views.release(config, result, "Deployed"))


def send_traffic(config: PipelineConfig, rows: int = 800, drifted_share: float = 0.5) -> None:
    from pipelines.registry import CHAMPION
    from pipelines.serving_state import model_url
    from pipelines.traffic import sample_traffic

    url = model_url(config)  # this model's server on the local front, whichever model `/predict` answers for
    with console.status(f"Sending {rows} rows to {url}/predict ..."):
        result = sample_traffic(resolve_version(config, alias=CHAMPION), url, rows=rows, drifted_share=drifted_share)
    console.print(views.traffic(config, url, result))
    if result.failed_requests:
        raise platform.PlatformError(f"{result.failed_requests} request(s) to {url}/predict failed")
