"""Where objects live (`s3://bucket/prefix`), as the config and the backup CLI take it; no server needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pipelines.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from pipelines.object_store import ObjectStoreError, S3Location, is_s3_url, local_path_for


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
