"""Tables from a SQL query through SQLAlchemy: any database with a SQLAlchemy driver.

The URL (and its password) comes from the environment variable `data.sql.url_env`, or the file named by
`<url_env>_FILE`; it is never printed or recorded with its password. Rows stream through a server-side cursor
in chunks, each turned into Arrow columns at once, so memory stays near the table's own size and a result over
`data.max_file_bytes` stops early.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pipelines.config_model import DataConfig
from pipelines.sources import DataError, Provenance, SourcedTable, check_size

CHUNK_ROWS = 50_000
# Fail fast on a wrong host: the drivers' own connect timeouts (SQLAlchemy has no portable one).
CONNECT_ARGS: dict[str, dict[str, Any]] = {"postgresql": {"connect_timeout": 5}, "mysql": {"connect_timeout": 5}}
# Column types a DataFrame holds as they are; any other (a UUID, a struct from JSON, a list) becomes text.
PLAIN_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string,
               pa.types.is_large_string, pa.types.is_temporal, pa.types.is_decimal, pa.types.is_binary,
               pa.types.is_null)
UNPINNABLE = ("a SQL query's rows can change under it and nothing pins them, so data.snapshot: reference is "
              "refused for data.sql; use data.snapshot: copy (or export the table to versioned object storage "
              "and read it with data.source: s3://...)")


def read_query(config: DataConfig) -> SourcedTable:
    """The rows of `data.sql.query`, at the database `data.sql.url_env` names."""
    assert config.sql is not None  # read_source dispatches here only for data.sql
    url = database_url(config.sql.url_env)
    shown = redacted(url, config.sql.url_env)
    frame = fetch_frame(url, shown, config)
    return SourcedTable(frame, Provenance("sql", shown, {}, unpinnable=UNPINNABLE))


def database_url(url_env: str) -> str:
    """The URL from the variable, else from the file `<url_env>_FILE` names (a mounted secret)."""
    value, file_env = os.environ.get(url_env), f"{url_env}_FILE"
    if value is None and (file := os.environ.get(file_env)) is not None:
        try:
            value = Path(file).read_text()
        except OSError as exc:
            raise DataError(f"data.sql.url_env: {file_env} names {file}, which cannot be read ({exc.strerror})") \
                from None
    if value is None:
        raise DataError(f"data.sql.url_env: the environment variable {url_env} is not set (nor {file_env}); set it "
                        "to the database's SQLAlchemy URL, e.g. postgresql+psycopg2://user:password@host:5432/db")
    if not value.strip():
        raise DataError(f"data.sql.url_env: {url_env} is empty; it should hold the database's SQLAlchemy URL")
    return value.strip()


def redacted(url: str, url_env: str) -> str:
    """The URL as printed and recorded: dialect+driver://user:***@host:port/database, and no query at all,
    since any parameter may carry a secret under a driver's own name (odbc_connect's PWD, passwd, ..._pwd)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # its message would quote the URL, password and all
        raise DataError(f"data.sql.url_env: {url_env} does not hold a SQLAlchemy URL "
                        "(dialect+driver://user:password@host:port/database)") from None
    return parsed.set(query={}).render_as_string(hide_password=True)


def fetch_frame(url: str, shown: str, config: DataConfig) -> pd.DataFrame:
    """Connect, run the query on a server-side cursor, and gather its rows chunk by chunk."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    assert config.sql is not None
    parsed = make_url(url)
    password = parsed.password or ""
    with sql_errors(f"data.sql: cannot connect to {shown}", password), missing_driver(parsed.drivername, shown):
        engine = create_engine(url, poolclass=NullPool, connect_args=CONNECT_ARGS.get(parsed.get_backend_name(), {}))
        connection = engine.connect()
    try:
        with sql_errors(f"data.sql.query failed on {shown}", password):
            result = connection.execution_options(stream_results=True, yield_per=CHUNK_ROWS) \
                .exec_driver_sql(config.sql.query)
            columns = list(result.keys())
            if missing := [column for column in config.columns if column not in columns]:
                raise DataError(f"data.sql.query on {shown} returns the columns {columns}, not {missing} that the "
                                "data config names; select them (or alias them) in the query")
            tables = list(arrow_chunks(result, columns, shown, config.max_file_bytes))
    finally:
        connection.close()
        engine.dispose()
    if not tables:
        raise DataError(f"data.sql.query on {shown} returned no rows; nothing to train on")
    return one_table(tables, shown).to_pandas()


def one_table(tables: list[pa.Table], shown: str) -> pa.Table:
    """The chunks as one table: a column all null in one chunk takes the others' type; two types are refused."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a database without column types (SQLite) mixes them
        pass
    for name in tables[0].column_names:
        if len(types := sorted({str(t.schema.field(name).type) for t in tables} - {"null"})) > 1:
            raise DataError(f"data.sql.query on {shown}: the column '{name}' holds values of more than one type "
                            f"({', '.join(types)}); cast it in the query (e.g. CAST({name} AS TEXT))") from None
    raise DataError(f"data.sql.query on {shown}: its rows do not share one type per column") from None


@contextmanager
def missing_driver(drivername: str, shown: str) -> Iterator[None]:
    """SQLAlchemy imports the driver when the engine is made: its absence is a package to add, not a traceback."""
    try:
        yield
    except ImportError as exc:
        module = (exc.name or "").split(".")[0] or "its driver package"
        raise DataError(f"data.sql: cannot connect to {shown}: the driver for {drivername} is not installed; "
                        f"uv add {module}") from None


def arrow_chunks(result: Any, columns: list[str], shown: str, max_bytes: int) -> Iterator[pa.Table]:
    """The result's rows as Arrow tables of CHUNK_ROWS; past `max_bytes` in memory, stop reading."""
    rows = size = 0
    for chunk in result.partitions(CHUNK_ROWS):
        by_column = zip(*chunk, strict=True)
        table = pa.Table.from_arrays([arrow_column(values) for values in by_column], names=columns)
        rows, size = rows + table.num_rows, size + table.nbytes
        check_size(f"the result of data.sql.query on {shown} (stopped after {rows:,} rows)", size, max_bytes)
        yield table


def arrow_column(values: Sequence[Any]) -> pa.Array:
    """One column of a chunk: a DECIMAL is a float; a value of no plain type (a UUID, an inet, JSON) its text."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or not any(is_type(array.type) for is_type in PLAIN_TYPES):
        return pa.array([None if value is None else str(value) for value in values], pa.string())
    return array.cast(pa.float64()) if pa.types.is_decimal(array.type) else array


@contextmanager
def sql_errors(what: str, password: str) -> Iterator[None]:
    """A driver's or SQLAlchemy's failure as the database's own first line, any password masked."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except DBAPIError as exc:
        raise DataError(f"{what}: {masked(first_line(exc.orig), password)}") from None
    except SQLAlchemyError as exc:  # no such dialect or driver, a bad URL option
        raise DataError(f"{what}: {masked(first_line(exc), password)}") from None


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def masked(message: str, password: str) -> str:
    return message.replace(password, "***") if password else message
