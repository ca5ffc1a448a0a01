"""Backup archives: the manifest, checks that catch corruption before anything is restored, retention."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from pipelines.backup import CHECKSUM_SUFFIX, BackupError, create_backup, prune, restore_backup
from pipelines.backup_stores import LocalStore
from pipelines.config import DEFAULT_CONFIG_PATH, load_config


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """A local platform's state: a SQLite database with MLflow's schema marker and one artifact."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"] = str(tmp_path / "state")
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    local = LocalStore(load_config(tmp_path / "pipeline.yaml"))
    local.root.mkdir(parents=True)
    with closing(sqlite3.connect(local.database)) as db:
        db.executescript("CREATE TABLE alembic_version (version_num TEXT); INSERT INTO alembic_version VALUES ('abc');"
                         "CREATE TABLE runs (id TEXT); INSERT INTO runs VALUES ('r1');")
    (local.artifacts / "1" / "r1").mkdir(parents=True)
    (local.artifacts / "1" / "r1" / "model.pkl").write_bytes(b"model bytes" * 100)
    return local


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def rewrite(archive: Path, changes: dict[str, bytes]) -> None:
    """The archive again with some members' bytes replaced (the manifest left as it was)."""
    files = members(archive)
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {**files, **changes}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_backup_is_one_archive_with_a_manifest_and_a_checksum_file(store, tmp_path):
    result = create_backup(store, tmp_path / "backups")
    assert result.archive.name.startswith("local-") and result.archive.name.endswith(".tar.gz")
    digest, name = result.archive.with_name(result.archive.name + CHECKSUM_SUFFIX).read_text().split()
    assert name == result.archive.name and len(digest) == 64
    files = members(result.archive)
    (manifest_name,) = [name for name in files if name.endswith("/manifest.json")]
    manifest = json.loads(files[manifest_name])
    assert manifest["backend"] == "sqlite" and manifest["schema_revision"] == "abc" and manifest["mlflow_version"]
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
    root = next(iter(members(archive))).split("/")[0]
    if damage == "flipped byte":
        data = bytearray(archive.read_bytes())
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
    else:
        archive.with_name(archive.name + CHECKSUM_SUFFIX).unlink()  # shipped without it: the manifest still checks
        if damage == "changed member":
            rewrite(archive, {f"{root}/artifacts/1/r1/model.pkl": b"tampered" * 100})
        elif damage == "extra member":
            rewrite(archive, {f"{root}/artifacts/1/r1/extra.txt": b"!"})
        else:
            archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = LocalStore(load_config_copy(store, tmp_path / "target"))
    with pytest.raises(BackupError, match=message):
        restore_backup(target, archive)
    assert not target.root.exists()


def load_config_copy(store: LocalStore, state: Path):
    raw = store.config.model_dump(mode="json")
    raw["platform"]["state_dir"] = str(state)
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
