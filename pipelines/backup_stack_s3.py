"""The stack's S3 artifact store as this host reaches it, for `pipelines.backup_stack.StackStore`.

MLflow's container says where its artifacts are (`--artifacts-destination s3://...`), which endpoint it uses
(MLFLOW_S3_ENDPOINT_URL) and where its keys are (AWS_SHARED_CREDENTIALS_FILE, a secret file inside it). While
a backup or restore copies the prefix, `pipelines.object_store` gets exactly those: the keys are copied out
of the container into a private temporary file, and an endpoint named by a network alias of the stack (its
own SeaweedFS, which publishes no port) is reached at that container's address on the stack network, which
this Docker host routes to. Nothing of the host's own AWS_* settings takes part.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipelines.backup import BackupError
from pipelines.backup_docker import fetch
from pipelines.object_store import S3Location

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

# The host's own settings that would otherwise win over (or add to) the container's.
HOST_S3_SETTINGS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE")


def artifacts_location(destination: str, container: Container) -> S3Location | None:
    """The S3 prefix of MLflow's `--artifacts-destination`, or None when the artifacts are files."""
    if not destination.startswith("s3://"):
        return None
    return S3Location.parse(destination, f"--artifacts-destination of {container.name}")


def _env(container: Container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [])


def _reachable_endpoint(client: DockerClient, container: Container, endpoint: str) -> str:
    """The endpoint; one whose host is a network alias of the stack is that container's address instead."""
    parts = urlsplit(endpoint)
    for network in container.attrs["NetworkSettings"]["Networks"]:
        for peer in client.containers.list(filters={"network": network}):
            settings = peer.attrs["NetworkSettings"]["Networks"].get(network) or {}
            if parts.hostname in (settings.get("Aliases") or []) and settings.get("IPAddress"):
                return parts._replace(netloc=f"{settings['IPAddress']}:{parts.port or 80}").geturl()
    return endpoint


@contextmanager
def mlflows_s3_access(client: DockerClient, container: Container) -> Iterator[None]:
    """Within the block, `pipelines.object_store` uses the endpoint and keys MLflow's container uses."""
    env = _env(container)
    credentials = env.get("AWS_SHARED_CREDENTIALS_FILE")
    if not credentials:
        raise BackupError(f"{container.name} keeps its artifacts in S3 but has no AWS_SHARED_CREDENTIALS_FILE: "
                          "is it the stack's MLflow?")
    endpoint = env.get("MLFLOW_S3_ENDPOINT_URL", "")
    with tempfile.TemporaryDirectory(prefix="stack-s3-") as private:  # 0700: only this user reads the keys
        keys = Path(private) / "credentials"
        fetch(container, credentials, keys)
        settings = {name: None for name in HOST_S3_SETTINGS} | {
            "AWS_SHARED_CREDENTIALS_FILE": str(keys),
            "MLFLOW_S3_ENDPOINT_URL": _reachable_endpoint(client, container, endpoint) if endpoint else None,
        }
        before = {name: os.environ.get(name) for name in settings}
        try:
            _set(settings)
            yield
        finally:
            _set(before)


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
