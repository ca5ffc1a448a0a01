"""Where MLflow keeps its artifacts, for both targets: its volume, the stack's own SeaweedFS, or any S3 endpoint.

    objectStore: none | seaweedfs    seaweedfs: a container on the stack network (docker target only)
    artifactDestination: s3://bucket/prefix   (seaweedfs: default s3://mlflow/artifacts; none: "" = the volume)
    s3EndpointUrl: http(s)://host[:port]      (seaweedfs: its own; none: "" is AWS S3)
    s3AccessKeyId, s3SecretAccessKey          secrets, required whenever artifacts are in S3; with seaweedfs
                                              they are also the only identity its S3 API accepts
infra/config.py calls `read_artifact_store`; docs/architecture.md explains the keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pulumi
from config_reader import ConfigReader

ObjectStore = Literal["none", "seaweedfs"]
OBJECT_STORES: tuple[ObjectStore, ...] = ("none", "seaweedfs")
ARTIFACT_KEYS = frozenset({"objectStore", "artifactDestination", "s3EndpointUrl", "s3AccessKeyId",
                           "s3SecretAccessKey"})
SEAWEEDFS_ALIAS, SEAWEEDFS_S3_PORT = "seaweedfs", 8333
SEAWEEDFS_ENDPOINT = f"http://{SEAWEEDFS_ALIAS}:{SEAWEEDFS_S3_PORT}"
SEAWEEDFS_DESTINATION = "s3://mlflow/artifacts"
# Bucket names as S3 (and SeaweedFS) accept them: DNS-valid, 3-63 characters.
_S3_URI_OR_EMPTY = re.compile(r"^$|^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")
_HTTP_URL_OR_EMPTY = re.compile(r"^$|^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")


@dataclass(frozen=True)
class ArtifactStore:
    """MLflow's artifacts in S3: `--artifacts-destination`, the endpoint (empty: AWS) and the keys (secrets)."""

    destination: str
    endpoint_url: str
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    seaweedfs: bool  # the stack runs the store itself (docker target)

    @property
    def bucket(self) -> str:
        return self.destination.removeprefix("s3://").split("/", 1)[0]


def read_artifact_store(read: ConfigReader, target: str) -> ArtifactStore | None:
    """None keeps the artifacts on MLflow's volume (the claim on kubernetes)."""
    store = read.choice("objectStore", "none", OBJECT_STORES)
    seaweedfs = store == "seaweedfs"
    if seaweedfs and target != "docker":
        raise read.fail("objectStore", "seaweedfs runs on the docker target only; on kubernetes set "
                                       "artifactDestination and s3EndpointUrl to the cluster's S3-compatible store")
    destination = read.string("artifactDestination", SEAWEEDFS_DESTINATION if seaweedfs else "", _S3_URI_OR_EMPTY)
    endpoint = read.string("s3EndpointUrl", "", _HTTP_URL_OR_EMPTY).rstrip("/")
    if seaweedfs and endpoint not in ("", SEAWEEDFS_ENDPOINT):
        raise read.fail("s3EndpointUrl", f"with objectStore seaweedfs MLflow reaches the stack's own store at "
                                         f"{SEAWEEDFS_ENDPOINT}: leave it unset, or set objectStore none to use "
                                         f"{endpoint}")
    if not destination:
        if endpoint:
            raise read.fail("s3EndpointUrl", "is set but artifactDestination is not: set artifactDestination "
                                             "s3://bucket/prefix, or unset s3EndpointUrl")
        return None
    why = "when MLflow's artifacts are in S3 (objectStore seaweedfs or artifactDestination set)"
    return ArtifactStore(
        destination=destination.rstrip("/"),
        endpoint_url=SEAWEEDFS_ENDPOINT if seaweedfs else endpoint,
        access_key_id=read.secret("s3AccessKeyId", why),
        secret_access_key=read.secret("s3SecretAccessKey", why, 8),
        seaweedfs=seaweedfs,
    )
