"""The schema step before MLflow starts backs the store up before it migrates it, on real databases.

The stores are made at an older schema revision with MLflow's own migrations (its initial tables, then
alembic up to the revision before this MLflow's head), so `mlflow db upgrade` has real work to do: on a
SQLite file, and on a real PostgreSQL server (Debian's, started here in a temp dir) backed up with pg_dump.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from mlflow.store.db.utils import _get_alembic_config
from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase
from sqlalchemy import create_engine

from services.tracking import schema

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def previous_revision() -> str:
    """The revision just before this MLflow's head: a schema `mlflow db upgrade` changes."""
    down = schema._migrations().get_revision(schema.head_revision()).down_revision
    assert isinstance(down, str), down
    return down


def make_store_at(uri: str, revision: str) -> None:
    """What an older MLflow would have left: its initial tables, migrated up to `revision`."""
    engine = create_engine(uri)
    try:
        InitialBase.metadata.create_all(engine)
    finally:
        engine.dispose()
    command.upgrade(_get_alembic_config(uri), revision)
    assert schema.current_revision(uri) == revision


@pytest.fixture(scope="module")
def old_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("old-store") / "mlflow.db"
    make_store_at(f"sqlite:///{database}", previous_revision())
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (7, 'kept', 'active')")
    return database


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_upgrade_of_a_sqlite_store_backs_it_up_first_naming_both_revisions(old_sqlite, tmp_path):
    database = tmp_path / "mlflow.db"
    shutil.copy(old_sqlite, database)
    old, head = previous_revision(), schema.head_revision()
    done = schema.prepare(f"sqlite:///{database}")
    (backup,) = (tmp_path / schema.BACKUP_DIR_NAME).iterdir()
    assert f"upgraded from {old} to {head}" in done and str(backup) in done
    assert backup.name.startswith(f"mlflow-{old}-to-{head}-") and backup.suffix == ".sqlite"
    assert private(backup) and stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    with closing(sqlite3.connect(backup)) as copy:  # the store as it was before the upgrade, whole
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (old,)
        assert copy.execute("SELECT name FROM experiments WHERE experiment_id = 7").fetchone() == ("kept",)
    assert schema.current_revision(f"sqlite:///{database}") == head

    assert "is current" in schema.prepare(f"sqlite:///{database}")  # at head: no second backup
    assert len(list(backup.parent.iterdir())) == 1


def test_an_upgrade_keeps_only_the_newest_schema_backups_and_the_first_of_its_upgrade(old_sqlite, tmp_path):
    """As after a start that failed after its backup and was restarted, each time writing one more."""
    database, backups = tmp_path / "mlflow.db", tmp_path / schema.BACKUP_DIR_NAME
    shutil.copy(old_sqlite, database)
    backups.mkdir()
    earlier = [backups / f"mlflow-{previous_revision()}-to-{schema.head_revision()}-202611{day:02d}T000000Z.sqlite"
               for day in range(1, 9)]
    for path in earlier:
        shutil.copy(old_sqlite, path)
    schema.prepare(f"sqlite:///{database}")
    kept = sorted(backups.iterdir())
    assert len(kept) == schema.KEEP_BACKUPS + 1 and kept[0] == earlier[0]  # the store before any attempt
    assert kept[1:-1] == earlier[-(schema.KEEP_BACKUPS - 1):]  # and the newest, this start's the last


def test_a_new_store_gets_its_schema_without_a_backup(tmp_path):
    assert "schema created at" in schema.prepare(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not (tmp_path / schema.BACKUP_DIR_NAME).exists()


def test_a_backup_that_cannot_be_written_stops_the_upgrade_untouched(old_sqlite, tmp_path, capsys):
    database = tmp_path / "mlflow.db"
    shutil.copy(old_sqlite, database)
    (tmp_path / schema.BACKUP_DIR_NAME).write_text("a file where the backup folder would go")
    unchanged = database.read_bytes()
    assert schema.main([f"sqlite:///{database}"]) == 1
    error = capsys.readouterr().err
    assert "backing up the store before upgrading its schema" in error and "not upgrading" in error, error
    assert database.read_bytes() == unchanged


def test_check_mode_refuses_an_old_schema_and_migrates_nothing(old_sqlite, tmp_path, capsys):
    """What a Kubernetes pod runs, where a Job migrates before the rollout."""
    database = tmp_path / "mlflow.db"
    shutil.copy(old_sqlite, database)
    unchanged = database.read_bytes()
    assert schema.main(["--check", f"sqlite:///{database}"]) == 1
    assert "the migration (its Job) has not run" in capsys.readouterr().err
    assert database.read_bytes() == unchanged and not (tmp_path / schema.BACKUP_DIR_NAME).exists()


def test_an_upgrade_of_a_postgres_store_is_pg_dumped_first(postgres_server, tmp_path):
    old, head = previous_revision(), schema.head_revision()
    make_store_at(postgres_server, old)
    backups = tmp_path / "backups"
    done = schema.prepare(postgres_server, backups)
    (backup,) = backups.iterdir()
    assert f"upgraded from {old} to {head}" in done
    assert backup.name.startswith(f"mlflow-{old}-to-{head}-") and backup.suffix == ".pgdump" and private(backup)
    listing = subprocess.run(["pg_restore", "--list", str(backup)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public alembic_version" in listing.stdout  # a real custom-format dump of the store
    assert schema.current_revision(postgres_server) == head
