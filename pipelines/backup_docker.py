"""The Docker plumbing of `pipelines.backup_stack.StackStore`: the client, files in and out of containers,
and the scripts it runs in the MLflow container on the stack's SQLite files."""

from __future__ import annotations

import io
import shlex
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.backup import BackupError

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container


def docker_client() -> DockerClient:
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
    except ImportError:
        raise BackupError("the Docker SDK is missing: uv sync (it is in the dev group)") from None
    except Exception as exc:  # DockerException and friends: no daemon, no permission
        raise BackupError(f"no Docker daemon answers ({exc})") from None
    return client


def fetch(container: Container, path: str, destination: Path) -> None:
    """Copy a file or directory out of a container to `destination` (through a temp tar, never in memory)."""
    stream, _ = container.get_archive(path)
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        for chunk in stream:
            spool.write(chunk)
        spool.seek(0)
        staging = destination.parent / f".{destination.name}.incoming"
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            tar.extractall(staging, filter="data")
    (only,) = list(staging.iterdir())
    only.rename(destination)
    staging.rmdir()


def tar_of(members: dict[str, Path]) -> bytes:
    """A tar of files and directory trees under the given names, owned by the platform's user (10001)."""
    buffer = io.BytesIO()

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 10001
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in members.items():
            tar.add(path, arcname=name, filter=owned)
    return buffer.getvalue()


SQLITE_BACKUP = """
import pathlib, sqlite3
target = pathlib.Path({target!r}); target.mkdir(parents=True)
for source in sorted(pathlib.Path({source!r}).glob('*.db')):
    live = sqlite3.connect(f'file:{{source}}?mode=ro', uri=True); copy = sqlite3.connect(target / source.name)
    live.backup(copy); copy.close(); live.close()
"""

SQLITE_COUNTS = """
import json, pathlib, sqlite3
path = pathlib.Path({path!r}); counts = [0, 0, 0]
if path.exists():
    db = sqlite3.connect(f'file:{{path}}?mode=ro', uri=True)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
        counts = list(db.execute({sql!r}).fetchone())
    db.close()
print(json.dumps(counts))
"""



def run_in(container: Container, command: list[str], what: str = "") -> str:
    """Run `command` in the container and return its stdout; a non-zero exit is a BackupError naming it."""
    result = container.exec_run(command, demux=True)
    out, err = (part.decode(errors="replace") if part else "" for part in result.output)
    if result.exit_code != 0:
        what = what or f"`{shlex.join(command)[:120]}`"
        raise BackupError(f"{what} in {container.name} failed: {(err or out).strip()[-500:]}")
    return out
