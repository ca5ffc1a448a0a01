"""`data.source: s3://...` and `data.sql` against the session's real SeaweedFS and PostgreSQL: tables read back
whole, proofs that pin them, every bad input as one DataError naming the source, and a release from each kind.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy
import yaml
from mlflow.tracking import MlflowClient

from pipelines import source_sql
from pipelines.config import DataConfig, load_config
from pipelines.data import check_schema, data_version
from pipelines.demo_data import make_loans
from pipelines.registry import CHALLENGER, aliases_of
from pipelines.sources import DataError, SourcedTable, read_source
from pipelines.task import CLASSIFICATION_TASK
from services.contract import DATA_VERSION_TAG
from tests.integration.test_release_loop import cli
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PLAIN, VERSIONED = "sources-plain", "sources-versioned"  # buckets without and with object versions
URL_ENV, TABLE = "TRAINING_DB_URL", "loans"
LOANS = {"target": "defaulted", "numeric_features": ["age", "income", "loan_amount", "credit_score", "debt_ratio"],
         "categorical_features": ["employment", "region", "purpose"]}


def loans_config(**data: object) -> DataConfig:
    return DataConfig(**LOANS, **data)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def version_of(frame: pd.DataFrame, config: DataConfig | None = None) -> str:
    return data_version(check_schema(frame, config or loans_config(), CLASSIFICATION_TASK))


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_loans(rows=900)


@pytest.fixture(scope="module")
def objects(s3_server, table):
    """The buckets and their objects: one parquet, its csv twin, a prefix of three parts (and a marker file)."""
    client = s3_server.client()
    s3_server.create_bucket(PLAIN)
    s3_server.create_bucket(VERSIONED, versioned=True)
    client.put_object(Bucket=PLAIN, Key="loans.parquet", Body=parquet_bytes(table))
    client.put_object(Bucket=PLAIN, Key="loans.csv", Body=table.to_csv(index=False).encode())
    client.put_object(Bucket=PLAIN, Key="notes.json", Body=b"{}")
    for number, start in enumerate(range(0, len(table), 300)):
        part = parquet_bytes(table.iloc[start:start + 300])
        client.put_object(Bucket=PLAIN, Key=f"parts/part-{number:03d}.parquet", Body=part)
    # Not empty: on SeaweedFS 4.48 an empty object stalls the next write to a versioned bucket for 60 s.
    client.put_object(Bucket=PLAIN, Key="parts/_SUCCESS", Body=b"done")
    return client


@pytest.fixture
def s3_env(s3_server, objects, monkeypatch):
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return objects


def read_s3(source: str, pinned: dict[str, str] | None = None, **data: object) -> SourcedTable:
    return read_source(loans_config(source=source, **data), pinned)


@pytest.mark.parametrize("key", ["loans.parquet", "loans.csv", "parts/"])
def test_an_object_or_a_prefix_reads_the_whole_table(s3_env, table, key):
    read = read_s3(f"s3://{PLAIN}/{key}")
    pd.testing.assert_frame_equal(read.frame.reset_index(drop=True), table)
    assert version_of(read.frame) == version_of(table)
    assert read.provenance.kind == "object" and read.provenance.uri == f"s3://{PLAIN}/{key}"
    keys = [f"parts/part-{n:03d}.parquet" for n in range(3)] if key == "parts/" else [key]
    assert list(read.provenance.proof) == keys
    assert all(proof.startswith("etag:") for proof in read.provenance.proof.values())  # no versions kept
    assert read.provenance.unpinnable is None


def test_a_pinned_read_of_an_overwritten_versioned_object_gives_the_old_table(s3_env, table):
    source, changed = f"s3://{VERSIONED}/loans.parquet", table.assign(income=table["income"] + 1)
    s3_env.put_object(Bucket=VERSIONED, Key="loans.parquet", Body=parquet_bytes(table))
    first = read_s3(source)
    (version_id,) = first.provenance.proof.values()
    assert not version_id.startswith("etag:")
    s3_env.put_object(Bucket=VERSIONED, Key="loans.parquet", Body=parquet_bytes(changed))

    assert version_of(read_s3(source).frame) == version_of(changed)
    again = read_s3(source, pinned=first.provenance.proof)
    pd.testing.assert_frame_equal(again.frame, table)
    assert again.provenance.proof == first.provenance.proof


def test_a_pinned_read_of_a_changed_unversioned_object_is_refused(s3_env, table):
    source = f"s3://{PLAIN}/changing.parquet"
    s3_env.put_object(Bucket=PLAIN, Key="changing.parquet", Body=parquet_bytes(table))
    first = read_s3(source)
    assert version_of(read_s3(source, pinned=first.provenance.proof).frame) == version_of(table)  # unchanged: fine
    s3_env.put_object(Bucket=PLAIN, Key="changing.parquet", Body=parquet_bytes(table.head(10)))
    recorded = first.provenance.proof["changing.parquet"].removeprefix("etag:")
    with pytest.raises(DataError, match=f"changing.parquet changed since it was recorded .ETag {recorded} then, "):
        read_s3(source, pinned=first.provenance.proof)


def test_a_pinned_read_of_a_prefix_with_one_part_changed_is_refused_naming_that_part(s3_env, table):
    source = f"s3://{PLAIN}/changing-parts/"
    for number, start in enumerate(range(0, len(table), 450)):
        s3_env.put_object(Bucket=PLAIN, Key=f"changing-parts/p{number}.parquet",
                          Body=parquet_bytes(table.iloc[start:start + 450]))
    first = read_s3(source)
    assert list(first.provenance.proof) == ["changing-parts/p0.parquet", "changing-parts/p1.parquet"]
    s3_env.put_object(Bucket=PLAIN, Key="changing-parts/p1.parquet", Body=parquet_bytes(table.iloc[450:460]))
    recorded = first.provenance.proof["changing-parts/p1.parquet"].removeprefix("etag:")
    with pytest.raises(DataError, match=f"{source}: s3://{PLAIN}/changing-parts/p1.parquet changed since it was "
                                        f"recorded .ETag {recorded} then, "):
        read_s3(source, pinned=first.provenance.proof)


NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": "/none",
                  "AWS_CONFIG_FILE": "/none", "AWS_EC2_METADATA_DISABLED": "true"}  # None: unset


@pytest.mark.parametrize(("source", "env", "data", "expected"), [
    (f"s3://{PLAIN}/loans.parquet", {"MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:{free}"}, {},
     r"cannot reach the S3 endpoint http://127\.0\.0\.1:\d+ \(MLFLOW_S3_ENDPOINT_URL\)"),
    (f"s3://{PLAIN}/loans.parquet", {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, {}, "refused the credentials"),
    (f"s3://{PLAIN}/loans.parquet", {"AWS_ACCESS_KEY_ID": "nobody"}, {}, "refused the credentials"),
    (f"s3://{PLAIN}/loans.parquet", NO_CREDENTIALS, {}, "no S3 credentials; set AWS_ACCESS_KEY_ID"),
    ("s3://no-such-bucket/loans.parquet", {}, {}, "the bucket no-such-bucket does not exist"),
    (f"s3://{PLAIN}/nope.parquet", {}, {}, f"s3://{PLAIN}/nope.parquet: no such object"),
    (f"s3://{PLAIN}/empty/", {}, {}, r"no \.parquet objects under this prefix"),
    (f"s3://{PLAIN}/notes.json", {}, {}, "unsupported object type '.json'"),
    (f"s3://{PLAIN}/parts/", {}, {"max_file_bytes": 1000}, r"data.max_file_bytes: s3://.*/parts/ is [\d,]+ bytes"),
    (f"s3://{VERSIONED}/loans.parquet", {}, {"pinned": {"loans.parquet": "no-such-version"}},
     "version no-such-version of .* is gone"),
])
def test_a_bad_object_source_is_one_clear_error(s3_env, monkeypatch, source, env, data, expected):
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value.format(free=free_port()))
    pinned = data.pop("pinned", None)
    with pytest.raises(DataError, match=expected) as raised:
        read_s3(source, pinned, **data)
    assert str(raised.value).startswith(f"data.{'max_file_bytes' if data else 'source'}")
    assert "not-the-secret" not in str(raised.value) and "platform-tests-secret" not in str(raised.value)


# ---- SQL ----

TRAINER, TRAINER_PASSWORD = "trainer", "trainer-pw-1"


@pytest.fixture(scope="module")
def database(postgres_server, table) -> sqlalchemy.engine.URL:
    """The loans table, an empty twin, and a role `trainer` that logs in with a password (the server trusts
    everyone else): the URL with the trainer's login."""
    engine = sqlalchemy.create_engine(postgres_server)
    with engine.begin() as connection:
        table.to_sql(TABLE, connection, if_exists="replace", index=False)
        connection.exec_driver_sql(f"create table if not exists empty_loans as select * from {TABLE} limit 0")
        connection.exec_driver_sql(f"drop role if exists {TRAINER}")
        connection.exec_driver_sql(f"create role {TRAINER} login password '{TRAINER_PASSWORD}'")
        connection.exec_driver_sql(f"grant select on {TABLE}, empty_loans to {TRAINER}")
        hba = Path(connection.exec_driver_sql("show hba_file").scalar())
        rule = f"host all {TRAINER} 127.0.0.1/32 scram-sha-256\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())
        connection.exec_driver_sql("select pg_reload_conf()")
    engine.dispose()
    return sqlalchemy.engine.make_url(postgres_server).set(username=TRAINER, password=TRAINER_PASSWORD)


def sql_config(query: str = f"select * from {TABLE}", **data: object) -> DataConfig:
    return loans_config(sql={"url_env": URL_ENV, "query": query}, **data)


@pytest.fixture
def db_env(database, monkeypatch):
    monkeypatch.setenv(URL_ENV, database.render_as_string(hide_password=False))
    return database


def test_a_query_reads_the_whole_table_in_chunks(db_env, table, monkeypatch):
    monkeypatch.setattr(source_sql, "CHUNK_ROWS", 200)  # several chunks, the last one short
    read = read_source(sql_config(f"select * from {TABLE} order by 1, 2, 3"))
    expected = table.sort_values(["age", "income", "loan_amount"], ignore_index=True)
    pd.testing.assert_frame_equal(read.frame, expected)
    assert version_of(read.frame) == version_of(table.sort_values(["age", "income", "loan_amount"]))
    assert read.provenance.kind == "sql" and TRAINER_PASSWORD not in read.provenance.uri
    assert read.provenance.uri == db_env.render_as_string(hide_password=True)
    assert "data.snapshot: reference is refused" in read.provenance.unpinnable


def test_the_url_may_come_from_a_secret_file(database, monkeypatch, tmp_path):
    secret = tmp_path / "db-url"
    secret.write_text(database.render_as_string(hide_password=False) + "\n")
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.setenv(f"{URL_ENV}_FILE", str(secret))
    assert len(read_source(sql_config()).frame) == 900


@pytest.mark.parametrize(("query", "url", "data", "expected"), [
    ("select 1", None, {}, f"the environment variable {URL_ENV} is not set"),
    ("select 1", "port", {}, r"cannot connect to postgresql\+psycopg2://trainer:\*\*\*@127\.0\.0\.1:\d+/postgres: "
                             "connection to server .* failed"),
    ("select 1", "password", {}, 'password authentication failed for user "trainer"'),
    ("select * from no_such_table", "", {}, 'relation "no_such_table" does not exist'),
    (f"selec * from {TABLE}", "", {}, 'syntax error at or near "selec"'),
    ("select * from empty_loans", "", {}, "returned no rows"),
    (f"select age, income from {TABLE}", "", {},
     r"returns the columns \['age', 'income'\], not \['loan_amount', .*'defaulted'\] that the data config names"),
    (f"select * from {TABLE}", "", {"max_file_bytes": 1000}, r"data.max_file_bytes: .* \(stopped after 200 rows\)"),
])
def test_a_bad_query_source_is_one_clear_error(database, monkeypatch, query, url, data, expected):
    monkeypatch.setattr(source_sql, "CHUNK_ROWS", 200)
    monkeypatch.delenv(f"{URL_ENV}_FILE", raising=False)
    wrong = {"": database, "port": database.set(port=free_port()), "password": database.set(password="wrong-pw")}
    if url is None:
        monkeypatch.delenv(URL_ENV, raising=False)
    else:
        monkeypatch.setenv(URL_ENV, wrong[url].render_as_string(hide_password=False))
    with pytest.raises(DataError, match=expected) as raised:
        read_source(sql_config(query, **data))
    assert TRAINER_PASSWORD not in str(raised.value) and "wrong-pw" not in str(raised.value)


# ---- a release from each kind of source ----

@pytest.mark.parametrize("kind", ["object", "sql"])
def test_train_and_gate_from_each_source(kind, local_platform, s3_env, db_env, monkeypatch):
    """`make train validate` with the table from S3 or PostgreSQL (snapshot: copy): the registered version's data
    version is the digest of the table as it was stored."""
    table = make_loans()
    if kind == "object":
        s3_env.put_object(Bucket=PLAIN, Key="release/loans.parquet", Body=parquet_bytes(table))
        data = {"source": f"s3://{PLAIN}/release/loans.parquet", "snapshot": "copy"}
    else:
        with sqlalchemy.create_engine(db_env.set(username="postgres", password=None)).begin() as connection:
            table.to_sql("release_loans", connection, if_exists="replace", index=False)
            connection.exec_driver_sql(f"grant select on release_loans to {TRAINER}")
        data = {"sql": {"url_env": URL_ENV, "query": "select * from release_loans"}, "snapshot": "copy"}
    path = local_platform.variant(f"from-{kind}", data=data)
    model_name = f"loans-from-{kind}"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "model_name": model_name}))

    for step in ("train", "validate"):
        code, output = cli(step, config=path)
        assert code == 0, f"`pipelines {step}` exited {code}:\n{output}"
    assert "gate passed" in output, output
    client = MlflowClient(local_platform.config.tracking.uri)
    version = client.get_model_version(model_name, aliases_of(client, model_name)[CHALLENGER])
    assert version.tags[DATA_VERSION_TAG] == version_of(table, load_config(path).data)  # the release's columns
    run = client.get_run(version.run_id).data
    assert run.tags["data_source"] == (data.get("source") or db_env.render_as_string(hide_password=True))
    assert TRAINER_PASSWORD not in str(run)
