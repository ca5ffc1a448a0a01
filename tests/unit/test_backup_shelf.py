"""Archive shelves: where `pipelines backup` keeps archives (a folder, or a bucket prefix: tests/integration)."""

from __future__ import annotations

import stat

import pytest

from pipelines.backup import BackupError, archives_to_prune, restore_backup
from pipelines.backup_shelf import CHECKSUM_SUFFIX, BucketShelf, FolderShelf, overlaps, shelf_and_name, shelf_at
from pipelines.object_store import S3Location

DAYS = [f"local-2026010{day}T000000000Z.tar.gz" for day in (1, 2, 3)]


def test_retention_picks_the_oldest_of_one_source_by_name_alone():
    strays = ["local-notes.tar.gz", "local-20260101T000000000Z.tar.gz.partial",
              "stack-local-20260101T000000000Z.tar.gz", f"{DAYS[0]}{CHECKSUM_SUFFIX}"]
    assert archives_to_prune([DAYS[2], *strays, DAYS[0], DAYS[1]], "local", keep=2) == [DAYS[0]]
    assert archives_to_prune(DAYS, "local", keep=5) == []
    assert archives_to_prune(DAYS, "stack-mlops", keep=1) == []


def test_a_destination_is_a_folder_or_a_bucket_prefix(tmp_path):
    assert shelf_at(tmp_path) == FolderShelf(tmp_path)
    assert shelf_at(str(tmp_path)) == FolderShelf(tmp_path)
    assert shelf_at("s3://backups/nightly/") == BucketShelf(S3Location("backups", "nightly"))


def test_an_archive_is_a_name_on_a_shelf(tmp_path):
    assert shelf_and_name(tmp_path / DAYS[0]) == (FolderShelf(tmp_path), DAYS[0])
    assert shelf_and_name(f"s3://backups/nightly/{DAYS[0]}") == (BucketShelf(S3Location("backups", "nightly")),
                                                                 DAYS[0])
    with pytest.raises(BackupError, match="names no archive"):
        restore_backup(None, "s3://backups/")  # type: ignore[arg-type] - refused before the store is asked


def test_a_folder_shelf_puts_files_whole_and_private_and_lists_only_files(tmp_path):
    shelf = FolderShelf(tmp_path / "backups")
    with shelf.staging() as work:
        archive, checksum = work / DAYS[0], work / f"{DAYS[0]}{CHECKSUM_SUFFIX}"
        archive.write_bytes(b"archive")
        checksum.write_text("digest")
        placed = shelf.put(archive, checksum)
    assert placed == tmp_path / "backups" / DAYS[0]
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    (tmp_path / "backups" / "a-folder.tar.gz").mkdir()
    assert shelf.names() == [DAYS[0], f"{DAYS[0]}{CHECKSUM_SUFFIX}"]
    assert not list((tmp_path / "backups").glob(".partial-*"))  # the staging folder went with its context
    shelf.delete(DAYS[0])  # with its checksum file
    assert shelf.names() == []


def test_fetching_from_a_folder_reads_in_place(tmp_path):
    shelf = FolderShelf(tmp_path)
    (tmp_path / DAYS[0]).write_bytes(b"archive")
    assert shelf.fetch(DAYS[0], tmp_path / "unused") == tmp_path / DAYS[0]
    assert shelf.fetch(DAYS[1], tmp_path / "unused") is None
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(("shelf", "artifacts", "apart"), [
    ("s3://team/mlops/backups", S3Location("team", "mlops"), False),  # under the artifacts
    ("s3://team/mlops", S3Location("team", "mlops/artifacts"), False),  # holding them
    ("s3://team/mlops", S3Location("team", "mlops"), False),
    ("s3://team/backups", S3Location("team", ""), False),  # artifacts at the bucket's root
    ("s3://team", S3Location("team", "mlops"), False),
    ("s3://team/mlops-backups", S3Location("team", "mlops"), True),  # a sibling, not a child
    ("s3://team/backups", S3Location("team", "mlops"), True),
    ("s3://other/mlops", S3Location("team", "mlops"), True),
    ("s3://team/mlops", None, True),
])
def test_a_bucket_shelf_must_keep_apart_from_the_artifacts_prefix(shelf, artifacts, apart):
    assert overlaps(shelf_at(shelf), artifacts) is not apart


def test_a_folder_shelf_must_keep_apart_from_the_artifacts_folder(tmp_path):
    artifacts = tmp_path / "mlflow" / "artifacts"
    assert overlaps(shelf_at(artifacts / "backups"), artifacts)
    assert overlaps(shelf_at(tmp_path), artifacts)
    assert not overlaps(shelf_at(tmp_path / "backups"), artifacts)
    assert not overlaps(shelf_at(tmp_path / "mlflow" / "artifacts-backups"), artifacts)
    assert not overlaps(shelf_at(artifacts), S3Location("team", "mlops"))  # a folder is in no bucket
