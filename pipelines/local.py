"""The local serving target: `bentoml serve` on this machine behind the local front, the embedded default.

Blue/green: a release starts the new bento in the idle slot on a spare port, waits for `/readyz` and
passes the smoke check there; only then does the front (`pipelines.front`, on the serving port) route to
it, and after one more check through the front the old server is stopped gracefully. The serving URL
never stops answering, and any failure before the last step leaves the old server serving. What serves
is recorded beside the pid files, so `make status` and a later release know it.
"""

from __future__ import annotations

import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipelines.bento import BuiltBento, use_store
from pipelines.config import PipelineConfig
from pipelines.deploy import DeployError, check_serving, release_check_headers
from pipelines.front import HEALTH_PATH, MAX_BODY_ENV, ROUTE_FILE_ENV
from pipelines.platform import PlatformError, Process, free_port, serve_once, url_ok, wait_until
from pipelines.routes import Route, read_route, write_route
from pipelines.serving_state import (
    SLOTS,
    Deployment,
    LiveRelease,
    front_process,
    live_release,
    release_file,
    route_file,
    save_live_release,
    slot_process,
)
from services.contract import INFERENCE_LOG_ENV, SMOKE_TOKEN_FILE_ENV


def stop_serving(config: PipelineConfig) -> bool:
    """Stop the front and both slots; True if something was running."""
    release_file(config).unlink(missing_ok=True)
    write_route(route_file(config), None)
    stopped = [slot_process(config, slot).stop() for slot in SLOTS] + [front_process(config).stop()]
    return any(stopped)


class LocalTarget:
    """Start the bento in the idle slot, check it, point the front at it, then stop the old slot."""

    name = "local"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        config = self.config
        front_url = start_front(config)
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
        if live is not None:
            slot_process(config, live.slot).stop()  # SIGTERM: it finishes the requests it is answering
        deployment = Deployment(bento.tag, bento.model_version, front_url, datetime.now(UTC).isoformat())
        save_live_release(config, LiveRelease(slot, deployment))
        return deployment


def start_front(config: PipelineConfig) -> str:
    """Start the local front on the serving port unless it already runs; return the serving URL. Idempotent."""
    platform = config.platform
    serve_once(
        front_process(config),
        [sys.executable, "-m", "uvicorn", "--factory", "pipelines.front:create_app", "--host", platform.host,
         "--port", str(platform.serving_port), "--no-access-log", "--timeout-graceful-shutdown", "30"],
        host=platform.host, port=platform.serving_port, port_setting="platform.serving_port",
        probe=f"{platform.serving_url}{HEALTH_PATH}", timeout_s=platform.startup_timeout_s,
        what=f"serving front on {platform.serving_url}",
        # Its own body limit is one byte above the server's, so the server's own 413 (with its message) wins.
        env={ROUTE_FILE_ENV: str(route_file(config)), MAX_BODY_ENV: str(config.serving.max_body_bytes + 1)},
    )
    return platform.serving_url


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
