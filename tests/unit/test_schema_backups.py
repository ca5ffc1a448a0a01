"""The schema step's backups (services/tracking/schema.py): how many it keeps, what a pg_dump refusal says."""

from __future__ import annotations

from pathlib import Path

from services.tracking import schema

# pg_dump 15's own words (src/bin/pg_dump/pg_backup_db.c) against a PostgreSQL 16 server.
MISMATCH = ("pg_dump: error: aborting because of server version mismatch\n"
            "pg_dump: detail: server version: 16.4 (Debian 16.4-1.pgdg120+2); pg_dump version: 15.10 "
            "(Debian 15.10-0+deb12u1)\n")


def backup(directory: Path, upgrade: str, day: int, suffix: str = "pgdump") -> Path:
    path = directory / f"mlflow-{upgrade}-202611{day:02d}T120000Z.{suffix}"
    path.write_bytes(b"dump")
    return path


def test_a_version_mismatch_names_both_versions_and_the_way_out():
    message = schema.pg_dump_failure(MISMATCH)
    assert message.startswith("pg_dump 15.10 (Debian 15.10-0+deb12u1) refuses the PostgreSQL 16.4 (Debian "
                              "16.4-1.pgdg120+2) server")
    assert "apt.postgresql.org" in message and "baseImage" in message


def test_another_pg_dump_failure_is_passed_on_as_it_was():
    said = "pg_dump: error: connection to server failed: FATAL:  password authentication failed\n"
    assert schema.pg_dump_failure(said) == f"pg_dump failed: {said.strip()}"


def test_only_the_newest_backups_and_the_first_of_the_pending_upgrade_are_kept(tmp_path):
    """A start that fails after its backup, restarted over and over, writes one each time."""
    older_upgrade = backup(tmp_path, "aaaa00000001-to-bbbb00000002", 1, "sqlite")
    attempts = [backup(tmp_path, "bbbb00000002-to-cccc00000003", day) for day in range(2, 12)]
    pruned = schema.prune_backups(tmp_path, "bbbb00000002-to-cccc00000003")
    kept = sorted(tmp_path.iterdir())
    assert kept == sorted([attempts[0], *attempts[-schema.KEEP_BACKUPS:]])  # the store before any attempt
    assert sorted(pruned) == sorted([older_upgrade, *attempts[1:-schema.KEEP_BACKUPS]])


def test_pruning_leaves_every_file_not_named_as_a_schema_backup(tmp_path):
    attempts = [backup(tmp_path, "bbbb00000002-to-cccc00000003", day) for day in range(1, 12)]
    strangers = [tmp_path / name for name in (
        "mlflow-bbbb00000002-to-cccc00000003-20261101T120000Z.pgdump.bak", "notes.txt",
        "mlflow-bbbb00000002-to-cccc00000003-20261101T120000.pgdump", "other-aaaa-to-bbbb-20261101T120000Z.sqlite",
        "mlflow-bbbb00000002-to-cccc00000003-20261101T120000Z.tar.gz")]
    for path in strangers:
        path.write_text("not ours")
    (tmp_path / "mlflow-aaaa00000001-to-bbbb00000002-20261101T110000Z.sqlite").mkdir()  # a directory, not ours
    schema.prune_backups(tmp_path, "bbbb00000002-to-cccc00000003")
    assert all(path.exists() for path in strangers)
    assert (tmp_path / "mlflow-aaaa00000001-to-bbbb00000002-20261101T110000Z.sqlite").is_dir()
    assert [path for path in attempts if path.exists()] == [attempts[0], *attempts[-schema.KEEP_BACKUPS:]]


def test_a_backup_whose_pruning_fails_is_still_made_and_the_upgrade_goes_on(tmp_path, monkeypatch, capsys):
    """Pruning is housekeeping: a directory it cannot tidy must not stop MLflow's start after a good backup."""
    import sqlite3

    store = tmp_path / "mlflow.db"
    sqlite3.connect(store).close()

    def refuses(*args):
        raise PermissionError("[Errno 13] Permission denied: 'schema-backups/old'")

    monkeypatch.setattr(schema, "prune_backups", refuses)
    made = schema.back_up(f"sqlite:///{store}", "aaaa00000001", "bbbb00000002", tmp_path / "backups")
    assert made.is_file()
    assert "could not prune old schema backups" in capsys.readouterr().err
