"""The stack with `objectStore: seaweedfs`: MLflow keeps its artifacts in the stack's own SeaweedFS bucket.

One end-to-end case through the product's own path (HarnessStack is the one seam, test_release_to_stack.py):
train -> release -> a second version -> backup -> restore, the artifacts in the bucket (listed inside the
SeaweedFS container, which publishes no port) and none on MLflow's volume. Releasing again and rolling back read
what the bucket holds the same way, through MLflow: test_release_to_stack.py has those on the default store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

import pipelines.cli_app  # noqa: F401 - the CLI's MLflow client defaults: artifacts through MLflow, not the bucket
from pipelines.backup import create_backup, restore_backup
from pipelines.backup_stack import StackStore
from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.registry import CHALLENGER, CHAMPION, aliases_of, connect
from pipelines.stack import StackTarget
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack
from tests.stack.test_release_to_stack import HarnessStack, release, serving_version, train_and_gate

pytestmark = pytest.mark.timeout(1500)
S3_KEYS = {"s3AccessKeyId": "stack-s3-key-5c1e", "s3SecretAccessKey": "stack-s3-secret-8a2f"}
LIST_BUCKET = """
import boto3, json, sys
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:8333", region_name="us-east-1",
                  aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2])
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix="artifacts/")
print(json.dumps([item["Key"] for page in pages for item in page.get("Contents", [])]))
"""


@pytest.fixture(scope="module")
def s3_platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, {"objectStore": "seaweedfs"},
                       {**S3_KEYS, "smokeToken": "s3-stack-smoke-token-71d0"}) as stack:
        yield stack


def bucket_keys(stack: DockerStack) -> list[str]:
    done = stack.container("seaweedfs").exec_run(["python", "-c", LIST_BUCKET, *S3_KEYS.values()])
    assert done.exit_code == 0, done.output.decode()
    return json.loads(done.output.decode())


def test_a_release_backup_and_restore_with_artifacts_in_the_bucket(s3_platform, tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["platform"]["state_dir"] = str(tmp_path / "state")
    raw["tracking"]["uri"] = s3_platform.declared.exports["mlflow_url"]
    raw["model"]["params"]["n_estimators"] = 40  # as test_release_to_stack.py
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "pipeline.yaml")
    target = StackTarget(config, HarnessStack(s3_platform), name="stack:s3")

    first = release(config, target)
    second = train_and_gate(config)
    assert serving_version(s3_platform) == first
    registry = connect(config)
    assert aliases_of(registry, config.model_name) == {CHAMPION: first, CHALLENGER: second}

    # The models' artifacts are objects in the bucket; MLflow's container holds none of them.
    keys = bucket_keys(s3_platform)
    for version in (first, second):
        run_id = registry.get_model_version(config.model_name, version).run_id
        assert any(run_id in key for key in keys), f"no object of run {run_id} in the bucket"
    mlflow = s3_platform.container("mlflow")
    assert mlflow.exec_run(["find", "/mlflow/artifacts", "-type", "f"]).output.decode().strip() == ""
    assert "/mlflow/artifacts" not in {m["Destination"] for m in mlflow.attrs["Mounts"]}

    store = StackStore(s3_platform.declared.config["namePrefix"], s3_platform.client)
    backup = create_backup(store, tmp_path / "backups")
    print(f"stack backup (artifacts in S3): {backup.archive_bytes / 2**20:.1f} MiB in {backup.seconds:.1f} s")
    archived = {path.removeprefix("artifacts/") for path in backup.manifest.files if path.startswith("artifacts/")}
    assert archived == {key.removeprefix("artifacts/") for key in keys}

    # After the backup: a run with an artifact of its own, and the aliases moved.
    later = registry.create_run(registry.create_experiment("after-the-backup")).info.run_id
    registry.log_text(later, "later", "notes/later.txt")
    registry.set_registered_model_alias(config.model_name, CHAMPION, second)
    assert any(later in key for key in bucket_keys(s3_platform))

    restored = restore_backup(store, backup.archive, force=True, safety_directory=tmp_path / "safety")
    print(f"stack restore (artifacts in S3, forced): {restored.seconds:.1f} s")
    assert sorted(bucket_keys(s3_platform)) == sorted(keys)  # the later run's object went with its run
    registry = connect(config)
    assert aliases_of(registry, config.model_name) == {CHAMPION: first, CHALLENGER: second}
    assert registry.get_experiment_by_name("after-the-backup") is None
    run_id = registry.get_model_version(config.model_name, first).run_id
    assert Path(registry.download_artifacts(run_id, "", str(tmp_path / "download"))).is_dir()
    assert serving_version(s3_platform) == first
    # The keys never left the secret files: not in the outputs, the containers' env or argv.
    for alias in ("mlflow", "seaweedfs"):
        container = s3_platform.container(alias)
        container.reload()
        visible = json.dumps(container.attrs["Config"]) + json.dumps(s3_platform.declared.exports, default=str)
        assert not any(key in visible for key in S3_KEYS.values()), alias
