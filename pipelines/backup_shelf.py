"""Where backup archives are kept: a folder, or a bucket prefix (`s3://bucket/prefix`). The archive logic is
`pipelines.backup`'s; a shelf only stages, puts, lists, fetches and deletes an archive with its checksum file.

Both keep archives private: a folder is 0700 and every file 0600 from its creation; on S3 an object gets no
ACL of its own, so the bucket's policy applies (the bucket must not be readable by others: docs/backup.md).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines import object_store
from pipelines.object_store import S3Location

CHECKSUM_SUFFIX = ".sha256"
PRIVATE_DIR = 0o700
BUCKET_WHAT = "the backup shelf"  # how S3 errors name a bucket shelf


def checksum_name(archive_name: str) -> str:
    return archive_name + CHECKSUM_SUFFIX


@dataclass(frozen=True)
class FolderShelf:
    directory: Path

    def where(self, name: str) -> Path:
        return self.directory / name

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(path.name for path in self.directory.iterdir() if path.is_file())

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private work folder on the shelf's own file system, so `put` is a rename."""
        self.directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.directory, prefix=".partial-") as work:
            yield Path(work)

    def put(self, archive: Path, checksum: Path) -> Path:
        """The archive, then its checksum file, each renamed in whole: a file with a final name is complete."""
        for path in (archive, checksum):
            os.replace(path, self.where(path.name))
        return self.where(archive.name)

    def fetch(self, name: str, into: Path) -> Path | None:
        """A folder's archive is read in place (its checksum file beside it); None when it is not there."""
        return self.where(name) if self.where(name).is_file() else None

    def delete(self, name: str) -> None:
        for file in (name, checksum_name(name)):
            self.where(file).unlink(missing_ok=True)


@dataclass(frozen=True)
class BucketShelf:
    location: S3Location

    def where(self, name: str) -> str:
        return self.location.child(name).url

    def names(self) -> list[str]:
        return sorted(object_store.list_objects(self.location, BUCKET_WHAT, recursive=False))

    @contextmanager
    def staging(self) -> Iterator[Path]:
        object_store.check_access(self.location, BUCKET_WHAT)  # before a dump is spent on a shelf that refuses
        with tempfile.TemporaryDirectory(prefix="mlflow-backup-") as work:  # mkdtemp: 0700
            yield Path(work)

    def put(self, archive: Path, checksum: Path) -> str:
        """The archive first, then its checksum file: an archive whose upload died has none, and a restore
        refuses an archive without one."""
        for path in (archive, checksum):
            object_store.upload_file(path, self.location, path.name, BUCKET_WHAT)
        return self.where(archive.name)

    def fetch(self, name: str, into: Path) -> Path | None:
        """Download the archive and its checksum file (if there) into `into`; None when there is no archive."""
        object_store.check_access(self.location, BUCKET_WHAT)  # a missing object is told apart from a missing bucket
        into.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        if not object_store.download_object(self.location, name, into / name, BUCKET_WHAT):
            return None
        object_store.download_object(self.location, checksum_name(name), into / checksum_name(name), BUCKET_WHAT)
        return into / name

    def delete(self, name: str) -> None:
        object_store.delete_objects(self.location, [name, checksum_name(name)], BUCKET_WHAT)


Shelf = FolderShelf | BucketShelf


def shelf_at(destination: Path | str | Shelf) -> Shelf:
    """A folder path, or an `s3://bucket/prefix` URL, as a shelf."""
    if isinstance(destination, FolderShelf | BucketShelf):
        return destination
    if object_store.is_s3_url(destination):
        return BucketShelf(S3Location.parse(str(destination), "the backup destination"))
    return FolderShelf(Path(destination))


def overlaps(shelf: Shelf, artifacts: Path | S3Location | None) -> bool:
    """True when the shelf and an artifact store are one place or one holds the other: a backup would copy the
    earlier archives into each new one, and a restore's replacing of the artifacts would delete them."""
    if isinstance(shelf, BucketShelf) and isinstance(artifacts, S3Location):
        return shelf.location.bucket == artifacts.bucket and _nested(shelf.location.prefix, artifacts.prefix)
    if isinstance(shelf, FolderShelf) and isinstance(artifacts, Path):
        folder, store = shelf.directory.resolve(), artifacts.resolve()
        return folder.is_relative_to(store) or store.is_relative_to(folder)
    return False


def _nested(prefix: str, other: str) -> bool:
    """One bucket prefix equals or lies under the other ("" is the bucket's root, under which all lie)."""
    return not prefix or not other or f"{prefix}/".startswith(f"{other}/") or f"{other}/".startswith(f"{prefix}/")


def shelf_and_name(archive: Path | str) -> tuple[Shelf, str]:
    """The shelf an archive is on and its name there ("" when the location names none)."""
    if object_store.is_s3_url(archive):
        location = S3Location.parse(str(archive), "the backup archive")
        prefix, _, name = location.prefix.rpartition("/")
        return BucketShelf(S3Location(location.bucket, prefix)), name
    path = Path(archive)
    return FolderShelf(path.parent), path.name
