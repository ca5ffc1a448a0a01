"""The stack's Postgres container, for `pipelines.backup_stack.StackStore`: dumped with `pg_dump` inside it,
restored beside the live database (`<db>_restoring`) and swapped in by renames that keep the live one aside
(`<db>_replaced`) until the restore is known good."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pipelines.backup import BackupError
from pipelines.backup_docker import fetch, run_in, tar_of

if TYPE_CHECKING:
    from docker.models.containers import Container


class StackPostgres:
    """MLflow's database in the stack's `<prefix>-postgres` container, reached through `docker exec`."""

    def __init__(self, container: Container) -> None:
        self.container = container
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"] or [])
        self.user, self.database = env.get("POSTGRES_USER", "mlflow"), env.get("POSTGRES_DB", "mlflow")
        self.side = f"{self.database}_restoring"  # the restored copy, while the live one serves
        self.replaced = f"{self.database}_replaced"  # the live one, kept aside until the restore finishes

    def psql(self, sql: str, database: str | None = None) -> str:
        return run_in(self.container, ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", self.user,
                                       "-d", database or self.database, "-c", sql]).strip()

    def _admin(self, sql: str) -> str:
        return self.psql(sql, database="postgres")

    def dump(self, into: Path) -> str:
        """A custom-format dump of the live database at `into`; returns its schema revision."""
        revision = self.psql("SELECT version_num FROM alembic_version")
        scratch = f"/tmp/backup-{time.time_ns()}.pgdump"
        run_in(self.container, ["pg_dump", "--format=custom", "--no-owner", "-U", self.user, "-d", self.database,
                                "-f", scratch])
        fetch(self.container, scratch, into)
        run_in(self.container, ["rm", "-f", scratch])
        return revision

    def counts(self, sql: str) -> tuple[int, ...]:
        """The result of the contents query, or zeros while MLflow has not created its tables."""
        if self.psql("SELECT to_regclass('public.runs') IS NOT NULL") != "t":
            return (0, 0, 0)
        return tuple(int(n) for n in self.psql(sql).split("|"))

    def refuse_unfinished(self) -> None:
        """Refuse while an earlier restore that did not finish keeps the live database aside: maybe its only copy."""
        if self._exists(self.replaced):
            raise BackupError(
                f"an earlier restore did not finish: the database {self.replaced} may hold the only copy of the "
                f"state from before it, so nothing was touched. If the live database {self.database} is right, "
                f"drop {self.replaced}; if not, rename it back over {self.database}; then restore again")

    def restore_beside(self, dump: Path) -> None:
        scratch = f"/tmp/restore-{time.time_ns()}.pgdump"
        self.container.put_archive("/tmp", tar_of({PurePosixPath(scratch).name: dump}))
        try:
            self.drop_side()
            self._admin(f'CREATE DATABASE "{self.side}"')
            run_in(self.container, ["pg_restore", "--no-owner", "--exit-on-error", "-U", self.user, "-d", self.side,
                                    scratch])
        finally:
            run_in(self.container, ["rm", "-f", scratch])

    def drop_side(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.side}" WITH (FORCE)')

    def swap(self) -> None:
        """Both renames in one transaction (MLflow is stopped, so nothing holds the database)."""
        self._admin(f'ALTER DATABASE "{self.database}" RENAME TO "{self.replaced}"; '
                    f'ALTER DATABASE "{self.side}" RENAME TO "{self.database}"')

    def unswap(self) -> None:
        """The live database back under its name, the restored one dropped."""
        if not self._exists(self.replaced):  # the swap never ran: only the copy goes
            self.drop_side()
            return
        self._admin(f'ALTER DATABASE "{self.database}" RENAME TO "{self.side}"; '
                    f'ALTER DATABASE "{self.replaced}" RENAME TO "{self.database}"')
        self._admin(f'DROP DATABASE "{self.side}" WITH (FORCE)')

    def drop_replaced(self) -> None:
        self._admin(f'DROP DATABASE "{self.replaced}" WITH (FORCE)')

    def _exists(self, name: str) -> bool:
        return self._admin(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "1"
