"""The local serving target: `bentoml serve` on this machine behind the local front, the embedded default.

Blue/green: a release starts the new bento in the idle slot on a spare port, waits for `/readyz` and
passes the smoke check there; only then does the front (`pipelines.front`, on the serving port) route to
it, and after one more check through the front the old server is stopped gracefully. The serving URL
never stops answering, and any failure before the last step leaves the old server serving. What serves
is recorded beside the pid files, so `make status` and a later release know it.

Several models serve side by side behind the one front, each with its own slots, state and route
(`pipelines.serving_state`); a release of one model checks it at `/models/<name>/` and touches nothing of
another's. `/predict` goes to the default model: the demo config's, else the first deployed.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipelines.bento import BuiltBento, use_store
from pipelines.config import ConfigError, PipelineConfig, load_config
from pipelines.config_files import default_config_path
from pipelines.deploy import DeployError, check_serving, release_check_headers
from pipelines.front import HEALTH_PATH, MAX_BODY_ENV, ROUTES_DIR_ENV
from pipelines.platform import (
    PROBE_TIMEOUT_S,
    PlatformError,
    Process,
    free_port,
    request,
    serve_once,
    url_ok,
    wait_until,
)
from pipelines.routes import DEFAULT_FILE, Route, claim_default, read_route, routes_dir, write_route
from pipelines.serving_state import (
    SLOTS,
    Deployment,
    LiveRelease,
    front_process,
    live_release,
    local_models,
    model_url,
    release_file,
    route_file,
    save_live_release,
    slot_process,
)
from services.contract import INFERENCE_LOG_ENV, SMOKE_TOKEN_FILE_ENV


def stop_serving(config: PipelineConfig) -> bool:
    """Stop the front and both slots of every model on this platform; True if something was running."""
    stopped = []
    for model in local_models(config):
        release_file(config, model).unlink(missing_ok=True)
        write_route(route_file(config, model), None)
        stopped += [slot_process(config, slot, model).stop() for slot in SLOTS]
    (routes_dir(config.platform.state_dir) / DEFAULT_FILE).unlink(missing_ok=True)
    return any([*stopped, front_process(config).stop()])


class LocalTarget:
    """Start the bento in the idle slot, check it, point the front at it, then stop the old slot."""

    name = "local"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        config = self.config
        start_front(config)
        front_url = model_url(config)
        live = live_release(config)
        slot = SLOTS[1] if live and live.slot == SLOTS[0] else SLOTS[0]
        process = slot_process(config, slot)
        process.stop()  # what a failed release may have left in the idle slot
        headers = _check_headers(config)
        try:
            backend = _start(config, process, bento.tag, free_port(config.platform.host))
            check_serving(backend, bento, smoke, f"server log: {process.log_file}", headers)
        except (DeployError, PlatformError):
            process.stop()
            raise
        routes = route_file(config)
        before = read_route(routes)
        write_route(routes, Route(backend, bento.model_version, bento.tag, slot))  # from here on, it serves
        try:
            check_serving(front_url, bento, smoke, f"front log: {front_process(config).log_file}", headers)
        except (DeployError, PlatformError):
            write_route(routes, before)
            process.stop()
            raise
        claim_default(routes.parent, config.model_name, always=_is_default_model(config))
        if live is not None:
            slot_process(config, live.slot).stop()  # SIGTERM: it finishes the requests it is answering
        deployment = Deployment(bento.tag, bento.model_version, front_url, datetime.now(UTC).isoformat())
        save_live_release(config, LiveRelease(slot, deployment))
        return deployment


def start_front(config: PipelineConfig) -> str:
    """Start the local front on the serving port unless it already runs; return the serving URL. Idempotent."""
    platform = config.platform
    front = front_process(config)
    if front.pid() is not None and not _routes_by_model(f"{platform.serving_url}{HEALTH_PATH}"):
        _stop_single_model_serving(config)
    serve_once(
        front,
        [sys.executable, "-m", "uvicorn", "--factory", "pipelines.front:create_app", "--host", platform.host,
         "--port", str(platform.serving_port), "--no-access-log", "--timeout-graceful-shutdown", "30"],
        host=platform.host, port=platform.serving_port, port_setting="platform.serving_port",
        probe=f"{platform.serving_url}{HEALTH_PATH}", timeout_s=platform.startup_timeout_s,
        what=f"serving front on {platform.serving_url}",
        # Its own body limit is one byte above the server's, so the server's own 413 (with its message) wins.
        env={ROUTES_DIR_ENV: str(routes_dir(platform.state_dir)), MAX_BODY_ENV: str(config.serving.max_body_bytes + 1)},
    )
    return platform.serving_url


def _stop_single_model_serving(config: PipelineConfig) -> None:
    """Stop what a platform from before models had routes of their own serves: its front sends every path to
    one model, and its two slots keep their state in the state dir's own `run/` (once, at the first release)."""
    state = config.platform.state_dir
    for slot in SLOTS:
        Process(f"serving-{slot}", state).stop()
    for name in ("front-route.json", "serving.json"):
        (state / "run" / name).unlink(missing_ok=True)
    front_process(config).stop()


def _routes_by_model(health_url: str) -> bool:
    try:
        return "models" in request("GET", health_url, PROBE_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError):
        return True  # not answering: serve_once restarts it anyway


def _is_default_model(config: PipelineConfig) -> bool:
    """Whether the project's default config (the first model's, or the demo's) names this model: `/predict` is
    then always its."""
    try:
        return load_config(default_config_path()).model_name == config.model_name
    except ConfigError:
        return False  # a fork that broke its default config: the first model deployed keeps `/predict`


def _start(config: PipelineConfig, process: Process, bento_tag: str, port: int) -> str:
    home = use_store(config)
    process.start(
        [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", config.platform.host, "--port", str(port)],
        env={"BENTOML_HOME": str(home), INFERENCE_LOG_ENV: str(config.platform.inference_log_dir),
             SMOKE_TOKEN_FILE_ENV: str(_smoke_token_file(config)), "BENTOML_DO_NOT_TRACK": "true"},
    )
    url = f"http://{config.platform.host}:{port}"
    wait_until(lambda: url_ok(f"{url}/readyz"), process, config.platform.startup_timeout_s,
               f"bento {bento_tag} on {url}")
    return url


def _smoke_token_file(config: PipelineConfig) -> Path:
    """This machine's smoke token (made once, readable by its owner only): the server logs a request that
    carries it apart from user traffic, so a release's checks never reach monitoring."""
    path = config.platform.state_dir / "run" / "smoke-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path


def _check_headers(config: PipelineConfig) -> dict[str, str]:
    return release_check_headers(_smoke_token_file(config).read_text(), serving_token=None)
