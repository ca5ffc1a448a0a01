"""What runs where on this machine (`make status`): MLflow, the local front, each Docker stack, and per model
its aliases, what serves it locally, its last monitoring verdict and its open retrain request.

Every model it knows is listed: those with serving state on this platform and those in the registry. It asks
MLflow's REST API directly (`pipelines.mlflow_rest`): importing the MLflow client would take longer than
everything else `make status` does.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pipelines import platform
from pipelines.config import PipelineConfig
from pipelines.mlflow_rest import Failed, NotFound, call, newest_run_tags, registered_models
from pipelines.routes import read_default, routes_dir
from pipelines.serving_state import front_process, live_release, local_models, slot_process
from services.contract import (
    CANARY_WEIGHT_ENV,
    CLASSIFICATION,
    DATA_SOURCE_KIND_TAG,
    DATA_SOURCE_TAG,
    ESTIMATOR_TAG,
    MODEL_LABEL,
    NO_VERSION,
    REPORT_MODEL_TAG,
    REPORT_VERDICT_TAG,
    REPORT_VERSION_TAG,
    RETRAIN_OPEN,
    RETRAIN_REQUESTED_AT_TAG,
    RETRAIN_REQUESTED_TAG,
    RETRAIN_STATUS_TAG,
    SERVING_RUNTIME_TAG,
    SKLEARN_RUNTIME,
    SNAPSHOT_POLICY_TAG,
    STACK_LABEL,
    TASK_TAG,
    canary_share,
)

_UNREADABLE = (httpx.HTTPError, NotFound, Failed)


@dataclass(frozen=True)
class PlatformStatus:
    parts: dict[str, str]  # MLflow, the local front, each Docker stack: one line each
    models: dict[str, dict[str, str]]  # per model, by name: its lines


def platform_status(config: PipelineConfig) -> PlatformStatus:
    """The platform's parts, then every model it knows (served here, or registered), each with its own lines."""
    parts = {"MLflow": _mlflow(config), "front": _front(config)}
    parts.update(stack_serving())
    registry = parts["MLflow"] != "down" or not config.tracking.resolved_uri.startswith("http://127.0.0.1")
    names = set(local_models(config)) | {config.model_name}
    if registry:
        with contextlib.suppress(*_UNREADABLE):
            names |= set(registered_models(config))
    return PlatformStatus(parts, {name: model_status(config, name, registry=registry) for name in sorted(names)})


def model_status(config: PipelineConfig, model: str, *, registry: bool) -> dict[str, str]:
    """One model's lines: what serves it here, then (when the registry answers) its aliases and monitoring."""
    rows = _serving(config, model)
    if registry:
        rows.update(_aliases(config, model))
        rows.update(_monitoring(config, model))
    return rows


def stack_serving() -> dict[str, str]:
    """Per Docker stack on this host: each model's versions in its serving containers, and a canary's share.

    Read from the containers themselves (their names carry the version, their label the model; a canary's weight
    is in its env), so it shows a canary while `make deploy CANARY=...` is judging it. Nothing when Docker is absent.
    """
    found: dict[str, dict[str, list[tuple[bool, str]]]] = {}
    for name, prefix, model, canary, version in _serving_containers():
        shown = "no model" if version == NO_VERSION else f"v{version}"
        found.setdefault(f"stack {prefix}", {}).setdefault(model, []).append(
            (True, f"canary {shown} ({_canary_share(name)} of requests)") if canary else (False, shown))
    return {stack: "; ".join(f"{model} {', '.join(text for _, text in sorted(servers))}".strip()  # champion first
                             for model, servers in sorted(models.items())) for stack, models in found.items()}


def stack_versions(model: str) -> set[str]:
    """The versions of `model` that serving containers of Docker stacks on this host hold, canaries included.

    A container without a model label (a stack from before `models:`) counts for every model: what it serves
    is unknown, so it is kept.
    """
    return {version for _, _, labelled, _, version in _serving_containers()
            if version != NO_VERSION and labelled in (model, "")}


def _serving_containers() -> list[tuple[str, str, str, bool, str]]:
    """(container, stack prefix, model, is a canary, model version) per serving container; none without Docker."""
    try:
        row = '{{.Names}}\t{{.Label "' + STACK_LABEL + '"}}\t{{.Label "' + MODEL_LABEL + '"}}'
        listed = subprocess.run(["docker", "ps", "--filter", f"label={STACK_LABEL}", "--format", row],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
        name, prefix, model = (line.split("\t") + ["", ""])[:3]
        # The default model's containers are serving(-canary)-v..., another model's release-<name>-v... and
        # canary-<name>-v... (services.contract.serving_alias); a candidate is no part of what serves.
        if match := re.fullmatch(rf"{re.escape(prefix)}-(serving|serving-canary|release-.+|canary-.+)-v([A-Za-z0-9_.]+)"
                                 r"-[0-9a-f]+", name):
            canary = match[1] == "serving-canary" or match[1].startswith("canary-")
            found.append((name, prefix, model, canary, match[2]))
    return found


def _canary_share(container: str) -> str:
    done = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", container],
                          capture_output=True, text=True, timeout=5)
    env = dict(item.split("=", 1) for item in json.loads(done.stdout or "[]") if "=" in item)
    return f"{canary_share(int(env.get(CANARY_WEIGHT_ENV, '0'))):.0%}"


def _mlflow(config: PipelineConfig) -> str:
    pid = platform.mlflow_process(config).pid()
    if not platform.url_ok(f"{config.platform.mlflow_url}/health"):
        return "down"
    if pid is None:  # answering, but started from another state dir (or by hand)
        return f"{config.platform.mlflow_url} up (not started from {config.platform.state_dir})"
    return f"{config.platform.mlflow_url} up (pid {pid}, {platform.resident_memory_mib(pid):.0f} MiB)"


def _front(config: PipelineConfig) -> str:
    pid = front_process(config).pid()
    if pid is None:
        return "down"
    default = read_default(routes_dir(config.platform.state_dir))
    return (f"{config.platform.serving_url} up (pid {pid}, {platform.resident_memory_mib(pid):.0f} MiB); "
            f"/predict answers for {default or 'no model yet'}")


def _serving(config: PipelineConfig, model: str) -> dict[str, str]:
    live = live_release(config, model)
    if live is None:
        return {"local": "not served here"}
    deployment, pid = live.deployment, slot_process(config, live.slot, model).pid() or 0
    ready = platform.url_ok(f"{deployment.url}/readyz")
    return {
        "local": (f"{deployment.url} {'ready' if ready else 'NOT READY'} ({live.slot} server pid {pid}, "
                  f"{platform.resident_memory_mib(pid):.0f} MiB)"),
        "local model": f"v{deployment.model_version} ({deployment.bento_tag}) since {deployment.started_at}",
        "local runtime": _from_tags(config, model, deployment.model_version, _runtime),
    }


def _aliases(config: PipelineConfig, model: str) -> dict[str, str]:
    """One row per alias (champion, previous, challenger): the version it names, with its task, estimator and
    runtime."""
    try:
        found = call(config, "GET", "registered-models/get", name=model)
    except NotFound:
        return {"aliases": "no model yet"}
    except (httpx.HTTPError, Failed) as exc:
        return {"aliases": f"unknown ({exc})"}
    aliases = {a["alias"]: a["version"] for a in found.get("registered_model", {}).get("aliases", [])}
    if not aliases:
        return {"aliases": "no model yet"}
    return {f"@{alias}": f"v{version} ({_from_tags(config, model, version, describe_version)})"
            for alias, version in sorted(aliases.items())}


def _monitoring(config: PipelineConfig, model: str) -> dict[str, str]:
    """The model's last monitoring verdict and its newest retrain request, from the monitoring experiment."""
    if "'" in model:
        return {"monitoring": "unknown (a name MLflow's run filter cannot quote)"}
    experiment, of_model = config.monitoring.experiment, f"tags.{REPORT_MODEL_TAG} = '{model}'"
    try:
        report = newest_run_tags(config, experiment, f"{of_model} and tags.{REPORT_VERDICT_TAG} != ''")
        request = newest_run_tags(config, experiment, f"{of_model} and tags.{RETRAIN_REQUESTED_TAG} = 'true'")
    except _UNREADABLE as exc:
        return {"monitoring": f"unknown ({exc})"}
    verdict = (f"{report[REPORT_VERDICT_TAG]} on v{report.get(REPORT_VERSION_TAG, '?')}"
               if report else "never judged")
    return {"monitoring": verdict, "retrain request": _retrain_request(request)}


def _retrain_request(tags: dict[str, str] | None) -> str:
    if tags is None:
        return "none"
    asked_at, status = tags.get(RETRAIN_REQUESTED_AT_TAG, "?"), tags.get(RETRAIN_STATUS_TAG)
    if status == RETRAIN_OPEN:
        return f"open since {asked_at} (drift on v{tags.get(REPORT_VERSION_TAG, '?')})"
    return f"none open (the last, of {asked_at}, is {status})"


def describe_version(tags: dict[str, str]) -> str:
    """A version's task, estimator, runtime and data source from its tags; what a version trained before they
    were set was (and no source: older versions did not record its kind or snapshot policy)."""
    described = f"{tags.get(TASK_TAG, CLASSIFICATION)}, {tags.get(ESTIMATOR_TAG, 'unknown')}, runtime {_runtime(tags)}"
    if DATA_SOURCE_KIND_TAG not in tags:
        return described
    return (f"{described}, data {tags.get(DATA_SOURCE_TAG, 'unknown')} "
            f"({tags[DATA_SOURCE_KIND_TAG]}, {tags.get(SNAPSHOT_POLICY_TAG, 'copy')})")


def _from_tags(config: PipelineConfig, model: str, version: str, show: Callable[[dict[str, str]], str]) -> str:
    """`show` of the version's tags, or why they could not be read."""
    try:
        found = call(config, "GET", "model-versions/get", name=model, version=version)
    except _UNREADABLE as exc:
        return f"unknown ({exc})"
    return show({t["key"]: t["value"] for t in found.get("model_version", {}).get("tags", [])})


def _runtime(tags: dict[str, str]) -> str:
    """The runtime the gate chose (scikit-learn for a version gated before ONNX)."""
    return tags.get(SERVING_RUNTIME_TAG, SKLEARN_RUNTIME)
