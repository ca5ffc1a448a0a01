"""MLflow's artifacts in S3 on the docker target: the stack's own SeaweedFS (`objectStore: seaweedfs`) or any
endpoint (`artifactDestination` + `s3EndpointUrl`), the keys as secrets that reach containers only as files."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime import rpc

from tests.infra.program import CONTAINER, IMAGE, VOLUME, run_program
from tests.infra.test_stack_program import env_of, mounts_of

S3_KEYS = {"s3AccessKeyId": "platform-key-4d2a", "s3SecretAccessKey": "platform-secret-9e1b%c7"}
SEAWEEDFS = {"objectStore": "seaweedfs"}
EXTERNAL = {"artifactDestination": "s3://team-artifacts/mlflow", "s3EndpointUrl": "https://s3.example.com:9000"}


@pytest.fixture(scope="module")
def seaweedfs_stack():
    return run_program(SEAWEEDFS, S3_KEYS)


def uploads_of(container) -> dict[str, dict]:
    return {upload["file"]: upload for upload in container.plain.get("uploads", [])}


def test_the_default_stack_keeps_artifacts_on_mlflows_volume_and_runs_no_object_store():
    stack = run_program()
    with pytest.raises(KeyError):
        stack.container("seaweedfs")
    mlflow = stack.container("mlflow")
    command = mlflow.plain["command"]
    assert command[command.index("--artifacts-destination") + 1] == "/mlflow/artifacts"
    assert "/mlflow/artifacts" in mounts_of(mlflow)
    assert not {"MLFLOW_S3_ENDPOINT_URL", "AWS_SHARED_CREDENTIALS_FILE"} & set(env_of(mlflow))


def test_seaweedfs_runs_as_the_app_user_on_its_volume_health_checked_and_unpublished(seaweedfs_stack):
    store = seaweedfs_stack.container("seaweedfs")
    props = store.plain
    assert props["user"] == "10001:10001"
    assert props.get("ports", []) == []  # on the stack network only
    (network,) = props["networksAdvanced"]
    assert network["aliases"] == ["seaweedfs"]
    assert mounts_of(store)["/data"]["volumeName"] == "mlops-seaweedfs-data"
    assert "mlops-seaweedfs-data" in {v.plain["name"] for v in seaweedfs_stack.of_type(VOLUME)}
    check = props["healthcheck"]
    assert check["tests"][0] == "CMD" and "/healthz" in check["tests"][-1] and check["timeout"] == "5s"
    assert props["wait"] is True and props["restart"] == "unless-stopped" and props["memory"] == 512
    assert props["destroyGraceSeconds"] > 5  # the entrypoint's grace before it kills weed
    image = next(i.plain for i in seaweedfs_stack.of_type(IMAGE) if i.plain["imageName"] == props["image"])
    assert image["build"]["dockerfile"].endswith("services/seaweedfs/Dockerfile")
    assert env_of(store)["S3_BUCKET"] == "mlflow"


def test_seaweedfs_accepts_only_the_stacks_keys_uploaded_as_a_secret_file(seaweedfs_stack):
    store = seaweedfs_stack.container("seaweedfs")
    assert rpc.is_rpc_secret(store.inputs["uploads"])
    identities = uploads_of(store)[env_of(store)["S3_CONFIG_FILE"]]
    assert identities["permissions"] == "0600" and identities["owner"] == "10001"
    (identity,) = json.loads(identities["content"])["identities"]
    assert identity["credentials"] == [{"accessKey": S3_KEYS["s3AccessKeyId"],
                                        "secretKey": S3_KEYS["s3SecretAccessKey"]}]


def test_mlflow_stores_artifacts_in_the_bucket_and_waits_for_seaweedfs(seaweedfs_stack):
    mlflow, store = seaweedfs_stack.container("mlflow"), seaweedfs_stack.container("seaweedfs")
    command = mlflow.plain["command"]
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow/artifacts"
    assert "--serve-artifacts" in command
    assert "/mlflow/artifacts" not in mounts_of(mlflow)  # nothing of the artifacts on MLflow's volume
    assert "mlops-mlflow-artifacts" not in {v.plain["name"] for v in seaweedfs_stack.of_type(VOLUME)}
    env = env_of(mlflow)
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    credentials = uploads_of(mlflow)[env["AWS_SHARED_CREDENTIALS_FILE"]]
    assert credentials["permissions"] == "0600"
    # botocore reads this file raw: the '%' stays single.
    assert credentials["content"] == ("[default]\naws_access_key_id = platform-key-4d2a\n"
                                      "aws_secret_access_key = platform-secret-9e1b%c7\n")
    assert store.name in mlflow.depends_on


def test_the_s3_keys_appear_nowhere_but_in_secret_uploads(seaweedfs_stack):
    for resource in seaweedfs_stack.resources:
        visible = {key: value for key, value in resource.inputs.items() if not rpc.is_rpc_secret(value)}
        for key in S3_KEYS.values():
            assert key not in repr(visible), f"an S3 key in the plain inputs of {resource.name}"
    assert not any(key in repr(seaweedfs_stack.exports) for key in S3_KEYS.values())
    assert seaweedfs_stack.secret_exports == set()


def test_any_s3_endpoint_by_config_runs_no_seaweedfs():
    stack = run_program(EXTERNAL, S3_KEYS)
    assert [c for c in stack.of_type(CONTAINER) if "seaweedfs" in c.plain["name"]] == []
    mlflow = stack.container("mlflow")
    command = mlflow.plain["command"]
    assert command[command.index("--artifacts-destination") + 1] == "s3://team-artifacts/mlflow"
    assert env_of(mlflow)["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.example.com:9000"
    assert env_of(mlflow)["AWS_SHARED_CREDENTIALS_FILE"] in uploads_of(mlflow)


@pytest.mark.parametrize(
    ("config", "secrets", "message"),
    [
        (SEAWEEDFS, {}, "mlops-platform:s3AccessKeyId: is required when MLflow's artifacts are in S3"),
        (EXTERNAL, {"s3AccessKeyId": "k" * 8}, "mlops-platform:s3SecretAccessKey: is required"),
        ({"objectStore": "minio"}, {}, "mlops-platform:objectStore: must be one of none, seaweedfs"),
        ({**SEAWEEDFS, "s3EndpointUrl": "http://minio:9000"}, S3_KEYS,
         "mlops-platform:s3EndpointUrl: with objectStore seaweedfs"),
        ({"s3EndpointUrl": "http://minio:9000"}, S3_KEYS,
         "mlops-platform:s3EndpointUrl: is set but artifactDestination"),
        ({**SEAWEEDFS, "artifactDestination": "s3://Bad_Bucket/x"}, S3_KEYS, "mlops-platform:artifactDestination"),
        ({**SEAWEEDFS, "target": "kubernetes"}, S3_KEYS, "mlops-platform:objectStore: seaweedfs runs on the docker"),
    ],
)
def test_bad_object_store_config_fails_naming_the_key(config, secrets, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, secrets)
    assert message in str(raised.value)


def test_the_stack_harness_applies_every_input_of_the_object_store(seaweedfs_stack):
    from tests.stack.harness import unapplied_inputs

    assert unapplied_inputs(seaweedfs_stack) == []
