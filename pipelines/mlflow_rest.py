"""A few reads of MLflow's REST API for `make status`: importing the MLflow client would take longer than
everything else the command does."""

from __future__ import annotations

import os
from typing import Any

import httpx

from pipelines.config import TRACKING_PASSWORD_ENV, TRACKING_USERNAME_ENV, PipelineConfig
from pipelines.platform import PROBE_TIMEOUT_S
from pipelines.uris import split_credentials

SEARCH_PAGE = 1000  # registered models per page (MLflow's largest)


class NotFound(LookupError):
    pass


class Failed(RuntimeError):
    pass


def call(config: PipelineConfig, method: str, endpoint: str, **payload: Any) -> dict[str, Any]:
    """One request to `/api/2.0/mlflow/<endpoint>` (a GET's payload as query parameters, a POST's as JSON)."""
    uri, username, password = split_credentials(config.tracking.resolved_uri)
    if not uri.startswith(("http://", "https://")):
        raise Failed(f"not an HTTP tracking server: {config.tracking.display_uri}")
    username = username or os.environ.get(TRACKING_USERNAME_ENV)
    password = password or os.environ.get(TRACKING_PASSWORD_ENV)
    sent = {"params": payload} if method == "GET" else {"json": payload}
    response = httpx.request(method, f"{uri.rstrip('/')}/api/2.0/mlflow/{endpoint}", **sent,
                             auth=(username, password or "") if username else None, timeout=PROBE_TIMEOUT_S)
    if response.status_code == 404 or (response.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in response.text):
        raise NotFound(endpoint)
    if response.status_code != 200:
        raise Failed(f"MLflow answered {response.status_code} to {endpoint}")
    return response.json()


def registered_models(config: PipelineConfig) -> list[str]:
    """Every registered model's name."""
    names, token = [], None
    while True:
        page = call(config, "GET", "registered-models/search", max_results=SEARCH_PAGE,
                    **({"page_token": token} if token else {}))
        names += [model["name"] for model in page.get("registered_models", [])]
        token = page.get("next_page_token")
        if not token:
            return sorted(names)


def newest_run_tags(config: PipelineConfig, experiment: str, filter_string: str) -> dict[str, str] | None:
    """The tags of the newest run in `experiment` that matches `filter_string`; None if there is none."""
    try:
        found = call(config, "GET", "experiments/get-by-name", experiment_name=experiment)
    except NotFound:
        return None
    runs = call(config, "POST", "runs/search", experiment_ids=[found["experiment"]["experiment_id"]],
                filter=filter_string, order_by=["attributes.start_time DESC"], max_results=1).get("runs", [])
    return {tag["key"]: tag["value"] for tag in runs[0]["data"].get("tags", [])} if runs else None
