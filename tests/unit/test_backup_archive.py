"""Backup archives: the manifest, checks that catch corruption before anything is restored, retention."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from pipelines.backup import BackupError, create_backup, prune, restore_backup
from pipelines.backup_shelf import CHECKSUM_SUFFIX
from pipelines.backup_stores import LocalStore
from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from services.tracking.schema import head_revision
from tests.archives import checksum_path, match_checksum, members, rewrite, root_of


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A local platform's state: a SQLite database with this MLflow's schema marker and one artifact."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"] = str(tmp_path / "state")
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    local = LocalStore(load_config(tmp_path / "pipeline.yaml"))
    local.root.mkdir(parents=True)
    with closing(sqlite3.connect(local.database)) as db:
        db.executescript("CREATE TABLE alembic_version (version_num TEXT); "
                         f"INSERT INTO alembic_version VALUES ('{head_revision()}');"
                         "CREATE TABLE runs (id TEXT); INSERT INTO runs VALUES ('r1');"
                         "CREATE TABLE registered_models (name TEXT); CREATE TABLE experiments (experiment_id TEXT);")
    (local.artifacts / "1" / "r1").mkdir(parents=True)
    (local.artifacts / "1" / "r1" / "model.pkl").write_bytes(b"model bytes" * 100)
    return local


def test_a_backup_is_one_archive_with_a_manifest_and_a_checksum_path(store, tmp_path):
    result = create_backup(store, tmp_path / "backups")
    assert result.archive.name.startswith("local-") and result.archive.name.endswith(".tar.gz")
    digest, name = result.archive.with_name(result.archive.name + CHECKSUM_SUFFIX).read_text().split()
    assert name == result.archive.name and len(digest) == 64
    files = members(result.archive)
    (manifest_name,) = [name for name in files if name.endswith("/manifest.json")]
    manifest = json.loads(files[manifest_name])
    assert manifest["backend"] == "sqlite" and manifest["mlflow_version"]
    assert manifest["schema_revision"] == head_revision()
    assert set(manifest["files"]) == {"database/mlflow.sqlite", "artifacts/1/r1/model.pkl"}
    assert manifest["files"]["artifacts/1/r1/model.pkl"]["size"] == 1100
    with closing(sqlite3.connect(":memory:")) as db:  # the database copy is a complete SQLite file
        root = manifest_name.removesuffix("/manifest.json")
        db.deserialize(files[f"{root}/database/mlflow.sqlite"])
        assert db.execute("SELECT id FROM runs").fetchall() == [("r1",)]


@pytest.mark.parametrize(("damage", "message"), [
    ("flipped byte", "does not match its checksum file"),
    ("changed member", "artifacts/1/r1/model.pkl fails its checksum"),
    ("truncated", "is corrupt or truncated"),
    ("extra member", "is not in the manifest"),
])
def test_a_damaged_archive_is_refused_before_anything_is_restored(store, tmp_path, damage, message):
    archive = create_backup(store, tmp_path / "backups").archive
    root = root_of(archive)
    if damage == "flipped byte":
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
    elif damage == "changed member":
        rewrite(archive, {f"{root}/artifacts/1/r1/model.pkl": b"tampered" * 100})
    elif damage == "extra member":
        rewrite(archive, {f"{root}/artifacts/1/r1/extra.txt": b"!"})
    else:
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        match_checksum(archive)
    target = LocalStore(load_config_copy(store, tmp_path / "target"))
    with pytest.raises(BackupError, match=message):
        restore_backup(target, archive)
    assert not target.root.exists()


def load_config_copy(store: LocalStore, state: Path, **platform: str):
    raw = store.config.model_dump(mode="json")
    raw["platform"].update(state_dir=str(state), **platform)
    path = state.parent / f"{state.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_retention_keeps_the_newest_archives_of_each_source(tmp_path):
    for label in ("local", "stack-mlops"):
        for stamp in ("20260101T000000000Z", "20260102T000000000Z", "20260103T000000000Z"):
            (tmp_path / f"{label}-{stamp}.tar.gz").write_bytes(b"x")
            (tmp_path / f"{label}-{stamp}.tar.gz{CHECKSUM_SUFFIX}").write_text("x")
    deleted = prune(tmp_path, "local", keep=2)
    assert [path.name for path in deleted] == ["local-20260101T000000000Z.tar.gz"]
    left = sorted(path.name for path in tmp_path.iterdir())
    assert "local-20260101T000000000Z.tar.gz.sha256" not in left
    assert len([name for name in left if name.startswith("stack-mlops-")]) == 6  # other sources untouched


def test_retention_matches_only_its_own_label_and_stamp(tmp_path):
    """`stack-mlops` is not `stack-mlops-prod`, and a file that only looks like an archive is no archive."""
    names = [f"{label}-2026010{day}T000000000Z.tar.gz" for label in ("stack-mlops", "stack-mlops-prod")
             for day in (1, 2, 3)]
    strays = ["stack-mlops-notes.tar.gz", "stack-mlops-20260101T000000000Z.tar.gz.partial",
              "stack-mlops-20260101T000000000Z-copy.tar.gz", "stack-mlops-20260101T0000Z.tar.gz"]
    for name in names + strays:
        (tmp_path / name).write_bytes(b"x")
    deleted = prune(tmp_path, "stack-mlops", keep=1)
    assert sorted(path.name for path in deleted) == names[:2]
    left = {path.name for path in tmp_path.iterdir()}
    assert left == {names[2], *names[3:], *strays}


@pytest.fixture
def open_umask():
    """A umask that would leave new files world-readable (0666): the modes below must not depend on it."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_archive_and_its_checksum_file_are_private(store, tmp_path, open_umask):
    result = create_backup(store, tmp_path / "backups")
    for path in (result.archive, checksum_path(result.archive)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700


def test_an_archive_without_its_checksum_file_is_refused_naming_it(store, tmp_path):
    archive = create_backup(store, tmp_path / "backups").archive
    checksum_path(archive).unlink()
    target = LocalStore(load_config_copy(store, tmp_path / "target"))
    with pytest.raises(BackupError, match=f"checksum file {archive.name}{CHECKSUM_SUFFIX} is missing"):
        restore_backup(target, archive)
    assert not target.root.exists()


def test_a_restore_that_fails_midway_leaves_the_live_state_as_it_was(store, tmp_path):
    """A dump that passes every check but is no database fails while it is written beside the live state."""
    archive = create_backup(store, tmp_path / "backups").archive
    root = root_of(archive)
    rewrite(archive, {f"{root}/database/mlflow.sqlite": b"not a database" * 100}, manifest_too=True)
    live = {path: path.read_bytes() for path in sorted(store.root.rglob("*")) if path.is_file()}
    with pytest.raises(BackupError, match="the live state was not touched"):
        restore_backup(store, archive, force=True, safety_directory=tmp_path / "safety")
    assert {path: path.read_bytes() for path in sorted(store.root.rglob("*")) if path.is_file()} == live


def test_a_swap_that_died_before_the_restored_artifacts_moved_in_is_recovered_first(store, tmp_path):
    """Between its two renames the live artifacts exist only as `artifacts.replaced`: they go back, so the
    next (forced) restore backs them up before it replaces them."""
    archive = create_backup(store, tmp_path / "backups").archive
    store.artifacts.rename(store.root / "artifacts.replaced")
    restored = restore_backup(store, archive, force=True, safety_directory=tmp_path / "safety")
    assert any(name.endswith("/artifacts/1/r1/model.pkl") for name in members(restored.safety_backup))
    assert (store.artifacts / "1" / "r1" / "model.pkl").read_bytes() == b"model bytes" * 100
    assert not (store.root / "artifacts.replaced").exists()


def test_a_swap_that_died_after_the_restored_artifacts_moved_in_is_refused_naming_what_it_kept(store, tmp_path):
    archive = create_backup(store, tmp_path / "backups").archive
    kept = store.root / "artifacts.replaced" / "9" / "model.pkl"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"the only copy")
    with pytest.raises(BackupError, match=r"artifacts\.replaced holds the artifacts from before it.*nothing was"):
        restore_backup(store, archive, force=True, safety_directory=tmp_path / "safety")
    assert kept.read_bytes() == b"the only copy"
    assert not (tmp_path / "safety").exists()  # refused before anything, the safety backup included


@pytest.mark.parametrize("mismatch", ["backend", "schema revision"])
def test_an_archive_the_target_cannot_take_is_refused_by_name_when_given_as_a_string(store, tmp_path, mismatch,
                                                                                      monkeypatch):
    """The CLI passes a str (a path or an s3:// URL): the refusal names the archive, never an AttributeError."""
    archive = create_backup(store, tmp_path / "backups").archive
    target = LocalStore(load_config_copy(store, tmp_path / "target"))
    if mismatch == "backend":
        monkeypatch.setattr(target, "backend", "postgres")
    else:
        monkeypatch.setattr(target, "can_read", lambda revision: False)
    says = "holds a sqlite database" if mismatch == "backend" else "the target's MLflow does not know"
    with pytest.raises(BackupError, match=f"{archive.name} .*{says}"):
        restore_backup(target, str(archive))
    assert not target.root.exists()


def test_a_backup_among_the_artifacts_is_refused_before_anything_is_written(store, tmp_path):
    """Inside the artifact store, each backup would copy the earlier ones and a restore would delete them."""
    inside = store.artifacts / "backups"
    with pytest.raises(BackupError, match="overlap") as error:
        create_backup(store, inside)
    assert str(inside) in str(error.value) and "--dir" in str(error.value)
    assert not inside.exists()
    on_s3 = LocalStore(load_config_copy(store, tmp_path / "on-s3", artifacts_destination="s3://team/mlops"))
    with pytest.raises(BackupError, match="s3://team/mlops/backups and the artifacts .* at s3://team/mlops overlap"):
        create_backup(on_s3, "s3://team/mlops/backups")  # refused before the bucket is asked


def test_a_restore_whose_archive_or_safety_backup_would_sit_among_the_artifacts_is_refused(store, tmp_path):
    archive = create_backup(store, tmp_path / "backups").archive
    among = store.artifacts / archive.name
    among.write_bytes(archive.read_bytes())
    live = {path: path.read_bytes() for path in sorted(store.root.rglob("*")) if path.is_file()}
    with pytest.raises(BackupError, match="the archive's folder or prefix .* overlap"):
        restore_backup(store, str(among), force=True, safety_directory=tmp_path / "safety")
    with pytest.raises(BackupError, match="where a forced restore backs up what it replaces.* overlap"):
        restore_backup(store, archive, force=True, safety_directory=store.artifacts / "safety")
    assert {path: path.read_bytes() for path in sorted(store.root.rglob("*")) if path.is_file()} == live
    assert not (tmp_path / "safety").exists()
