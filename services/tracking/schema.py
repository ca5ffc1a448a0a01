"""Bring an MLflow backend store to this MLflow's schema before the server starts.

    python schema.py <backend store URI>

Run by the tracking image's entrypoint and by `make platform` before `mlflow server`: an empty database
gets the schema, an older one is migrated with `mlflow db upgrade`, a current one is left alone
(idempotent), and one whose schema revision this MLflow does not know (a newer MLflow made it) is
refused with one line before anything touches it. Exit codes: 0 ready, 1 refused or failed.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from importlib.resources import files

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError

ALEMBIC_TABLE = "alembic_version"


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


def prepare(uri: str) -> str:
    """Create, upgrade or keep the store's schema; return what was done. Raises SchemaError."""
    mlflow_version, head = version("mlflow"), head_revision()
    current = current_revision(uri)
    if current == head:
        return f"schema {head} is current for MLflow {mlflow_version}"
    if current is not None and not is_known_revision(current):
        raise SchemaError(
            f"the backend store has schema revision {current}, which MLflow {mlflow_version} does not know "
            "(a newer MLflow made it); refusing to start, nothing was changed. Run the MLflow version that "
            "made it, or restore a backup made with this one")
    done = subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", uri], capture_output=True, text=True)
    if done.returncode != 0:
        raise SchemaError(f"`mlflow db upgrade` failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return f"schema created at {head}" if current is None else f"schema upgraded from {current} to {head}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: schema.py <backend store URI>", file=sys.stderr)
        return 1
    try:
        print(f"backend store: {prepare(argv[0])}", flush=True)
    except SchemaError as exc:
        print(f"backend store: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
