"""The Kubernetes manifests the Pulumi program declares for the kubernetes target, captured under mocks.

Each manifest is a resource's inputs as pulumi-kubernetes sends them to the API server (apiVersion,
kind, metadata, spec...), with secrets unwrapped and whole numbers as ints (Pulumi's wire format
carries every number as a float).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.infra.certificates import self_signed
from tests.infra.program import DeclaredStack, run_program

Manifest = dict[str, Any]
# What the docs claim: every minor version here is validated (tests/kubernetes/test_schemas.py).
KUBERNETES_VERSIONS = ("1.30", "1.31", "1.32", "1.33")
ADMIN_PASSWORD = "admin-pw-5f1c7e"
# The target requires access control and MLflow's one Flask secret, so every shape has them.
AUTH_SECRETS = {
    "adminPassword": ADMIN_PASSWORD, "servingToken": "srv-tok-51c0-9a2e7b", "monitoringPassword": "monitoring-pw-8d2e",
    "monitoringUiSecret": "ui-sec-77aa-4c1f03d", "smokeToken": "smk-tok-3b9f-6e8d21",
    "mlflowSecretKey": "flask-key-0f3b-91c2d7e4",
}
# The two shapes of the target: the small default (one claim, SQLite) and everything on (external
# stores, a release image, a client namespace, TLS at the edge).
SMALL = {"target": "kubernetes", "imageTag": "0.1.0", "authEnabled": "true"}
FULL = {
    **SMALL, "trackingBackend": "postgres", "artifactDestination": "s3://mlops-artifacts/prod",
    "s3EndpointUrl": "http://minio.storage:9000", "clientNamespace": "ingress-nginx",
    "imageRegistry": "registry.example.com/ml", "servingImage": "registry.example.com/ml/mlops-serving:v3-abc123",
    "modelVersion": "3", "servingReplicas": "3", "sharedStorageClass": "nfs-client", "ingressDomain": "ml.example.com",
    "driftAlertKind": "github", "driftAlertEgressCidr": "140.82.112.0/20",
}
FULL_SECRETS = {
    "postgresUri": "postgresql://mlflow:pg%40pass@db.example.com:6432/mlflow?sslmode=require",
    "s3AccessKeyId": "AKIAEXAMPLE", "s3SecretAccessKey": "s3-secret-9b2d", **AUTH_SECRETS,
    **self_signed("*.ml.example.com").as_secrets(),  # TLS at the edge: the Ingress
    "driftAlertWebhookUrl": "https://api.github.com/repos/acme/models/dispatches", "driftAlertToken": "ghp-tok-7d1e",
}

# Several models (issue 21): everything on, and a second model beside the default with its own release and memory.
SECOND_MODEL = "bike-rentals"
TWO_MODELS = {
    **FULL, "models": json.dumps([{"name": "loan-default"}, {"name": SECOND_MODEL, "servingMemoryMb": 768}]),
    f"servingImage.{SECOND_MODEL}": "registry.example.com/ml/mlops-serving:v5-def456",
    f"modelVersion.{SECOND_MODEL}": "5",
}


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ints(item) for item in value]
    return value


def manifests(declared: DeclaredStack) -> list[Manifest]:
    return [_ints(resource.plain) for resource in declared.resources if resource.type.startswith("kubernetes:")]


def declare(config: Mapping[str, str], secrets: Mapping[str, str] | None = None) -> DeclaredStack:
    """The program run with this config and the auth secrets (plus `secrets`)."""
    return run_program(config, {**AUTH_SECRETS, **(secrets or {})})


def of_kind(found: list[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in found if manifest["kind"] == kind]


def named(found: list[Manifest], kind: str, name: str) -> Manifest:
    (manifest,) = [m for m in of_kind(found, kind) if m["metadata"]["name"] == name]
    return manifest


def pod_specs(found: list[Manifest]) -> dict[str, Manifest]:
    """Every pod template's spec, by `<Kind>/<name>`."""
    specs = {}
    for manifest in found:
        if manifest["kind"] == "Deployment":
            specs[f"Deployment/{manifest['metadata']['name']}"] = manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "CronJob":
            specs[f"CronJob/{manifest['metadata']['name']}"] = (
                manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        elif manifest["kind"] == "Job":
            specs[f"Job/{manifest['metadata']['name']}"] = manifest["spec"]["template"]["spec"]
    return specs
