"""Tables from a SQL query through SQLAlchemy: any database with a SQLAlchemy driver.

The URL (and its password) comes from the environment variable `data.sql.url_env`, or the file named by
`<url_env>_FILE`; it is never printed or recorded with its password.
"""

from __future__ import annotations

from pipelines.config_model import DataConfig
from pipelines.sources import DataError, SourcedTable


def read_query(config: DataConfig) -> SourcedTable:
    raise DataError("data.sql: SQL sources are not built yet")
