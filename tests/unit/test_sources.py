"""Object URLs, SQL URLs and their redaction, the config of a source, and the logic that needs no server:
which proof pins a part, the parts a recorded proof may name, how driver errors read (S3's: test_object_store),
how chunks of query rows become one table. The readers against real servers: tests/integration/test_data_sources.py."""

from __future__ import annotations

import decimal
import importlib.util
import re
import uuid

import pyarrow as pa
import pytest
import sqlalchemy
from pydantic import ValidationError

from pipelines import source_sql
from pipelines.config import DataConfig
from pipelines.source_s3 import Part, parse_object_url, pinned_parts, proof_of
from pipelines.sources import DataError, read_source

LOANS = {"target": "defaulted", "numeric_features": ["age"], "categorical_features": ["region"]}
URL_ENV = "TRAINING_DB_URL"


@pytest.mark.parametrize(("source", "bucket", "key", "is_prefix"), [
    ("s3://lake/loans/2026.parquet", "lake", "loans/2026.parquet", False),
    ("s3://lake/loans.CSV", "lake", "loans.CSV", False),
    ("s3://lake/loans/", "lake", "loans/", True),
    ("s3://lake/", "lake", "", True),
    ("s3://lake", "lake", "", True),
])
def test_an_object_url_names_a_bucket_and_a_key_or_prefix(source, bucket, key, is_prefix):
    location = parse_object_url(source)
    assert (location.bucket, location.key, location.is_prefix) == (bucket, key, is_prefix)


@pytest.mark.parametrize(("source", "expected"), [
    ("s3:///loans.parquet", "data.source: s3:///loans.parquet names no bucket"),
    ("s3://lake/loans.json", "data.source s3://lake/loans.json: unsupported object type '.json'"),
    ("s3://lake/loans", "data.source s3://lake/loans: unsupported object type 'loans'.*or a prefix ending in /"),
    ("s3://Lake_2026/loans.parquet", "data.source: 'Lake_2026' is not a valid bucket name"),
    ("s3://lake/loans.parquet?versionId=3", "data.source: .* has a query"),
])
def test_a_bad_object_url_is_refused_before_any_request(source, expected):
    with pytest.raises(DataError, match=expected):
        parse_object_url(source)


def test_credentials_in_an_object_url_are_refused_and_never_shown():
    with pytest.raises(DataError, match="data.source: credentials never go in the URL") as raised:
        parse_object_url("s3://AKIAX:sekrit@bucket/t.parquet")
    assert "sekrit" not in str(raised.value) and "AKIAX" not in str(raised.value)


def test_the_proof_is_the_version_id_else_the_etag():
    part = Part("loans.parquet", 10, "abc123")
    assert proof_of(part, "3HL4kqtJlcpXroDTDmJ") == "3HL4kqtJlcpXroDTDmJ"
    assert proof_of(part, None) == proof_of(part, "null") == "etag:abc123"  # "null": a bucket that never versioned


@pytest.mark.parametrize(("source", "pinned"), [
    ("s3://lake/loans.parquet", {"other.parquet": "etag:abc"}),
    ("s3://lake/parts/", {"parts/a.parquet": "etag:abc", "elsewhere/b.parquet": "v1"}),
])
def test_a_recorded_proof_names_only_parts_of_its_source(source, pinned):
    with pytest.raises(DataError, match="the recorded proof names s3://lake/.*which is not part of this source"):
        pinned_parts(client=None, location=parse_object_url(source), pinned=pinned)  # refused before any request


def test_both_data_source_and_data_sql_is_a_config_error():
    with pytest.raises(ValidationError, match="give data.source or data.sql, not both"):
        DataConfig(**LOANS, source="s3://lake/loans.parquet", sql={"url_env": URL_ENV, "query": "select 1"})
    assert DataConfig(**LOANS, sql={"url_env": URL_ENV, "query": "select 1"}).source_path() is None
    assert DataConfig(**LOANS, source="s3://lake/loans.parquet").source_path() is None


def test_data_sql_needs_a_query():
    with pytest.raises(ValidationError, match="query"):
        DataConfig(**LOANS, sql={"url_env": URL_ENV, "query": ""})


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg2://trainer:s3cr%40t@db.internal:5432/lake",
     "postgresql+psycopg2://trainer:***@db.internal:5432/lake"),
    ("postgresql://trainer:s3cr%40t@db/lake?sslmode=require&sslpassword=s3cr%40t", "postgresql://trainer:***@db/lake"),
    ("mssql+pyodbc://@/?odbc_connect=DRIVER%3D%7BODBC%7D%3BSERVER%3Ddb%3BUID%3Dsa%3BPWD%3Dtopsecret",
     "mssql+pyodbc://@/"),
    ("mysql+pymysql://u@h/db?passwd=topsecret", "mysql+pymysql://u@h/db"),
    ("snowflake://u@acct/db/public?private_key_file=/k.p8&private_key_file_pwd=topsecret", "snowflake://u@acct/db/public"),
    ("sqlite:////data/lake.db", "sqlite:////data/lake.db"),
])
def test_a_database_url_is_shown_without_its_password_nor_its_query(url, shown):
    """Any query parameter may hold a secret under a driver's own name (PWD in odbc_connect, passwd, ..._pwd)."""
    assert source_sql.redacted(url, URL_ENV) == shown


@pytest.mark.parametrize(("url", "module"), [("mysql+pymysql://u:pw@h/db", "pymysql"),
                                             ("mssql+pyodbc://u:pw@dsn", "pyodbc")])
def test_a_missing_driver_names_the_package_to_add(monkeypatch, url, module):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    monkeypatch.setenv(URL_ENV, url)
    config = DataConfig(**LOANS, sql={"url_env": URL_ENV, "query": "select 1"})
    expected = f"the driver for {url.split(':')[0]} is not installed; uv add {module}"
    with pytest.raises(DataError, match=re.escape(expected)):
        read_source(config)


def sqlite_config(monkeypatch, tmp_path, rows: list[tuple[object, ...]]) -> DataConfig:
    """A SQLite table (no server: a file), read one row per chunk, so every row is a chunk of its own."""
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'lake.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("create table loans (age, region, defaulted)")  # SQLite: no column types
        connection.exec_driver_sql("insert into loans values (?, ?, ?)", rows)
    engine.dispose()
    monkeypatch.setenv(URL_ENV, f"sqlite:///{tmp_path / 'lake.db'}")
    monkeypatch.setattr(source_sql, "CHUNK_ROWS", 1)
    return DataConfig(**LOANS, sql={"url_env": URL_ENV, "query": "select * from loans"})


def test_a_column_of_mixed_types_across_chunks_is_named(monkeypatch, tmp_path):
    config = sqlite_config(monkeypatch, tmp_path, [(31, "north", 0), ("forty", "south", 1)])
    with pytest.raises(DataError, match=r"data.sql.query on sqlite:///.*lake.db: the column 'age' holds values of "
                                        r"more than one type \(int64, string\)"):
        read_source(config)


def test_a_value_that_is_no_url_is_refused_without_echoing_it():
    with pytest.raises(DataError, match=f"{URL_ENV} does not hold a SQLAlchemy URL") as raised:
        source_sql.redacted("trainer:s3cret at the usual host", URL_ENV)
    assert "s3cret" not in str(raised.value)


def test_the_url_comes_from_the_variable_or_its_file(monkeypatch, tmp_path):
    monkeypatch.setenv(URL_ENV, " postgresql://a@db/lake\n")
    assert source_sql.database_url(URL_ENV) == "postgresql://a@db/lake"
    secret = tmp_path / "url"
    secret.write_text("postgresql://b@db/lake\n")
    monkeypatch.delenv(URL_ENV)
    monkeypatch.setenv(f"{URL_ENV}_FILE", str(secret))
    assert source_sql.database_url(URL_ENV) == "postgresql://b@db/lake"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, f"the environment variable {URL_ENV} is not set .nor {URL_ENV}_FILE."),
    ({URL_ENV: "  "}, f"{URL_ENV} is empty"),
    ({f"{URL_ENV}_FILE": "/no/such/secret"}, f"{URL_ENV}_FILE names /no/such/secret, which cannot be read"),
])
def test_a_missing_url_names_the_variable(monkeypatch, env, expected):
    for name in (URL_ENV, f"{URL_ENV}_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DataError, match=f"data.sql.url_env: {expected}"):
        source_sql.database_url(URL_ENV)


def test_a_driver_message_never_carries_the_password():
    assert source_sql.masked('FATAL: role "x" with password s3cret', "s3cret") == 'FATAL: role "x" with password ***'
    assert source_sql.first_line(ValueError("\nrelation \"t\" does not exist\nLINE 1: select")) == \
        'relation "t" does not exist'


def test_query_chunks_become_one_table_of_plain_types():
    """A DECIMAL reads as a float, a UUID as text, and a chunk whose column is all null takes the others' type."""
    ident = uuid.uuid4()
    first = pa.table({"amount": source_sql.arrow_column([decimal.Decimal("1.50"), None]),
                      "id": source_sql.arrow_column([ident, None]),
                      "age": source_sql.arrow_column([None, None])})
    second = pa.table({"amount": source_sql.arrow_column([decimal.Decimal("2.25")] * 2),
                       "id": source_sql.arrow_column([None, None]),
                       "age": source_sql.arrow_column([30, 41])})
    frame = pa.concat_tables([first, second], promote_options="permissive").to_pandas()
    assert frame["amount"].tolist()[2:] == [2.25, 2.25] and str(frame["amount"].dtype) == "float64"
    assert frame["id"].tolist()[0] == str(ident)
    assert str(frame["age"].dtype) == "float64" and frame["age"].tolist()[2:] == [30.0, 41.0]


def test_a_local_file_is_read_again_only_with_the_bytes_recorded(tmp_path):
    path = tmp_path / "loans.csv"
    path.write_text("age,region,defaulted\n31,north,0\n")
    config = DataConfig(**LOANS, source=str(path))
    first = read_source(config)
    assert read_source(config, pinned=first.provenance.proof).frame.equals(first.frame)
    path.write_text("age,region,defaulted\n32,north,0\n")
    (recorded,) = first.provenance.proof.values()
    with pytest.raises(DataError, match=f"data.source {path}: the file changed since it was recorded "
                                        f"\\(sha256 {recorded} then, [0-9a-f]{{64}} now\\)"):
        read_source(config, pinned=first.provenance.proof)
