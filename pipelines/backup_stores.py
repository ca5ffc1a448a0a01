"""The two places tracking state lives, as `pipelines.backup.TrackingStore`s.

`LocalStore`: the local platform's SQLite database and artifact directory under the state dir.
`StackStore`: the stack's containers on this Docker host, found by the stack's name prefix: the database
is dumped inside its own container (`pg_dump` in the Postgres one, SQLite's backup API in the MLflow
one), the artifact store is read and written through the Docker API, and a restore stops the MLflow
container, replaces the state and starts it again (its entrypoint migrates the schema, then it serves).
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import sqlite3
import tarfile
import tempfile
import time
from contextlib import closing
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import yaml

from pipelines.backup import Backend, BackupError, copy_tree
from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.platform import mlflow_process
from services.contract import DEFAULT_NAME_PREFIX

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

SQLITE_DUMP = "database/mlflow.sqlite"
POSTGRES_DUMP = "database/mlflow.pgdump"
EXTRA_SQLITE_DIR = "database/extra"  # the stack's other SQLite files (basic auth's users and permissions)
# What makes a store "not empty": runs, registered models or experiments beyond MLflow's Default one.
CONTENTS_SQL = ("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM registered_models), "
                "(SELECT count(*) FROM experiments WHERE experiment_id <> '0')")


def describe_contents(runs: int, models: int, experiments: int, artifact_files: bool) -> str | None:
    parts = [f"{count} {noun}" for count, noun in ((runs, "runs"), (models, "registered models"),
                                                   (experiments, "experiments")) if count]
    if artifact_files:
        parts.append("artifact files")
    return ", ".join(parts) or None


def schema_revision_of(sqlite_file: Path) -> str:
    with closing(sqlite3.connect(sqlite_file)) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return revision


def online_copy(source: Path, destination: Path) -> None:
    """SQLite's online backup API: a consistent copy while the server keeps writing (never a file copy)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as live, \
            closing(sqlite3.connect(destination)) as copy:
        live.backup(copy)


def knows_revision(revision: str) -> bool:
    from services.tracking.schema import is_known_revision

    return is_known_revision(revision)


class LocalStore:
    """The local platform (`make platform`): `<state_dir>/mlflow/mlflow.db` and `<state_dir>/mlflow/artifacts`."""

    label = "local"
    backend: Backend = "sqlite"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.root = config.platform.state_dir / "mlflow"
        self.database, self.artifacts = self.root / "mlflow.db", self.root / "artifacts"
        self.description = f"the local platform ({self.root})"

    def mlflow_version(self) -> str:
        return version("mlflow")  # the local server runs from this environment

    def dump(self, into: Path) -> str:
        if not self.database.is_file():
            raise BackupError(f"no MLflow database at {self.database}: nothing to back up (start it: make platform)")
        online_copy(self.database, into / SQLITE_DUMP)
        copy_tree(self.artifacts, into / "artifacts")
        return schema_revision_of(into / SQLITE_DUMP)

    def contents(self) -> str | None:
        counts = (0, 0, 0)
        if self.database.is_file():
            with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
                    counts = db.execute(CONTENTS_SQL).fetchone()
        has_files = self.artifacts.is_dir() and any(path.is_file() for path in self.artifacts.rglob("*"))
        return describe_contents(*counts, has_files)

    def can_read(self, revision: str) -> bool:
        return knows_revision(revision)

    def check_loadable(self) -> None:
        if mlflow_process(self.config).pid() is not None:
            raise BackupError(f"the local MLflow server is running on {self.root}; stop it first (make down)")

    def load(self, backup: Path) -> None:
        self.check_loadable()
        for stale in (self.database, self.root / "mlflow.db-wal", self.root / "mlflow.db-shm"):
            stale.unlink(missing_ok=True)
        if self.artifacts.exists():
            shutil.rmtree(self.artifacts)
        self.root.mkdir(parents=True, exist_ok=True)
        online_copy(backup / SQLITE_DUMP, self.database)
        copy_tree(backup / "artifacts", self.artifacts)


def stack_name_prefix(stack: str) -> str:
    """The `namePrefix` of a stack, read from its committed `Pulumi.<stack>.yaml` (the default when unset)."""
    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    try:
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except FileNotFoundError:
        raise BackupError(f"no stack file {path.name}; name an existing stack with --stack") from None
    return str(config.get("mlops-platform:namePrefix", DEFAULT_NAME_PREFIX))


def _docker_client() -> DockerClient:
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
    except ImportError:
        raise BackupError("the Docker SDK is missing: uv sync (it is in the dev group)") from None
    except Exception as exc:  # DockerException and friends: no daemon, no permission
        raise BackupError(f"no Docker daemon answers ({exc})") from None
    return client


def _argument(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1] if flag in command else ""


class StackStore:
    """The stack's tracking state on this Docker host: containers `<prefix>-mlflow` (and `<prefix>-postgres`)."""

    def __init__(self, prefix: str, client: DockerClient | None = None, health_timeout_s: float = 300.0) -> None:
        self.client = client or _docker_client()
        self.label = f"stack-{prefix}"
        self.description = f"the stack '{prefix}'"
        self.health_timeout_s = health_timeout_s
        self.mlflow = self._container(f"{prefix}-mlflow")
        command = list(self.mlflow.attrs["Config"]["Cmd"] or [])
        self.artifacts_dir = _argument(command, "--artifacts-destination")
        backend_uri = _argument(command, "--backend-store-uri")
        self.backend: Backend = "postgres" if backend_uri.startswith("postgresql") else "sqlite"
        self.sqlite_file = backend_uri.removeprefix("sqlite:///") if self.backend == "sqlite" else ""
        # The backend volume: MLflow's SQLite files (its store, basic auth's) all live there.
        self.backend_dir = next(m["Destination"] for m in self.mlflow.attrs["Mounts"]
                                if m["Destination"] != self.artifacts_dir)
        self.postgres = self._container(f"{prefix}-postgres") if self.backend == "postgres" else None

    def _container(self, name: str) -> Container:
        import docker

        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            raise BackupError(f"no container {name} on this Docker host: is the stack up?") from None

    def _exec(self, container: Container, command: list[str]) -> str:
        result = container.exec_run(command, demux=True)
        out, err = (part.decode(errors="replace") if part else "" for part in result.output)
        if result.exit_code != 0:
            what = shlex.join(command)[:120]
            raise BackupError(f"`{what}` in {container.name} failed: {(err or out).strip()[-500:]}")
        return out

    def _python(self, script: str) -> str:
        return self._exec(self.mlflow, ["python", "-c", script])

    def _psql(self, sql: str, database: str | None = None) -> str:
        user, db = self._postgres_login()
        return self._exec(self.postgres, ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", user,
                                          "-d", database or db, "-c", sql]).strip()

    def _postgres_login(self) -> tuple[str, str]:
        env = dict(item.split("=", 1) for item in self.postgres.attrs["Config"]["Env"] or [])
        return env.get("POSTGRES_USER", "mlflow"), env.get("POSTGRES_DB", "mlflow")

    def mlflow_version(self) -> str:
        return self._python("from importlib.metadata import version; print(version('mlflow'))").strip()

    def dump(self, into: Path) -> str:
        database = into / "database"
        database.mkdir(parents=True)
        if self.postgres is not None:
            user, db = self._postgres_login()
            revision = self._psql("SELECT version_num FROM alembic_version")
            scratch = f"/tmp/backup-{time.time_ns()}.pgdump"
            self._exec(self.postgres, ["pg_dump", "--format=custom", "--no-owner", "-U", user, "-d", db, "-f", scratch])
            self._fetch(self.postgres, scratch, into / POSTGRES_DUMP)
            self._exec(self.postgres, ["rm", "-f", scratch])
        # Every SQLite file of the backend volume, with SQLite's online backup API inside the MLflow container.
        scratch = f"/tmp/backup-{time.time_ns()}"
        self._python(_SQLITE_BACKUP.format(source=self.backend_dir, target=scratch))
        self._fetch(self.mlflow, scratch, into / "database" / "sqlite")
        self._exec(self.mlflow, ["rm", "-rf", scratch])
        sqlite_dir = into / "database" / "sqlite"
        if self.backend == "sqlite":
            (sqlite_dir / PurePosixPath(self.sqlite_file).name).rename(into / SQLITE_DUMP)
            revision = schema_revision_of(into / SQLITE_DUMP)
        sqlite_dir.rename(into / EXTRA_SQLITE_DIR)
        self._fetch(self.mlflow, self.artifacts_dir, into / "artifacts")
        return revision

    def _fetch(self, container: Container, path: str, destination: Path) -> None:
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

    def contents(self) -> str | None:
        if self.postgres is not None:
            has_tables = self._psql("SELECT to_regclass('public.runs') IS NOT NULL") == "t"
            counts = tuple(int(n) for n in self._psql(CONTENTS_SQL).split("|")) if has_tables else (0, 0, 0)
        else:
            counts = tuple(json.loads(self._python(_SQLITE_COUNTS.format(path=self.sqlite_file, sql=CONTENTS_SQL))))
        files = self._exec(self.mlflow, ["find", self.artifacts_dir, "-type", "f", "-print", "-quit"]).strip()
        return describe_contents(*counts, bool(files))

    def can_read(self, revision: str) -> bool:
        answer = self._python(f"import sys; sys.path.insert(0, '/opt/tracking'); import schema; "
                              f"print(schema.is_known_revision({revision!r}))")
        return answer.strip() == "True"

    def check_loadable(self) -> None:
        """The MLflow container is stopped for the restore and started again, so nothing else is needed."""

    def load(self, backup: Path) -> None:
        self.mlflow.stop(timeout=30)
        try:
            if self.postgres is not None:
                self._load_postgres(backup / POSTGRES_DUMP)
            self._replace_files(backup)
        finally:
            self.mlflow.start()
        self._wait_healthy()

    def _load_postgres(self, dump: Path) -> None:
        user, db = self._postgres_login()
        scratch = f"/tmp/restore-{time.time_ns()}.pgdump"
        self.postgres.put_archive("/tmp", _tar({PurePosixPath(scratch).name: dump}))
        # The MLflow container is stopped, so nothing holds the database while it is replaced.
        self._psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', database="postgres")
        self._psql(f'CREATE DATABASE "{db}"', database="postgres")
        self._exec(self.postgres, ["pg_restore", "--no-owner", "--exit-on-error", "-U", user, "-d", db, scratch])
        self._exec(self.postgres, ["rm", "-f", scratch])

    def _replace_files(self, backup: Path) -> None:
        """Replace the artifact store and the SQLite files in a one-off container of the MLflow image that
        mounts the same volumes (the MLflow container itself is stopped, so it cannot exec)."""
        payload = {"artifacts": backup / "artifacts"}
        sqlite_files = {path.name: path for path in sorted((backup / EXTRA_SQLITE_DIR).glob("*"))}
        if self.backend == "sqlite":
            sqlite_files[PurePosixPath(self.sqlite_file).name] = backup / SQLITE_DUMP
        payload |= {f"sqlite/{name}": path for name, path in sqlite_files.items()}
        backend = shlex.quote(self.backend_dir)
        script = (
            f"find {shlex.quote(self.artifacts_dir)} -mindepth 1 -delete"
            f" && cp -R /tmp/restore/artifacts/. {shlex.quote(self.artifacts_dir)}/"
            f" && if [ -d /tmp/restore/sqlite ]; then cd /tmp/restore/sqlite && for f in *; do"
            f" rm -f {backend}/$f-wal {backend}/$f-shm && cp \"$f\" {backend}/\"$f\"; done; fi"
        )
        helper = self.client.containers.create(
            self.mlflow.attrs["Config"]["Image"], entrypoint=["sh", "-c", script],
            user=self.mlflow.attrs["Config"]["User"],
            volumes={m["Name"]: {"bind": m["Destination"], "mode": "rw"} for m in self.mlflow.attrs["Mounts"]},
            labels=self.mlflow.labels, network_disabled=True,
        )
        try:
            helper.put_archive("/tmp", _tar({f"restore/{name}": path for name, path in payload.items()}))
            helper.start()
            outcome = helper.wait(timeout=600)
            if outcome["StatusCode"] != 0:
                raise BackupError(f"replacing the files failed: {helper.logs().decode(errors='replace')[-500:]}")
        finally:
            helper.remove(force=True)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        while time.monotonic() < deadline:
            self.mlflow.reload()
            state = self.mlflow.attrs["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return
            if state["Status"] in ("exited", "dead"):
                break
            time.sleep(1)
        logs = self.mlflow.logs(tail=20).decode(errors="replace")
        raise BackupError(f"{self.mlflow.name} is not healthy after the restore; last log lines:\n{logs}")


def _tar(members: dict[str, Path]) -> bytes:
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


_SQLITE_BACKUP = """
import pathlib, sqlite3
target = pathlib.Path({target!r}); target.mkdir(parents=True)
for source in sorted(pathlib.Path({source!r}).glob('*.db')):
    live = sqlite3.connect(f'file:{{source}}?mode=ro', uri=True); copy = sqlite3.connect(target / source.name)
    live.backup(copy); copy.close(); live.close()
"""

_SQLITE_COUNTS = """
import json, pathlib, sqlite3
path = pathlib.Path({path!r}); counts = [0, 0, 0]
if path.exists():
    db = sqlite3.connect(f'file:{{path}}?mode=ro', uri=True)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
        counts = list(db.execute({sql!r}).fetchone())
    db.close()
print(json.dumps(counts))
"""


def tracking_store(config: PipelineConfig, target: str, stack: str) -> LocalStore | StackStore:
    """The store of `--target local` (this config's platform) or `--target stack` (the Pulumi stack's containers)."""
    if target == "local":
        return LocalStore(config)
    return StackStore(stack_name_prefix(stack))
