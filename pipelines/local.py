"""The local serving target: `bentoml serve` on this machine, the embedded default.

A rollout first starts the new bento on a spare port, waits for `/readyz` and passes the smoke check;
only then does it replace the server on the serving port. If the new server fails there, the previous
bento is started again. What serves is recorded beside the pid file, so `make status` and a later
release know it.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from pipelines.bento import BuiltBento, use_store
from pipelines.config import PipelineConfig
from pipelines.deploy import DeployError, Deployment, check_serving, release_check_headers
from pipelines.platform import PlatformError, Process, free_port, port_in_use, url_ok, wait_until
from services.contract import INFERENCE_LOG_ENV, SMOKE_TOKEN_FILE_ENV


def serving_process(config: PipelineConfig) -> Process:
    return Process("serving", config.platform.state_dir)


def current_deployment(config: PipelineConfig) -> Deployment | None:
    state = _deployment_file(config)
    if serving_process(config).pid() is None or not state.exists():
        return None
    return Deployment(**json.loads(state.read_text()))


def stop_serving(config: PipelineConfig) -> bool:
    _deployment_file(config).unlink(missing_ok=True)
    return serving_process(config).stop()


class LocalTarget:
    """Rehearse the bento on a spare port, then switch the serving port over to it."""

    name = "local"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config

    def roll_out(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        self._rehearse(bento, smoke)
        return self._switch(bento, smoke)

    def _rehearse(self, bento: BuiltBento, smoke: list[dict]) -> None:
        """Start the new bento on a spare port, check it, stop it. The serving port is not touched."""
        config = self.config
        candidate = Process("serving-candidate", config.platform.state_dir)
        candidate.stop()
        port = free_port(config.platform.host)
        try:
            url = _start(config, candidate, bento.tag, port)
            check_serving(url, bento, smoke, f"server log: {candidate.log_file}", _check_headers(config))
        finally:
            candidate.stop()

    def _switch(self, bento: BuiltBento, smoke: list[dict]) -> Deployment:
        """Replace the server on the serving port; restore the old one if the new one fails there."""
        config = self.config
        serving = serving_process(config)
        old = current_deployment(config)
        serving.stop()
        try:
            _wait_port_free(config.platform.host, config.platform.serving_port)
            if port_in_use(config.platform.host, config.platform.serving_port):
                raise DeployError(f"port {config.platform.host}:{config.platform.serving_port} is taken by another "
                                  "program; stop it or set platform.serving_port")
            url = _start(config, serving, bento.tag, config.platform.serving_port)
            check_serving(url, bento, smoke, f"server log: {serving.log_file}", _check_headers(config))
        except (DeployError, PlatformError) as failure:
            serving.stop()
            if old is not None:
                self._restore(old, failure)
            raise
        deployment = Deployment(bento.tag, bento.model_version, url, datetime.now(UTC).isoformat())
        _save(config, deployment)
        return deployment

    def _restore(self, old: Deployment, failure: Exception) -> None:
        """Serve the previous bento again; if even that fails, say so without hiding why the release failed."""
        config = self.config
        try:
            _start(config, serving_process(config), old.bento_tag, config.platform.serving_port)
            _save(config, old)
        except Exception as exc:  # the release's own failure is the error to report; this one is added to it
            raise DeployError(f"{failure}\nand restoring {old.bento_tag} failed too: {exc}") from None


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


def _deployment_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "serving.json"


def _save(config: PipelineConfig, deployment: Deployment) -> None:
    _deployment_file(config).write_text(json.dumps(asdict(deployment), indent=2))


def _wait_port_free(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port_in_use(host, port) and time.monotonic() < deadline:
        time.sleep(0.2)
