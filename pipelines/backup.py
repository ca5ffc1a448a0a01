"""Backups of the tracking state (registry, runs, metrics, audit records, artifacts) that restore.

One backup is one archive, `<source>-<UTC time>.tar.gz`, beside a `sha256sum` file of it, both private from
the moment they exist (they hold basic auth's users and the training data), on a shelf: a folder or a bucket
prefix (pipelines.backup_shelf):

    <name>/manifest.json     format, source, backend, MLflow version, schema revision, size + sha256 per file
    <name>/database/...      the database: a SQLite online-backup copy, or a `pg_dump --format=custom`
    <name>/artifacts/...     the artifact store

The database is dumped first and the artifact store copied after it: MLflow writes artifacts before the
rows that point at them and never rewrites them, so every artifact the dumped database refers to is in
the copy (later ones may be too, unreferenced). Where the data comes from and goes to is a
`TrackingStore` (pipelines.backup_stores: the local platform, or the stack's containers).
A restore checks the archive (its checksum file must be there), every file against the manifest and the
schema against the target's MLflow before it touches anything; the store then writes the restored state
beside the live one and swaps it in, so a restore that fails leaves the live state as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from pipelines.backup_shelf import PRIVATE_DIR, FolderShelf, Shelf, checksum_name, overlaps, shelf_and_name, shelf_at
from pipelines.digests import file_digest
from pipelines.errors import CannotRun, Refused
from pipelines.object_store import S3Location

FORMAT = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIX = ".tar.gz"
DEFAULT_KEEP = 7
PRIVATE_FILE = 0o600
# An archive's name is `<label>-<stamp>.tar.gz`; the stamp is UTC to the millisecond, so names sort by time.
STAMP_PATTERN = r"\d{8}T\d{9}Z"
Backend = Literal["sqlite", "postgres"]


class BackupError(CannotRun):
    """A backup could not be written or read: a corrupt archive, an unreachable store. Nothing was restored."""


class RestoreRefused(Refused):
    """The target already holds tracking data and --force was not given; nothing moved."""

    step = "restore"


class TrackingStore(Protocol):
    """Where the tracking state lives: its database and artifact store."""

    label: str  # names the archives, so retention keeps N per source
    description: str
    backend: Backend
    # Where the artifacts are, as a folder or bucket prefix on this machine's reach (None: only inside containers):
    # a shelf must keep apart from it.
    artifacts_at: Path | S3Location | None

    def mlflow_version(self) -> str: ...

    def dump(self, into: Path) -> str:
        """Write `into/database/` (database first), then `into/artifacts/`; return the schema revision."""
        ...

    def contents(self) -> str | None:
        """What the store holds ("3 runs, 1 registered model"), None when it holds nothing."""
        ...

    def can_read(self, revision: str) -> bool:
        """True when the target's MLflow knows this schema revision (so it can run or upgrade it)."""
        ...

    def check_loadable(self) -> None:
        """Raise BackupError when a restore cannot replace the state now (a local server still running)."""
        ...

    def load(self, backup: Path) -> None:
        """Replace the database and artifact store with those of a verified, extracted backup."""
        ...


@dataclass(frozen=True)
class Manifest:
    source: str
    backend: Backend
    mlflow_version: str
    schema_revision: str
    created_at: str
    files: dict[str, dict[str, int | str]] = field(default_factory=dict)  # path -> {"size", "sha256"}
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(int(entry["size"]) for entry in self.files.values())


@dataclass(frozen=True)
class BackupResult:
    archive: Path | str  # its path on a folder shelf, its s3:// URL on a bucket
    manifest: Manifest
    archive_bytes: int
    seconds: float
    pruned: list[Path | str]


@dataclass(frozen=True)
class RestoreResult:
    archive: Path | str
    manifest: Manifest
    seconds: float
    safety_backup: Path | str | None  # what the target held before a forced restore


def create_backup(store: TrackingStore, destination: Path | str | Shelf,
                  keep: int | None = DEFAULT_KEEP) -> BackupResult:
    """Write one archive of the store onto a shelf (a folder, or `s3://bucket/prefix`); then keep only the
    newest `keep` of its source there."""
    started = time.monotonic()
    shelf = shelf_at(destination)
    _keep_apart(shelf, store, "the backup destination")
    now = datetime.now(UTC)
    name = f"{store.label}-{_stamp(now)}"
    with shelf.staging() as work:
        root = work / name
        revision = store.dump(root)
        manifest = Manifest(source=store.description, backend=store.backend, mlflow_version=store.mlflow_version(),
                            schema_revision=revision, created_at=now.isoformat(), files=_inventory(root))
        (root / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=2))
        archive = work / f"{name}{ARCHIVE_SUFFIX}"
        with _private_file(archive) as handle, tarfile.open(fileobj=handle, mode="w:gz", compresslevel=6) as tar:
            tar.add(root, arcname=name)
        checksum = work / checksum_name(archive.name)
        with _private_file(checksum) as handle:
            handle.write(f"{file_digest(archive)}  {archive.name}\n".encode())
        size = archive.stat().st_size
        # Put on the shelf only when complete, archive before checksum: an archive with its checksum is whole.
        placed = shelf.put(archive, checksum)
    pruned = prune(shelf, store.label, keep) if keep else []
    return BackupResult(placed, manifest, size, time.monotonic() - started, pruned)


def restore_backup(store: TrackingStore, archive: Path | str, *, force: bool = False,
                   safety_directory: Path | str | None = None) -> RestoreResult:
    """Restore an archive (a path, or an s3:// URL) into the store. Every check runs before anything is
    touched; a non-empty store is refused unless `force`, and then its state is first backed up into
    `safety_directory` (default: the archive's shelf)."""
    started = time.monotonic()
    shelf, name = shelf_and_name(archive)
    if not name:
        raise BackupError(f"{archive} names no archive: give <folder or s3://bucket/prefix>/<archive>.tar.gz")
    _keep_apart(shelf, store, "the archive's folder or prefix")
    safety_shelf = shelf_at(safety_directory or shelf)
    _keep_apart(safety_shelf, store, "the backup destination (where a forced restore backs up what it replaces)")
    with tempfile.TemporaryDirectory(prefix="mlflow-restore-") as work:
        local = shelf.fetch(name, Path(work) / "fetched")
        if local is None:
            raise BackupError(f"no backup archive at {shelf.where(name)}")
        root, manifest = _open_verified(local, Path(work) / "extracted")
        if manifest.backend != store.backend:
            raise BackupError(f"{name} holds a {manifest.backend} database; {store.description} "
                              f"uses {store.backend}")
        if not store.can_read(manifest.schema_revision):
            raise BackupError(f"{name} has schema revision {manifest.schema_revision} (MLflow "
                              f"{manifest.mlflow_version}), which the target's MLflow does not know; upgrade the "
                              "target's MLflow first. Nothing was restored")
        store.check_loadable()
        safety = None
        held = store.contents()
        if held:
            if not force:
                raise RestoreRefused(f"{store.description} is not empty ({held}); restore into an empty "
                                     "platform, or pass --force to replace it (its state is backed up first)")
            safety = create_backup(store, safety_shelf, keep=None).archive
        store.load(root)
    return RestoreResult(archive, manifest, time.monotonic() - started, safety)


def prune(destination: Path | str | Shelf, label: str, keep: int) -> list[Path | str]:
    """Delete all but the newest `keep` archives of one source from a shelf, each with its checksum file;
    return where the deleted were."""
    shelf = shelf_at(destination)
    doomed = archives_to_prune(shelf.names(), label, keep)
    for name in doomed:
        shelf.delete(name)
    return [shelf.where(name) for name in doomed]


def archives_to_prune(names: list[str], label: str, keep: int) -> list[str]:
    """All but the newest `keep` archives of one source (names sort by time). Only `<label>-<stamp>.tar.gz`
    is this source's: `stack-mlops-prod-<stamp>` belongs to another stack, `local-notes.tar.gz` to no one."""
    own = re.compile(rf"{re.escape(label)}-{STAMP_PATTERN}{re.escape(ARCHIVE_SUFFIX)}")
    archives = sorted(name for name in names if own.fullmatch(name))
    return archives[:-keep] if keep > 0 else archives


def _keep_apart(shelf: Shelf, store: TrackingStore, what: str) -> None:
    if overlaps(shelf, store.artifacts_at):
        artifacts = store.artifacts_at.url if isinstance(store.artifacts_at, S3Location) else store.artifacts_at
        place = shelf.directory if isinstance(shelf, FolderShelf) else shelf.location.url
        raise BackupError(f"{what} {place} and the artifacts of {store.description} at {artifacts} "
                          "overlap: backups there would be copied into each new backup and deleted by a restore. "
                          "Keep archives in a folder or prefix of their own (--dir, platform.backup_destination); "
                          "nothing was touched")


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z"  # matches STAMP_PATTERN


def _private_file(path: Path) -> BinaryIO:
    """A new file only its owner can read, 0600 from its creation (not chmod-ed after: no window)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb")


def _open_verified(archive: Path, work: Path) -> tuple[Path, Manifest]:
    """Extract the archive into `work` and check it whole: the checksum file, then every file's size and
    sha256 against the manifest. Any mismatch is a BackupError naming what is wrong."""
    work.mkdir(mode=PRIVATE_DIR)
    nothing = "; nothing was restored"
    checksum = archive.with_name(checksum_name(archive.name))
    if not checksum.is_file():
        raise BackupError(f"the checksum file {checksum.name} is missing beside {archive.name} (`pipelines backup` "
                          f"writes both; copy it with the archive){nothing}")
    expected = (checksum.read_text().split() or [""])[0]
    if expected != file_digest(archive):
        raise BackupError(f"{archive.name} does not match its checksum file {checksum.name}: the archive "
                          f"is corrupt or was changed{nothing}")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(work, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{archive.name} is corrupt or truncated ({exc}){nothing}") from None
    roots = [path for path in work.iterdir() if path.is_dir()]
    if len(roots) != 1 or not (roots[0] / MANIFEST).is_file():
        raise BackupError(f"{archive.name} is not a backup made by `pipelines backup` (no {MANIFEST}){nothing}")
    root = roots[0]
    try:
        raw = json.loads((root / MANIFEST).read_text())
        manifest = Manifest(**raw)
    except (ValueError, TypeError) as exc:
        raise BackupError(f"{archive.name}: unreadable {MANIFEST} ({exc}){nothing}") from None
    if manifest.format != FORMAT:
        raise BackupError(f"{archive.name} has backup format {manifest.format}; this version reads {FORMAT}")
    found = _inventory(root)
    for path, entry in manifest.files.items():
        if path not in found:
            raise BackupError(f"{archive.name}: {path} is missing from the archive{nothing}")
        if found[path] != entry:
            raise BackupError(f"{archive.name}: {path} fails its checksum (the archive is corrupt){nothing}")
    if extra := sorted(set(found) - set(manifest.files)):
        raise BackupError(f"{archive.name}: {extra[0]} is not in the manifest (the archive was changed){nothing}")
    return root, manifest


def _inventory(root: Path) -> dict[str, dict[str, int | str]]:
    """Size and sha256 of every file under `root` but the manifest itself."""
    return {
        path.relative_to(root).as_posix(): {"size": path.stat().st_size, "sha256": file_digest(path)}
        for path in sorted(root.rglob("*")) if path.is_file() and path != root / MANIFEST
    }


def copy_tree(source: Path, destination: Path) -> None:
    """Copy a directory tree (the artifact store); a missing source copies as an empty directory."""
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        destination.mkdir(parents=True, exist_ok=True)
