"""The stack's tracking state on this Docker host, as a `pipelines.backup.TrackingStore`.

`StackStore` finds the stack's containers by its name prefix: the database is dumped inside its own
container (`pg_dump` in the Postgres one, `pipelines.backup_postgres`; SQLite's backup API in the MLflow
one), the artifact store is read and written through the Docker API. A restore writes everything beside
the live state first, while MLflow serves (Postgres into a database of its own, the files as `.restoring`
copies on the volumes), then stops the MLflow container, swaps the new state in by renames, keeping the
live one aside (`<db>_replaced`, `.replaced` files), and starts it again. Only once MLflow is healthy on
the restored state is what was kept aside dropped; a swap or a start that fails puts it back, so a failed
restore leaves the live state serving. With the artifacts in S3 (`objectStore: seaweedfs` or
`artifactDestination`), their prefix is copied into the archive, and a restore puts the archive's objects
into it around that swap (`pipelines.object_store`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NoReturn

import yaml

from pipelines import object_store
from pipelines.backup import Backend, BackupError
from pipelines.backup_docker import SQLITE_BACKUP, SQLITE_COUNTS, docker_client, fetch, run_in, tar_of
from pipelines.backup_postgres import StackPostgres
from pipelines.backup_stack_s3 import artifacts_location, mlflows_s3_access
from pipelines.backup_stores import (
    CONTENTS_SQL,
    EXTRA_SQLITE_DIR,
    POSTGRES_DUMP,
    SQLITE_DUMP,
    describe_contents,
    schema_revision_of,
)
from pipelines.config import REPO_ROOT
from pipelines.object_store import S3Location
from pipelines.restore_files import ADDED, REPLACED
from services.contract import DEFAULT_NAME_PREFIX

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

FILES_HELPER = Path(__file__).with_name("restore_files.py")  # run in the MLflow image: the file swap
# With the artifacts in S3, the files helper gets the tracking image's own empty artifacts folder (no volume).
IMAGE_ARTIFACTS_DIR = "/mlflow/artifacts"


def stack_name_prefix(stack: str) -> str:
    """The `namePrefix` of a stack, read from its committed `Pulumi.<stack>.yaml` (the default when unset)."""
    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    try:
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    except FileNotFoundError:
        raise BackupError(f"no stack file {path.name}; name an existing stack with --stack") from None
    return str(config.get("mlops-platform:namePrefix", DEFAULT_NAME_PREFIX))


def _argument(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1] if flag in command else ""


class StackStore:
    """The stack's tracking state on this Docker host: containers `<prefix>-mlflow` (and `<prefix>-postgres`)."""

    artifacts_s3: S3Location | None = None  # MLflow's artifacts prefix when they are in S3

    @property
    def artifacts_at(self) -> S3Location | None:
        """Where a shelf must not be: MLflow's bucket prefix (artifacts on the volume are out of any shelf's reach)."""
        return self.artifacts_s3

    def __init__(self, prefix: str, client: DockerClient | None = None, health_timeout_s: float = 300.0) -> None:
        self.client = client or docker_client()
        self.label = f"stack-{prefix}"
        self.description = f"the stack '{prefix}'"
        self.health_timeout_s = health_timeout_s
        self.mlflow = self._container(f"{prefix}-mlflow")
        command = list(self.mlflow.attrs["Config"]["Cmd"] or [])
        self.artifacts_dir = _argument(command, "--artifacts-destination")
        self.artifacts_s3 = artifacts_location(self.artifacts_dir, self.mlflow)
        if self.artifacts_s3 is not None:
            self.artifacts_dir = IMAGE_ARTIFACTS_DIR
        backend_uri = _argument(command, "--backend-store-uri")
        self.backend: Backend = "postgres" if backend_uri.startswith("postgresql") else "sqlite"
        self.sqlite_file = backend_uri.removeprefix("sqlite:///") if self.backend == "sqlite" else ""
        # The backend volume: MLflow's SQLite files (its store, basic auth's) all live there.
        self.backend_dir = next(m["Destination"] for m in self.mlflow.attrs["Mounts"]
                                if m["Destination"] != self.artifacts_dir)
        self.postgres = StackPostgres(self._container(f"{prefix}-postgres")) if self.backend == "postgres" else None

    def _container(self, name: str) -> Container:
        import docker

        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            raise BackupError(f"no container {name} on this Docker host: is the stack up?") from None

    def _python(self, script: str) -> str:
        return run_in(self.mlflow, ["python", "-c", script])

    def mlflow_version(self) -> str:
        return self._python("from importlib.metadata import version; print(version('mlflow'))").strip()

    def dump(self, into: Path) -> str:
        database = into / "database"
        database.mkdir(parents=True)
        if self.postgres is not None:
            revision = self.postgres.dump(into / POSTGRES_DUMP)
        # Every SQLite file of the backend volume, with SQLite's online backup API inside the MLflow container.
        scratch = f"/tmp/backup-{time.time_ns()}"
        self._python(SQLITE_BACKUP.format(source=self.backend_dir, target=scratch))
        fetch(self.mlflow, scratch, into / "database" / "sqlite")
        run_in(self.mlflow, ["rm", "-rf", scratch])
        sqlite_dir = into / "database" / "sqlite"
        if self.backend == "sqlite":
            (sqlite_dir / PurePosixPath(self.sqlite_file).name).rename(into / SQLITE_DUMP)
            revision = schema_revision_of(into / SQLITE_DUMP)
        sqlite_dir.rename(into / EXTRA_SQLITE_DIR)
        if self.artifacts_s3 is None:
            fetch(self.mlflow, self.artifacts_dir, into / "artifacts")
        else:
            with mlflows_s3_access(self.client, self.mlflow):
                object_store.download_prefix(self.artifacts_s3, into / "artifacts", "backing up the artifacts in")
        return revision

    def contents(self) -> str | None:
        if self.postgres is not None:
            counts = self.postgres.counts(CONTENTS_SQL)
        else:
            counts = tuple(json.loads(self._python(SQLITE_COUNTS.format(path=self.sqlite_file, sql=CONTENTS_SQL))))
        if self.artifacts_s3 is None:
            files = run_in(self.mlflow, ["find", self.artifacts_dir, "-type", "f", "-print", "-quit"]).strip()
        else:
            with mlflows_s3_access(self.client, self.mlflow):
                files = object_store.list_objects(self.artifacts_s3, "reading the artifacts in")
        return describe_contents(*counts, bool(files))

    def can_read(self, revision: str) -> bool:
        answer = self._python(f"import sys; sys.path.insert(0, '/opt/tracking'); import schema; "
                              f"print(schema.is_known_revision({revision!r}))")
        return answer.strip() == "True"

    def check_loadable(self) -> None:
        """Refuse while an earlier restore that did not finish keeps the live state aside: maybe its only copy."""
        if self.postgres is not None:
            self.postgres.refuse_unfinished()
        run_in(self.mlflow, ["python", "-c", FILES_HELPER.read_text(), "check", self.artifacts_dir,
                                 self.backend_dir, ""], what="the check for an unfinished restore")

    def load(self, backup: Path) -> None:
        if self.artifacts_s3 is None:
            self._swap_in(backup)
        else:  # the objects go in first; a swap that fails deletes those added, and after it those left over go
            with mlflows_s3_access(self.client, self.mlflow):
                object_store.replace_prefix(backup / "artifacts", self.artifacts_s3, lambda: self._swap_in(backup),
                                            "restoring the artifacts to")
        self._finish()

    def _swap_in(self, backup: Path) -> None:
        self._restore_beside(backup)  # while MLflow serves the live state, which a failure here leaves alone
        self.mlflow.stop(timeout=30)
        try:
            if self.postgres is not None:
                self.postgres.swap()
            self._run_files_helper("swap")
            self.mlflow.start()
            self._wait_healthy()
        except Exception as exc:  # Docker's and HTTP's own errors too: whatever stopped it, put the live state back
            self._put_back(exc if isinstance(exc, BackupError) else BackupError(f"restoring failed: {exc}"))

    def _put_back(self, failure: BackupError) -> NoReturn:
        """Undo the swap wherever it stopped (MLflow stopped), start MLflow on the old state; raise saying so."""
        try:
            self.mlflow.stop(timeout=30)
            self._run_files_helper("revert")
            if self.postgres is not None:
                self.postgres.unswap()
        except Exception as exc:
            raise BackupError(f"{failure}\nputting the live state back failed too ({exc}); MLflow is stopped and "
                              f"the state from before the restore is kept aside in {self._kept_aside()}: move it "
                              "back by hand") from None
        try:
            self.mlflow.start()
            self._wait_healthy()
        except Exception as exc:
            raise BackupError(f"{failure}\nthe state from before the restore is back in place, but MLflow is not "
                              f"healthy on it either: {exc}") from None
        raise BackupError(f"{failure}\nthe state from before the restore is back in place and MLflow serves it; "
                          "nothing was restored") from None

    def _finish(self) -> None:
        """MLflow serves the restored state: what the swap kept aside goes."""
        try:
            self._run_files_helper("finish")
            if self.postgres is not None:
                self.postgres.drop_replaced()
        except BackupError as exc:
            raise BackupError(f"the restore is in place and MLflow serves it, but removing the state from before it "
                              f"failed ({exc}); delete {self._kept_aside()} before the next restore") from None

    def _kept_aside(self) -> str:
        files = f"{self.artifacts_dir}/{REPLACED} and {self.backend_dir}/*{REPLACED} (an `X{ADDED}` mark: delete X)"
        return f"the database {self.postgres.replaced}, {files}" if self.postgres is not None else files

    def _restore_beside(self, backup: Path) -> None:
        """Postgres into `<db>_restoring`, the files into `.restoring` copies; on failure both are removed."""
        try:
            if self.postgres is not None:
                self.postgres.restore_beside(backup / POSTGRES_DUMP)
            self._run_files_helper("prepare", backup)
        except BackupError as exc:
            if self.postgres is not None:
                self.postgres.drop_side()
            raise BackupError(f"{exc}; the live state was not touched") from None

    def _run_files_helper(self, phase: str, backup: Path | None = None) -> None:
        """Run `restore_files.py` (prepare: write the restored files beside the live ones; swap: rename them in;
        revert: put the live ones back; finish: drop them) in a one-off container of the MLflow image that mounts
        the same volumes (for the swap the MLflow container is stopped, so it cannot exec)."""
        helper = self.client.containers.create(
            self.mlflow.attrs["Config"]["Image"],
            entrypoint=["python", "-c", FILES_HELPER.read_text(), phase, self.artifacts_dir, self.backend_dir,
                        PurePosixPath(self.sqlite_file).name if self.backend == "sqlite" else ""],
            user=self.mlflow.attrs["Config"]["User"],
            volumes={m["Name"]: {"bind": m["Destination"], "mode": "rw"} for m in self.mlflow.attrs["Mounts"]},
            labels=self.mlflow.labels, network_disabled=True,
        )
        try:
            if backup is not None:
                payload = {"restore/extra": backup / EXTRA_SQLITE_DIR}
                if self.artifacts_s3 is None:
                    payload["restore/artifacts"] = backup / "artifacts"
                if self.backend == "sqlite":
                    payload["restore/store.sqlite"] = backup / SQLITE_DUMP
                helper.put_archive("/tmp", tar_of({name: path for name, path in payload.items() if path.exists()}))
            helper.start()
            outcome = helper.wait(timeout=600)
            if outcome["StatusCode"] != 0:
                logs = helper.logs().decode(errors="replace").strip()[-500:]
                raise BackupError(f"restoring the files ({phase}) failed: {logs}")
        finally:
            helper.remove(force=True)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout_s
        while time.monotonic() < deadline:
            self.mlflow.reload()
            state = self.mlflow.attrs["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return
            if state["Status"] in ("exited", "dead", "restarting"):  # its process died on this state
                break
            time.sleep(1)
        logs = self.mlflow.logs(tail=20).decode(errors="replace")
        raise BackupError(f"{self.mlflow.name} is not healthy after the restore; last log lines:\n{logs}")
