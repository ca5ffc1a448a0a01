"""The two places tracking state lives, as `pipelines.backup.TrackingStore`s, and what they share.

`LocalStore` (here): the local platform's SQLite database under the state dir, and its artifacts there or in
the bucket prefix of `platform.artifacts_destination`.
`StackStore` (pipelines.backup_stack): the stack's containers on this Docker host.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import object_store
from pipelines.backup import Backend, BackupError, copy_tree
from pipelines.config import PipelineConfig
from pipelines.platform import mlflow_process

if TYPE_CHECKING:
    from pipelines.backup_stack import StackStore

BUCKET_WHAT = "the local platform's artifacts at"  # how S3 errors name the artifacts' bucket
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


def fold_wal(database: Path) -> None:
    """Checkpoint a SQLite file's write-ahead log into it, so its -wal/-shm files can go without losing a write."""
    with closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def knows_revision(revision: str) -> bool:
    from services.tracking.schema import is_known_revision

    return is_known_revision(revision)


class LocalStore:
    """The local platform (`make platform`): `<state_dir>/mlflow/mlflow.db` and `<state_dir>/mlflow/artifacts`
    (or the bucket prefix `platform.artifacts_destination` names)."""

    label = "local"
    backend: Backend = "sqlite"

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.root = config.platform.state_dir / "mlflow"
        self.database, self.artifacts = self.root / "mlflow.db", self.root / "artifacts"
        self.bucket = config.platform.artifacts_location
        self.description = f"the local platform ({self.root}" + (f", artifacts in {self.bucket.url})"
                                                                 if self.bucket else ")")

    @property
    def artifacts_at(self) -> Path | object_store.S3Location:
        return self.bucket or self.artifacts

    def mlflow_version(self) -> str:
        return version("mlflow")  # the local server runs from this environment

    def dump(self, into: Path) -> str:
        if not self.database.is_file():
            raise BackupError(f"no MLflow database at {self.database}: nothing to back up (start it: make platform)")
        online_copy(self.database, into / SQLITE_DUMP)
        if self.bucket:
            object_store.download_prefix(self.bucket, into / "artifacts", BUCKET_WHAT)
        else:
            copy_tree(self.artifacts, into / "artifacts")
        return schema_revision_of(into / SQLITE_DUMP)

    def contents(self) -> str | None:
        counts = (0, 0, 0)
        if self.database.is_file():
            with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)) as db:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
                    counts = db.execute(CONTENTS_SQL).fetchone()
        return describe_contents(*counts, self._holds_artifacts())

    def _holds_artifacts(self) -> bool:
        if self.bucket:
            return bool(object_store.list_objects(self.bucket, BUCKET_WHAT))
        return self.artifacts.is_dir() and any(path.is_file() for path in self.artifacts.rglob("*"))

    def can_read(self, revision: str) -> bool:
        return knows_revision(revision)

    def check_loadable(self) -> None:
        if mlflow_process(self.config).pid() is not None:
            raise BackupError(f"the local MLflow server is running on {self.root}; stop it first (make down)")
        if self.bucket:
            object_store.check_access(self.bucket, BUCKET_WHAT)
        self._recover_an_unfinished_swap()

    def _recover_an_unfinished_swap(self) -> None:
        """`artifacts.replaced` is left by a swap that died: the live artifacts from before it, maybe their only
        copy. Without `artifacts` it died before the restored ones (and the database) moved in: it goes back."""
        replaced = self.root / "artifacts.replaced"
        if not replaced.exists():
            return
        if not self.artifacts.exists():
            replaced.rename(self.artifacts)
            return
        raise BackupError(f"an earlier restore did not finish: {replaced} holds the artifacts from before it, "
                          f"maybe their only copy, so nothing was touched. If {self.artifacts} and the database "
                          f"are right, delete it; if not, move it back over {self.artifacts}; then restore again")

    def load(self, backup: Path) -> None:
        """Write the restored database and artifacts beside the live ones, then swap them in by renames: a
        copy that fails (a dump that is no database, a full disk) leaves the live state as it was. Artifacts
        in a bucket go in with `object_store.replace_prefix`, the database swap its commit point."""
        self.check_loadable()
        self.root.mkdir(parents=True, exist_ok=True)
        database, artifacts = self.root / "mlflow.db.restoring", self.root / "artifacts.restoring"
        _remove(database, artifacts)  # the leftovers of a restore that died
        try:
            online_copy(backup / SQLITE_DUMP, database)
            if not self.bucket:
                copy_tree(backup / "artifacts", artifacts)
        except (OSError, sqlite3.Error) as exc:
            _remove(database, artifacts)
            raise BackupError(f"restoring into {self.root} failed ({exc}); the live state was not touched") from None
        if self.bucket:
            self._load_into_bucket(backup / "artifacts", database)
        else:
            self._swap_in(database, artifacts)

    def _load_into_bucket(self, artifacts: Path, database: Path) -> None:
        artifacts.mkdir(exist_ok=True)  # an archive of a platform with no artifacts yet
        try:
            object_store.replace_prefix(artifacts, self.bucket, lambda: self._swap_in_database(database),
                                        BUCKET_WHAT)
        except (OSError, sqlite3.Error, object_store.ObjectStoreError) as exc:
            if not database.exists():  # swapped in: only removing the replaced state's objects failed
                raise BackupError(f"restored the database of {self.description}, but bringing the bucket's "
                                  f"objects in line with it failed ({exc}): some may still hold the replaced "
                                  "state's bytes or be left over; run the same restore with --force again") from None
            _remove(database)
            raise BackupError(f"restoring into {self.description} failed ({exc}); the live state was not "
                              "touched: the database and the bucket's objects are as they were") from None

    def _swap_in(self, database: Path, artifacts: Path) -> None:
        replaced = self.root / "artifacts.replaced"  # none: check_loadable recovered or refused one
        self._fold_live_log()
        if self.artifacts.exists():
            self.artifacts.rename(replaced)
        artifacts.rename(self.artifacts)
        os.replace(database, self.database)
        _remove(replaced)

    def _swap_in_database(self, database: Path) -> None:
        self._fold_live_log()
        os.replace(database, self.database)

    def _fold_live_log(self) -> None:
        if self.database.exists():
            fold_wal(self.database)
        for log in (self.root / "mlflow.db-wal", self.root / "mlflow.db-shm"):
            log.unlink(missing_ok=True)  # empty once folded; left beside the new file they would corrupt it


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def tracking_store(config: PipelineConfig, target: str, stack: str) -> LocalStore | StackStore:
    """The store of `--target local` (this config's platform) or `--target stack` (the Pulumi stack's containers)."""
    if target == "local":
        return LocalStore(config)
    from pipelines.backup_stack import StackStore, stack_name_prefix  # the Docker SDK only when asked for

    return StackStore(stack_name_prefix(stack))
