"""MLflow's schema migration on Kubernetes: a Job that runs once, before the MLflow Deployment rolls out.

With two MLflow replicas rolled one by one (postgres and an S3 artifact store), a new pod that migrated
the schema at its start would do it under the old pods still serving. Instead this Job backs the store up
(pg_dump onto a claim of its own) and migrates it (services/tracking/schema.py); the Deployment depends on
the Job, so its pods roll out only after the Job succeeded, and they only check that the schema is current
(`SCHEMA_MIGRATION=job`). A Job's pod template is immutable: a new tracking image replaces the Job, and the
replacement runs before the Deployment is updated. (The single-replica SQLite setup needs none of this: it
is replaced with `Recreate`, so its one pod migrates with no old one running.)
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig

from kubernetes.workloads import (
    Manifest,
    claim_volume,
    container,
    image,
    metadata,
    mount,
    pod_spec,
    pod_template,
    resources,
    volume_claim,
)

COMPONENT = NAME = "mlflow-migrate"  # its own pod labels: the MLflow Service and disruption budget skip it
BACKUP_DIR = "/mlflow/schema-backups"
MIGRATED_BY_JOB = {"SCHEMA_MIGRATION": "job"}  # the tracking entrypoint's switch: check, do not migrate


def migration_job(
    name: str, config: StackConfig, *, backend_uri: str, env: Mapping[str, str],
    volumes: list[Manifest], mounts: list[Manifest], opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """Back up and migrate the store at `backend_uri` once; `volumes`/`mounts`/`env` reach the database."""
    claim = volume_claim(f"{name}-schema-backups", config, "mlflow-schema-backups", COMPONENT, size_gi=20,
                         shared=False, opts=opts)
    migrate = container(
        "migrate", image(config, "tracking"),
        resources_=resources(config.memory.mlflow, "250m", "2"),
        command=["python", "/opt/tracking/schema.py", backend_uri, "--backup-dir", BACKUP_DIR],
        env=env,
        mounts=[*mounts, mount("schema-backups", BACKUP_DIR)],
    )
    spec = pod_spec([migrate], [*volumes, claim_volume("schema-backups", claim.metadata["name"])],
                    restartPolicy="Never")
    return k8s.batch.v1.Job(
        f"{name}-migration",
        metadata=metadata(config, NAME, COMPONENT),
        spec={
            # A migration that failed halfway is not retried blindly: the Job fails, the rollout stops, and
            # the backup it wrote first is there to restore.
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            "template": pod_template(config, COMPONENT, spec),
        },
        # Its fixed name: the old Job goes before its replacement is created.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
    )
