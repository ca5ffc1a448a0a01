"""What runs where on this machine: MLflow, serving, the aliases, resident memory (`make status`)."""

from __future__ import annotations

from pipelines import platform
from pipelines.config import PipelineConfig
from pipelines.local import current_deployment, serving_process


def local_status(config: PipelineConfig) -> dict[str, str]:
    """One line per part, each saying whether it is up and where."""
    rows = {"MLflow": _mlflow(config)}
    rows.update(_serving(config))
    mlflow_up = rows["MLflow"] != "down"
    if mlflow_up or not config.tracking.resolved_uri.startswith("http://127.0.0.1"):
        rows["aliases"] = _aliases(config)
    return rows


def _mlflow(config: PipelineConfig) -> str:
    pid = platform.mlflow_process(config).pid()
    if pid is None or not platform.url_ok(f"{config.platform.mlflow_url}/health"):
        return "down"
    return f"{config.platform.mlflow_url} up (pid {pid}, {platform.resident_memory_mib(pid):.0f} MiB)"


def _serving(config: PipelineConfig) -> dict[str, str]:
    deployment = current_deployment(config)
    pid = serving_process(config).pid()
    if deployment is None or pid is None:
        return {"serving": "down"}
    ready = platform.url_ok(f"{deployment.url}/readyz")
    return {
        "serving": (f"{deployment.url} {'ready' if ready else 'NOT READY'} (pid {pid}, "
                    f"{platform.resident_memory_mib(pid):.0f} MiB)"),
        "serving model": f"v{deployment.model_version} ({deployment.bento_tag}) since {deployment.started_at}",
    }


def _aliases(config: PipelineConfig) -> str:
    from mlflow.exceptions import MlflowException

    from pipelines.registry import aliases_of, connect

    try:
        aliases = aliases_of(connect(config), config.model_name)
    except MlflowException as exc:
        return f"unknown ({exc.message.splitlines()[0]})"
    return ", ".join(f"@{a}=v{v}" for a, v in sorted(aliases.items())) or "no model yet"
