"""The files `pipelines gc` sweeps, wherever they live: a folder of this machine, or a Docker stack's volume.

A `Tree` lists files under its root by a glob (relative names, sizes, modification times), reads one as lines and
deletes one, so one set of retention rules (pipelines.retention) and one storage count (pipelines.storage) serve
both. On a stack, the monitoring job mounts the inference log read only (by design: it must not destroy
evidence), so the volumes are reached through a short-lived helper container (`stack_trees`): the job's own image,
its own user and the job's own volumes, mounted writable, without a network; it is removed when gc is done.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.backup import BackupError
from pipelines.backup_docker import docker_client, fetch, run_in
from pipelines.config import PipelineConfig
from pipelines.errors import CannotRun
from pipelines.monitor import monitoring_dir
from services.contract import (
    INFERENCE_LOG_ENV,
    MONITORED_MODEL_ENV,
    MONITORING_REPORTS_ENV,
    MONITORING_WORKSPACE_ENV,
    monitoring_alias,
)

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

_LIST = ("import json, pathlib, sys; root = pathlib.Path(sys.argv[1]); print(json.dumps([[str(p.relative_to(root)), "
         "p.stat().st_size, p.stat().st_mtime] for p in (root.glob(sys.argv[2]) if root.is_dir() else []) "
         "if p.is_file()]))")


@dataclass(frozen=True, order=True)
class Entry:
    name: str  # relative to the tree's root, with '/'
    size: int
    mtime: float  # epoch seconds


class Tree(Protocol):
    where: str  # what a message names: a path, or the volume's path in the helper

    def files(self, pattern: str) -> list[Entry]: ...

    def lines(self, name: str) -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class LocalTree:
    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def files(self, pattern: str) -> list[Entry]:
        found = []
        for path in sorted(self.root.glob(pattern)) if self.root.is_dir() else []:
            with contextlib.suppress(OSError):  # removed while listing
                if path.is_file():
                    stat = path.stat()
                    found.append(Entry(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        return found

    def lines(self, name: str) -> Iterator[str]:
        with (self.root / name).open(encoding="utf-8", errors="replace") as handle:
            yield from handle

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


@dataclass(frozen=True)
class ContainerTree:
    """A folder of a running container (the helper), listed and changed through the Docker API."""

    container: Container
    root: str

    @property
    def where(self) -> str:
        return f"{self.root} (a stack volume)"

    def files(self, pattern: str) -> list[Entry]:
        listed = json.loads(run_in(self.container, ["python", "-c", _LIST, self.root, pattern], "listing files"))
        return sorted(Entry(name, size, mtime) for name, size, mtime in listed)

    def lines(self, name: str) -> Iterator[str]:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "file"
            fetch(self.container, str(PurePosixPath(self.root) / name), copy)
            with copy.open(encoding="utf-8", errors="replace") as handle:
                yield from handle

    def delete(self, name: str) -> None:
        path = str(PurePosixPath(self.root) / name)
        run_in(self.container, ["rm", "-f", "--", path], f"deleting {shlex.quote(path)}")


@dataclass(frozen=True)
class Trees:
    """Where one model's monitoring output lives: its inference log, its report files, the Evidently workspace."""

    logs: Tree
    reports: Tree
    workspace: Tree


def local_trees(config: PipelineConfig) -> Trees:
    """The model's monitoring output in this machine's state dir."""
    monitoring = monitoring_dir(config)
    return Trees(LocalTree(config.platform.inference_log_dir), LocalTree(monitoring / "reports"),
                 LocalTree(monitoring / "workspace"))


def _job_of(client: DockerClient, prefix: str, model: str) -> Container:
    """The stack's monitoring job of `model` (the default model's job is `<prefix>-monitoring`, another's
    `<prefix>-monitoring-<model>`): the one whose MODEL_NAME is the model."""
    for alias in (monitoring_alias(None), monitoring_alias(model)):
        with contextlib.suppress(Exception):  # docker.errors.NotFound: try the other name
            job = client.containers.get(f"{prefix}-{alias}")
            if _env(job).get(MONITORED_MODEL_ENV) == model:
                return job
    raise CannotRun(f"the stack '{prefix}' has no monitoring job of model '{model}' on this Docker host "
                    f"(containers {prefix}-{monitoring_alias(None)}, {prefix}-{monitoring_alias(model)})")


def _env(container: Container) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [] if "=" in item)


# Read in the job's container, by its own MLflow client (its env and login): the model's registration time, which
# one registry alone holds. Any failure is one line on stderr and a non-zero exit.
_REGISTERED_AT = ("import sys\nfrom mlflow import MlflowClient\ntry:\n"
                  "    print(MlflowClient().get_registered_model(sys.argv[1]).creation_timestamp)\n"
                  "except Exception as exc:\n"
                  "    sys.exit(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)")


def check_stack_registry(prefix: str, model: str, registry: MlflowClient, registry_uri: str) -> None:
    """gc judges a stack's files by the registry's runs (which report is the newest, which log is judged): refuse any
    registry but the one the stack's monitoring job writes to, before anything is retired or deleted."""
    try:
        here = str(registry.get_registered_model(model).creation_timestamp)
    except MlflowException as exc:
        raise CannotRun(f"model '{model}' is not in the registry at {registry_uri}: "
                        f"{exc.message.splitlines()[0]}") from None
    try:
        job = _job_of(docker_client(), prefix, model)
        there = run_in(job, ["python", "-c", _REGISTERED_AT, model], f"reading model '{model}' from the job's MLflow")
    except BackupError as exc:
        raise CannotRun(str(exc)) from None
    if there.strip() != here:
        raise CannotRun(f"the registry at {registry_uri} is not the stack '{prefix}''s MLflow (model '{model}' was "
                        f"registered at another time there): gc on a stack judges its volumes by the stack's runs; "
                        "point tracking.uri (or MLFLOW_TRACKING_URI) at the stack's MLflow")


@contextlib.contextmanager
def stack_trees(prefix: str, model: str) -> Iterator[Trees]:
    """The model's monitoring output on the stack's volumes, through a helper container removed afterwards."""
    try:
        client = docker_client()
    except BackupError as exc:
        raise CannotRun(str(exc)) from None
    job = _job_of(client, prefix, model)
    env, state = _env(job), (INFERENCE_LOG_ENV, MONITORING_REPORTS_ENV, MONITORING_WORKSPACE_ENV)
    if missing := [name for name in state if not env.get(name)]:
        raise CannotRun(f"the monitoring job {job.name} sets no {', '.join(missing)}: it is not a job this platform "
                        "declared (infra/monitoring.py); run `pulumi up` for the stack first")
    mounts = [f"{m['Name']}:{m['Destination']}:rw" for m in job.attrs["Mounts"] if m.get("Type") == "volume"]
    name = f"{prefix}-gc-{model}"
    with contextlib.suppress(Exception):  # docker.errors.NotFound, or a helper left by a gc that was killed
        client.containers.get(name).remove(force=True)
    try:
        helper = client.containers.run(
            job.image.id, ["sleep", "3600"], detach=True, network_mode="none",
            user=job.attrs["Config"]["User"] or None, volumes=mounts, name=name, labels={"mlops.gc-helper": prefix})
    except Exception as exc:  # noqa: BLE001  docker.errors.APIError, ImageNotFound: one line, no traceback
        raise CannotRun(f"could not start gc's helper {name} from {job.name}'s image: {exc}") from None
    try:
        yield Trees(*(ContainerTree(helper, env[name]) for name in state))
    finally:
        helper.remove(force=True)
