"""What runs where on this machine: MLflow, serving, the aliases, resident memory (`make status`).

It asks MLflow's REST API directly: importing the MLflow client would take longer than everything else
`make status` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

import httpx

from pipelines import platform
from pipelines.config import TRACKING_PASSWORD_ENV, TRACKING_USERNAME_ENV, PipelineConfig
from pipelines.serving_state import front_process, live_release, slot_process
from pipelines.uris import split_credentials
from services.contract import (
    CANARY_WEIGHT_ENV,
    CLASSIFICATION,
    DATA_SOURCE_KIND_TAG,
    DATA_SOURCE_TAG,
    ESTIMATOR_TAG,
    NO_VERSION,
    SERVING_RUNTIME_TAG,
    SKLEARN_RUNTIME,
    SNAPSHOT_POLICY_TAG,
    STACK_LABEL,
    TASK_TAG,
    canary_share,
)


def local_status(config: PipelineConfig) -> dict[str, str]:
    """One line per part, each saying whether it is up and where."""
    rows = {"MLflow": _mlflow(config)}
    rows.update(_serving(config))
    rows.update(stack_serving())
    mlflow_up = rows["MLflow"] != "down"
    if mlflow_up or not config.tracking.resolved_uri.startswith("http://127.0.0.1"):
        rows.update(_aliases(config))
    return rows


def stack_serving() -> dict[str, str]:
    """Per Docker stack on this host: the versions its serving containers hold, and a canary's share.

    Read from the containers themselves (their names carry the version; a canary's weight is in its env),
    so it shows a canary while `make deploy CANARY=...` is judging it. Nothing when Docker is absent.
    """
    try:
        row = '{{.Names}}\t{{.Label "' + STACK_LABEL + '"}}'
        listed = subprocess.run(["docker", "ps", "--filter", f"label={STACK_LABEL}", "--format", row],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[str, list[tuple[bool, str]]] = {}
    for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
        name, _, prefix = line.partition("\t")
        if match := re.fullmatch(rf"{re.escape(prefix)}-serving(-canary)?-v([A-Za-z0-9_.]+)-[0-9a-f]+", name):
            version = "no model" if match[2] == NO_VERSION else f"v{match[2]}"
            found.setdefault(f"stack {prefix}", []).append(
                (True, f"canary {version} ({_canary_share(name)} of requests)") if match[1] else (False, version))
    return {stack: ", ".join(text for _, text in sorted(servers)) for stack, servers in found.items()}  # champion first


def _canary_share(container: str) -> str:
    done = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", container],
                          capture_output=True, text=True, timeout=5)
    env = dict(item.split("=", 1) for item in json.loads(done.stdout or "[]") if "=" in item)
    return f"{canary_share(int(env.get(CANARY_WEIGHT_ENV, '0'))):.0%}"


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
        "serving runtime": _from_tags(config, deployment.model_version, _runtime),
    }


def _aliases(config: PipelineConfig) -> dict[str, str]:
    """One row per alias: the version it names, with its task, estimator and runtime."""
    try:
        found = _get(config, "registered-models/get", name=config.model_name)
    except _NotFound:
        return {"aliases": "no model yet"}
    except (httpx.HTTPError, _Failed) as exc:
        return {"aliases": f"unknown ({exc})"}
    aliases = {a["alias"]: a["version"] for a in found.get("registered_model", {}).get("aliases", [])}
    if not aliases:
        return {"aliases": "no model yet"}
    return {f"@{alias}": f"v{version} ({_from_tags(config, version, describe_version)})"
            for alias, version in sorted(aliases.items())}


def describe_version(tags: dict[str, str]) -> str:
    """A version's task, estimator, runtime and data source from its tags; what a version trained before they
    were set was (and no source: older versions did not record its kind or snapshot policy)."""
    described = f"{tags.get(TASK_TAG, CLASSIFICATION)}, {tags.get(ESTIMATOR_TAG, 'unknown')}, runtime {_runtime(tags)}"
    if DATA_SOURCE_KIND_TAG not in tags:
        return described
    return (f"{described}, data {tags.get(DATA_SOURCE_TAG, 'unknown')} "
            f"({tags[DATA_SOURCE_KIND_TAG]}, {tags.get(SNAPSHOT_POLICY_TAG, 'copy')})")


def _from_tags(config: PipelineConfig, version: str, show: Callable[[dict[str, str]], str]) -> str:
    """`show` of the version's tags, or why they could not be read."""
    try:
        found = _get(config, "model-versions/get", name=config.model_name, version=version)
    except (httpx.HTTPError, _NotFound, _Failed) as exc:
        return f"unknown ({exc})"
    return show({t["key"]: t["value"] for t in found.get("model_version", {}).get("tags", [])})


def _runtime(tags: dict[str, str]) -> str:
    """The runtime the gate chose (scikit-learn for a version gated before ONNX)."""
    return tags.get(SERVING_RUNTIME_TAG, SKLEARN_RUNTIME)


class _NotFound(LookupError):
    pass


class _Failed(RuntimeError):
    pass


def _get(config: PipelineConfig, endpoint: str, **params: str) -> dict[str, Any]:
    uri, username, password = split_credentials(config.tracking.resolved_uri)
    if not uri.startswith(("http://", "https://")):
        raise _Failed(f"not an HTTP tracking server: {config.tracking.display_uri}")
    username = username or os.environ.get(TRACKING_USERNAME_ENV)
    password = password or os.environ.get(TRACKING_PASSWORD_ENV)
    response = httpx.get(f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}", params=params,
                         auth=(username, password or "") if username else None, timeout=platform.PROBE_TIMEOUT_S)
    if response.status_code == 404 or (response.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in response.text):
        raise _NotFound(endpoint)
    if response.status_code != 200:
        raise _Failed(f"MLflow answered {response.status_code} to {endpoint}")
    return response.json()
