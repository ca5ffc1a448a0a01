"""What runs where on this machine: MLflow, serving, the aliases, resident memory (`make status`)."""

from __future__ import annotations

from pipelines import platform
from pipelines.config import PipelineConfig
from pipelines.local import front_process, live_release, slot_process


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
    live, front_pid = live_release(config), front_process(config).pid()
    if live is None or front_pid is None:
        return {"serving": "down" if front_pid is None else f"{config.platform.serving_url} front up, no model"}
    deployment, pid = live.deployment, slot_process(config, live.slot).pid() or 0
    ready = platform.url_ok(f"{deployment.url}/readyz")
    memory = platform.resident_memory_mib(pid) + platform.resident_memory_mib(front_pid)
    return {
        "serving": (f"{deployment.url} {'ready' if ready else 'NOT READY'} (front pid {front_pid}, "
                    f"{live.slot} server pid {pid}, {memory:.0f} MiB)"),
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
