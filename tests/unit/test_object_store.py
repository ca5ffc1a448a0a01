"""Where objects live (`s3://bucket/prefix`), as the config and the backup CLI take it; no server needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError, ReadTimeoutError

from pipelines import object_store
from pipelines.config import DEFAULT_CONFIG_PATH, ConfigError, DataConfig, load_config
from pipelines.object_store import ObjectStoreError, S3Location, is_s3_url, local_path_for
from pipelines.sources import DataError, read_source
from tests.servers import free_port


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://artifacts", "artifacts", ""),
    ("s3://artifacts/", "artifacts", ""),
    ("s3://my.bucket-1/mlflow/artifacts/", "my.bucket-1", "mlflow/artifacts"),
])
def test_a_location_is_a_bucket_and_a_prefix(url, bucket, prefix):
    location = S3Location.parse(url, "platform.artifacts_destination")
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.url == f"s3://{bucket}" + (f"/{prefix}" if prefix else "")
    assert location.key("1/run/model.pkl") == "/".join(filter(None, [prefix, "1/run/model.pkl"]))


@pytest.mark.parametrize(("url", "says"), [
    ("s3://", "no bucket"),
    ("s3://Not_A_Bucket/x", "not a valid bucket name"),
    ("s3://ab/x", "not a valid bucket name"),
    ("s3://bucket/a//b", "empty part"),
    ("s3://bucket/x?versionId=1", "query"),
    ("gs://bucket/x", "s3://"),
])
def test_a_bad_location_is_named_with_the_setting(url, says):
    with pytest.raises(ObjectStoreError, match=says) as error:
        S3Location.parse(url, "platform.artifacts_destination")
    assert "platform.artifacts_destination" in str(error.value)


def test_credentials_in_a_location_are_refused_and_never_shown():
    with pytest.raises(ObjectStoreError, match="credentials") as error:
        S3Location.parse("s3://AKIAKEY:very-secret@bucket/x", "--dir")
    assert "very-secret" not in str(error.value) and "AKIAKEY" not in str(error.value)


def test_only_s3_urls_are_object_locations(tmp_path):
    assert is_s3_url("s3://bucket/prefix")
    assert not is_s3_url(str(tmp_path)) and not is_s3_url(tmp_path)


@pytest.mark.parametrize("key", ["../outside", "a/../../b", "/etc/passwd", "a/./b", ""])
def test_an_object_key_never_writes_outside_its_folder(tmp_path, key):
    with pytest.raises(ObjectStoreError, match="refusing"):
        local_path_for(tmp_path, key)


def test_an_object_key_maps_below_its_folder(tmp_path):
    assert local_path_for(tmp_path, "1/run/artifacts/model.pkl") == tmp_path / "1/run/artifacts/model.pkl"


def _config_with(tmp_path: Path, **platform: str):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"].update(platform)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_the_local_platform_keeps_artifacts_in_its_state_dir_unless_the_config_names_a_bucket(tmp_path):
    assert _config_with(tmp_path).platform.artifacts_location is None
    config = _config_with(tmp_path, artifacts_destination="s3://team-artifacts/mlflow")
    assert config.platform.artifacts_location == S3Location("team-artifacts", "mlflow")


def test_a_bad_artifacts_destination_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="platform.artifacts_destination") as error:
        _config_with(tmp_path, artifacts_destination="s3://Bad_Bucket/x")
    assert "valid bucket name" in str(error.value)


def test_backups_go_to_the_state_dir_a_folder_or_a_bucket(tmp_path):
    config = _config_with(tmp_path, state_dir=str(tmp_path / "state"))
    assert config.platform.backups_at == tmp_path / "state" / "backups"
    assert _config_with(tmp_path, backup_destination=str(tmp_path / "kept")).platform.backups_at == tmp_path / "kept"
    on_s3 = _config_with(tmp_path, backup_destination="s3://backups/nightly/")
    assert on_s3.platform.backups_at == "s3://backups/nightly"
    with pytest.raises(ConfigError, match="platform.backup_destination"):
        _config_with(tmp_path, backup_destination="s3://x/y")


def test_pipeline_clients_read_and_write_artifacts_through_mlflow_not_the_bucket():
    """Unset, MLflow's client takes the presigned bucket URLs a server with S3 artifacts offers; set, it keeps to
    the proxied artifact API (the effect: tests/integration/test_backup_s3.py, against a real server)."""
    import pipelines.cli_app  # noqa: F401 - sets the clients' defaults

    assert os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "false"
    assert os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "false"


@pytest.mark.parametrize("backups", ["s3://team-artifacts/mlflow/backups", "s3://team-artifacts/mlflow"])
def test_backups_inside_the_artifacts_prefix_are_a_config_error_naming_both_keys(tmp_path, backups):
    with pytest.raises(ConfigError, match="platform.backup_destination .* overlap") as error:
        _config_with(tmp_path, artifacts_destination="s3://team-artifacts/mlflow", backup_destination=backups)
    assert "platform.artifacts_destination" in str(error.value)
    _config_with(tmp_path, artifacts_destination="s3://team-artifacts/mlflow",
                 backup_destination="s3://team-artifacts/mlflow-backups")  # a sibling prefix is apart


# ---- one client and one error translator, for data sources, artifacts and backups alike ----

S3_ENV = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_IGNORE_TLS")


@pytest.fixture
def s3_env(monkeypatch):
    for name in S3_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return monkeypatch


def test_mlflows_endpoint_wins_and_a_wrong_endpoint_fails_fast(s3_env):
    s3_env.setenv("AWS_ENDPOINT_URL", "http://aws-endpoint.internal:9000")
    assert object_store.client().meta.endpoint_url == "http://aws-endpoint.internal:9000"
    s3_env.setenv("MLFLOW_S3_ENDPOINT_URL", "http://mlflow-endpoint.internal:9000")
    s3 = object_store.client()
    assert s3.meta.endpoint_url == "http://mlflow-endpoint.internal:9000"
    assert s3.meta.config.connect_timeout <= 5 and s3.meta.config.retries["total_max_attempts"] <= 2


@pytest.mark.parametrize("variable", ["MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"])
def test_a_data_source_goes_to_the_same_endpoint_as_the_artifacts(s3_env, variable):
    """An endpoint that refuses connections: the error names it and the variable it came from, never its login."""
    port = free_port()
    s3_env.setenv(variable, f"http://AKIAUSERINFO:userinfo-secret@127.0.0.1:{port}")
    config = DataConfig(target="y", numeric_features=["x"], source="s3://lake/loans.parquet")
    with pytest.raises(DataError, match=rf"data.source s3://lake/loans.parquet: cannot reach the S3 endpoint "
                                        rf"http://127.0.0.1:{port} \({variable}\)") as error:
        read_source(config)
    assert "userinfo-secret" not in str(error.value) and "AKIAUSERINFO" not in str(error.value)
    with pytest.raises(ObjectStoreError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{port}") as error:
        object_store.check_access(S3Location("backups"), "--dir")
    assert "userinfo-secret" not in str(error.value) and "AKIAUSERINFO" not in str(error.value)


def client_error(code: str, operation: str = "ListObjectsV2") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "please slow down"}}, operation)


def upload_failed(cause: ClientError) -> S3UploadFailedError:
    """As boto3's upload_file raises it: inside the handler of the ClientError, which becomes its context."""
    try:
        raise cause
    except ClientError as exc:
        try:
            raise S3UploadFailedError(f"Failed to upload a to lake/x: {exc}")
        except S3UploadFailedError as wrapped:
            return wrapped


@pytest.mark.parametrize(("failure", "expected"), [
    (client_error("SignatureDoesNotMatch"),
     "the S3 endpoint http://s3.internal:9000 .AWS_ENDPOINT_URL. refused the credentials .SignatureDoesNotMatch.*"
     "AWS_SECRET_ACCESS_KEY"),
    (client_error("InvalidAccessKeyId"), "the S3 endpoint .* refused the credentials"),
    (client_error("403"), "the S3 endpoint .* refused the credentials"),
    (client_error("AccessDenied"), "http://s3.internal:9000 .AWS_ENDPOINT_URL. denied access.*rights"),
    (client_error("NoSuchBucket"), "the bucket lake does not exist at http://s3.internal:9000"),
    (client_error("404", "HeadBucket"), "the bucket lake does not exist"),
    (client_error("NoSuchKey", "GetObject"), "no such object at http://s3.internal:9000"),
    (client_error("PreconditionFailed", "GetObject"), "an object changed while it was being read"),
    (client_error("SlowDown"),
     "S3 answered SlowDown to ListObjectsV2 at http://s3.internal:9000 .AWS_ENDPOINT_URL.: please slow down"),
    (NoCredentialsError(), "no S3 credentials; set AWS_ACCESS_KEY_ID"),
    (upload_failed(client_error("AccessDenied", "PutObject")), "http://s3.internal:9000 .AWS_ENDPOINT_URL. denied"),
    (S3UploadFailedError("Failed to upload a to lake/x: timed out"), "could not upload: Failed to upload a to lake/x"),
    (ParamValidationError(report="Invalid bucket name"), "ParamValidationError: .*Invalid bucket name"),
    (ReadTimeoutError(endpoint_url="http://s3.internal:9000"), "cannot reach the S3 endpoint http://s3.internal:9000"),
])
def test_an_s3_failure_reads_as_what_to_fix(s3_env, failure, expected):
    s3_env.setenv("AWS_ENDPOINT_URL", "http://key:secret@s3.internal:9000")
    with pytest.raises(ObjectStoreError, match=f"--dir s3://lake/x: {expected}") as error, \
            object_store.explained(S3Location("lake", "x"), "--dir"):
        raise failure
    assert "secret" not in str(error.value) and error.value.__cause__ is None
