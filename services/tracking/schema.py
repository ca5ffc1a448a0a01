"""Bring an MLflow backend store to this MLflow's schema before the server starts.

    python schema.py <backend store URI> [--backup-dir DIR] [--check]

Run by the tracking image's entrypoint and by `make platform` before `mlflow server`: an empty database
gets the schema, an older one is backed up and then migrated with `mlflow db upgrade`, a current one is
left alone (idempotent), and one whose schema revision this MLflow does not know (a newer MLflow made it)
is refused with one line before anything touches it. The backup before a migration is a copy of the
SQLite file or a `pg_dump`, 0600, named by both revisions (`mlflow-<from>-to-<to>-<UTC time>.sqlite`), in
`--backup-dir` (default: `schema-backups/` beside a SQLite file); if it cannot be written, nothing is
migrated. Only the newest KEEP_BACKUPS of them are kept (a start that fails after its backup, restarted,
writes one each time), and the first one of the pending upgrade, the store before any attempt at it.
`--check` migrates nothing: it only says whether the store is at this MLflow's head (the Kubernetes pods,
whose migration runs once in a Job before them). Exit codes: 0 ready, 1 refused or failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

ALEMBIC_TABLE = "alembic_version"
BACKUP_DIR_NAME = "schema-backups"  # beside a SQLite file, when no --backup-dir is given
KEEP_BACKUPS = 5
# A schema backup's name, as back_up writes it: the two revisions, then the UTC time (which orders them).
BACKUP_NAME = re.compile(r"mlflow-(?P<upgrade>[0-9a-z]+-to-[0-9a-z]+)-(?P<time>\d{8}T\d{6})Z\.(sqlite|pgdump)")


class SchemaError(RuntimeError):
    """The store cannot be brought to this MLflow's schema; the message says why and what to do."""


def _migrations() -> ScriptDirectory:
    # The migration scripts MLflow ships and `mlflow db upgrade` runs.
    return ScriptDirectory(str(files("mlflow") / "store" / "db_migrations"))


def head_revision() -> str:
    return _migrations().get_current_head() or ""


def is_known_revision(revision: str) -> bool:
    """True when this MLflow's migrations contain `revision` (so it can read or upgrade that schema)."""
    try:
        return _migrations().get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(uri: str) -> str | None:
    """The store's schema revision; None for a store without MLflow tables (a new, empty database)."""
    engine = create_engine(uri)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(ALEMBIC_TABLE):
                return None
            row = connection.exec_driver_sql(f"SELECT version_num FROM {ALEMBIC_TABLE}").first()
            return row[0] if row else None
    except SQLAlchemyError as exc:
        raise SchemaError(f"cannot read the backend store: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


def prepare(uri: str, backup_dir: Path | None = None) -> str:
    """Create, upgrade or keep the store's schema; return what was done. Raises SchemaError.
    An existing schema is backed up into `backup_dir` before it is upgraded."""
    mlflow_version, head = version("mlflow"), head_revision()
    current = current_revision(uri)
    if current == head:
        return f"schema {head} is current for MLflow {mlflow_version}"
    if current is not None and not is_known_revision(current):
        raise SchemaError(
            f"the backend store has schema revision {current}, which MLflow {mlflow_version} does not know "
            "(a newer MLflow made it); refusing to start, nothing was changed. Run the MLflow version that "
            "made it, or restore a backup made with this one")
    backup = None if current is None else back_up(uri, current, head, backup_dir)
    done = subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", uri], capture_output=True, text=True)
    if done.returncode != 0:
        kept = f"; the store as it was is in {backup}" if backup else ""
        raise SchemaError(f"`mlflow db upgrade` failed{kept}:\n{(done.stdout + done.stderr)[-2000:]}")
    if backup is None:
        return f"schema created at {head}"
    return f"schema upgraded from {current} to {head} (the store as it was: {backup})"


def check(uri: str) -> str:
    """Say the store is at this MLflow's head, or raise SchemaError (nothing is migrated here)."""
    head, current = head_revision(), current_revision(uri)
    if current != head:
        raise SchemaError(f"the backend store is at schema revision {current or '(none)'}, MLflow "
                          f"{version('mlflow')} needs {head}; the migration (its Job) has not run, not starting")
    return f"schema {head} is current for MLflow {version('mlflow')}"


def back_up(uri: str, current: str, head: str, directory: Path | None) -> Path:
    """Copy the store before its schema changes: a SQLite file copy or a pg_dump, 0600, named by both revisions.
    Raises SchemaError (so nothing is migrated) when it cannot."""
    url = _url(uri)
    backend = url.get_backend_name()
    if directory is None:
        if backend != "sqlite" or not url.database or url.database == ":memory:":
            raise SchemaError(f"no backup directory for the {backend} store (pass --backup-dir, or set "
                              "SCHEMA_BACKUP_DIR); not upgrading, nothing was changed")
        directory = Path(url.database).parent / BACKUP_DIR_NAME
    now = datetime.now(UTC)
    stem = f"mlflow-{current}-to-{head}-{now:%Y%m%dT%H%M%S}Z"
    target = directory / f"{stem}.{'sqlite' if backend == 'sqlite' else 'pgdump'}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if backend == "sqlite":
            _copy_sqlite(Path(url.database), target)
        elif backend == "postgresql":
            _pg_dump(url, target)
        else:
            raise SchemaError(f"cannot back up a {backend} store")
    except (OSError, sqlite3.Error, SchemaError) as exc:
        raise SchemaError(f"backing up the store before upgrading its schema from {current} to {head} failed "
                          f"({exc}); not upgrading, nothing was changed") from None
    try:
        prune_backups(directory, f"{current}-to-{head}")
    except OSError as exc:  # housekeeping: the backup is made, so the upgrade may go on
        print(f"backend store: could not prune old schema backups in {directory} ({exc})", file=sys.stderr,
              flush=True)
    return target


def prune_backups(directory: Path, upgrade: str) -> list[Path]:
    """Delete all but the newest KEEP_BACKUPS schema backups and the first of `upgrade` (`<from>-to-<to>`, the
    one pending: its first backup is the store before any attempt). Only files named as back_up names them."""
    named = sorted(((match, path) for path in directory.iterdir()
                    if (match := BACKUP_NAME.fullmatch(path.name)) and path.is_file()),
                   key=lambda item: item[0]["time"])
    first_of_upgrade = next((path for match, path in named if match["upgrade"] == upgrade), None)
    doomed = [path for _, path in named[:-KEEP_BACKUPS] if path != first_of_upgrade]
    for path in doomed:
        path.unlink()
    return doomed


def _url(uri: str) -> URL:
    try:
        return make_url(uri)
    except ArgumentError as exc:
        raise SchemaError(f"not a backend store URI: {exc}") from None


def _copy_sqlite(database: Path, target: Path) -> None:
    """SQLite's online backup API into a file that is 0600 from its creation."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as live, \
                closing(sqlite3.connect(target)) as copy:
            live.backup(copy)
    except sqlite3.Error:
        target.unlink()  # ours (created above), and incomplete
        raise


def _pg_dump(url: URL, target: Path) -> None:
    """`pg_dump --format=custom`; a password in the URI goes through the environment, never the command line."""
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    dsn = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    try:
        done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), dsn],
                              capture_output=True, text=True, env=env, umask=0o077)
    except FileNotFoundError:
        raise SchemaError("pg_dump is not installed here") from None
    if done.returncode != 0:
        target.unlink(missing_ok=True)  # what pg_dump left of it, incomplete
        raise SchemaError(pg_dump_failure(done.stderr))


def pg_dump_failure(stderr: str) -> str:
    """What a failed pg_dump said; for the one failure a start cannot get past, the way out."""
    mismatch = re.search(r"server version: (?P<server>[^;]+); pg_dump version: (?P<client>.+)", stderr)
    if "server version mismatch" not in stderr or mismatch is None:
        return f"pg_dump failed: {stderr.strip()[-500:]}"
    return (f"pg_dump {mismatch['client'].strip()} refuses the PostgreSQL {mismatch['server'].strip()} server "
            "(a pg_dump older than its server cannot dump it): build the tracking image on a base image whose "
            "apt sources carry PostgreSQL's own packages (apt.postgresql.org, stack config `baseImage`), so its "
            "postgresql-client is as new as the server")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="schema.py", description="Bring an MLflow backend store to this "
                                     "MLflow's schema, backed up first.")
    parser.add_argument("uri", help="the backend store URI (as `mlflow server --backend-store-uri`)")
    parser.add_argument("--backup-dir", type=Path, default=os.environ.get("SCHEMA_BACKUP_DIR") or None,
                        help="where the store is copied before its schema changes")
    parser.add_argument("--check", action="store_true", help="migrate nothing; fail unless the schema is current")
    args = parser.parse_args(argv)
    try:
        done = check(args.uri) if args.check else prepare(args.uri, args.backup_dir)
    except SchemaError as exc:
        print(f"backend store: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"backend store: {done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
