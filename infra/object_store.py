"""SeaweedFS, the stack's own S3-compatible store for MLflow's artifacts (`objectStore: seaweedfs`).

One `weed server` container on the platform network only (no published port), reachable as
http://seaweedfs:8333; its data on a volume; the one S3 identity it accepts (the stack's s3AccessKeyId and
s3SecretAccessKey) uploaded as a secret file. It is healthy once the bucket of artifactDestination exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
from config import ArtifactStore, StackConfig
from config_artifacts import SEAWEEDFS_ALIAS, SEAWEEDFS_S3_PORT
from containers import SECRETS_DIR, child_of, healthcheck, mount, secret_file, service_container, service_image, volume

DATA_DIR = "/data"
IDENTITIES_FILE = f"{SECRETS_DIR}/s3-identities.json"
READY_FILE = "/tmp/seaweedfs-ready"  # services/seaweedfs/entrypoint.sh writes it once the bucket exists
# The one identity of the platform: MLflow and the backups read and write the artifacts with it.
ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]


@dataclass(frozen=True)
class ObjectStoreArgs:
    config: StackConfig
    store: ArtifactStore
    network: docker.Network


class ObjectStore(pulumi.ComponentResource):
    """SeaweedFS's S3 API, reachable on the network as `seaweedfs`."""

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:index:ObjectStore", name, None, opts)
        config, store = args.config, args.store
        data = volume(f"{name}-data", "seaweedfs-data", config, child_of(self))
        image = service_image(f"{name}-image", "seaweedfs", config, child_of(self))
        probe = (f"import os, urllib.request; assert os.path.exists('{READY_FILE}'); "
                 f"urllib.request.urlopen('http://127.0.0.1:{SEAWEEDFS_S3_PORT}/healthz', timeout=4)")
        self.container = service_container(
            f"{name}-server", config,
            service=SEAWEEDFS_ALIAS,
            image=image.repo_digest,
            network=args.network,
            memory_mb=config.memory.seaweedfs,
            health=healthcheck(["CMD", "python", "-c", probe], interval="5s"),
            envs=[f"SEAWEEDFS_DIR={DATA_DIR}", f"S3_PORT={SEAWEEDFS_S3_PORT}", f"S3_BUCKET={store.bucket}",
                  f"S3_CONFIG_FILE={IDENTITIES_FILE}", f"READY_FILE={READY_FILE}"],
            volumes=[mount(data, DATA_DIR)],
            uploads=[secret_file(IDENTITIES_FILE, pulumi.Output.all(store.access_key_id, store.secret_access_key)
                                 .apply(lambda keys: _identities(*keys)))],
            # The entrypoint stops weed within 5 s of SIGTERM; past that, a stop would kill it mid-write.
            stop_grace_seconds=15,
            opts=child_of(self),
        )
        self.register_outputs({})


def _identities(access_key: str, secret_key: str) -> str:
    return json.dumps({"identities": [{"name": "platform", "actions": ACTIONS,
                                       "credentials": [{"accessKey": access_key, "secretKey": secret_key}]}]})
