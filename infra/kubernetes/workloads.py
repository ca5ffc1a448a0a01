"""Building blocks every kubernetes workload shares, so each pod gets the same safe defaults.

Each pod runs as the images' non-root user `APP_UID`, with a read-only root filesystem (an emptyDir
where the process must write), no service account token, no privilege escalation, no capabilities,
the runtime's seccomp profile, requests and limits, and the stack's labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from config import KubernetesConfig, StackConfig

from services.contract import MODEL_LABEL, STACK_LABEL, image_ref

APP_UID = 10001  # the `app` user of every services/*/Dockerfile
HTTP_PORT_NAME = "http"
SECRET_FILE_MODE = 0o440  # owner root, group fsGroup (APP_UID): readable by the app user only
Manifest = dict[str, Any]


def kube(config: StackConfig) -> KubernetesConfig:
    assert config.kubernetes is not None  # load_stack_config sets it for the kubernetes target
    return config.kubernetes


def selector_labels(config: StackConfig, component: str) -> dict[str, str]:
    """What a Service, PDB or NetworkPolicy selects a component's pods by."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": config.name_prefix}


def labels(config: StackConfig, component: str, model: str | None = None) -> dict[str, str]:
    """The stack's labels; `model` adds the model a serving workload serves (as on the docker target's containers)."""
    return {**selector_labels(config, component), "app.kubernetes.io/part-of": "mlops-platform",
            "app.kubernetes.io/managed-by": "pulumi", STACK_LABEL: config.name_prefix,
            **({MODEL_LABEL: model} if model else {})}


def metadata(config: StackConfig, name: str, component: str, *, model: str | None = None, **extra: Any) -> Manifest:
    return {"name": name, "namespace": kube(config).namespace, "labels": labels(config, component, model), **extra}


def image(config: StackConfig, repository: str) -> str:
    """A platform image as `make k8s-images` pushes it: `[<imageRegistry>/]<prefix>-<repository>:<imageTag>`."""
    local = image_ref(config.name_prefix, repository, config.image_tag)
    registry = kube(config).image_registry
    return f"{registry}/{local}" if registry else local


def resources(memory_mb: int, cpu_request: str, cpu_limit: str) -> Manifest:
    # Memory request = limit: the scheduler reserves what the container may use, so no node overcommits it.
    memory = f"{memory_mb}Mi"
    return {"requests": {"cpu": cpu_request, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory}}


def http_get(path: str, *, period_s: int, failures: int, host: str | None = None) -> Manifest:
    """An HTTP probe on the container's named port; `host` sets the Host header the server accepts."""
    action: Manifest = {"path": path, "port": HTTP_PORT_NAME}
    if host:
        action["httpHeaders"] = [{"name": "Host", "value": host}]
    return {"httpGet": action, "periodSeconds": period_s, "timeoutSeconds": 4, "failureThreshold": failures}


def probes(path: str, *, ready_path: str | None = None, startup_s: int = 300, host: str | None = None) -> Manifest:
    """Startup (up to `startup_s` to come up), then readiness and liveness every 10-15 s."""
    return {
        "startupProbe": http_get(path, period_s=5, failures=startup_s // 5, host=host),
        "readinessProbe": http_get(ready_path or path, period_s=10, failures=3, host=host),
        "livenessProbe": http_get(path, period_s=15, failures=4, host=host),
    }


def container(
    name: str,
    image_name: pulumi.Input[str],
    *,
    resources_: Manifest,
    port: int | None = None,
    command: Sequence[str] | None = None,
    args: Sequence[pulumi.Input[str]] | None = None,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[Manifest] = (),
    health: Manifest | None = None,
) -> Manifest:
    spec: Manifest = {
        "name": name,
        "image": image_name,
        # Tags are pinned (config refuses moving ones), so a node's cached copy is the same image.
        "imagePullPolicy": "IfNotPresent",
        "resources": resources_,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": APP_UID,
            "runAsGroup": APP_UID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [mount("tmp", "/tmp"), *mounts],
        **(health or {}),
    }
    if port is not None:
        spec["ports"] = [{"name": HTTP_PORT_NAME, "containerPort": port, "protocol": "TCP"}]
    if command is not None:
        spec["command"] = list(command)
    if args is not None:
        spec["args"] = list(args)
    if env:
        spec["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return spec


def mount(volume: str, path: str, *, read_only: bool = False) -> Manifest:
    return {"name": volume, "mountPath": path, "readOnly": read_only}


def pod_spec(containers: Sequence[Manifest], volumes: Sequence[Manifest] = (), **extra: Any) -> Manifest:
    return {
        # None of the platform's processes calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": list(containers),
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *volumes],
        **extra,
    }


def pod_template(config: StackConfig, component: str, spec: Manifest, *, model: str | None = None) -> Manifest:
    return {"metadata": {"labels": labels(config, component, model)}, "spec": spec}


def secret(
    resource_name: str, config: StackConfig, name: str, component: str, files: Mapping[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """Files for one workload; pods mount them read-only (`secret_volume`), never as env."""
    return k8s.core.v1.Secret(resource_name, metadata=metadata(config, name, component), type="Opaque",
                              string_data=dict(files), opts=opts)


def secret_volume(volume: str, secret_name: str) -> Manifest:
    return {"name": volume, "secret": {"secretName": secret_name, "defaultMode": SECRET_FILE_MODE}}


def claim_volume(volume: str, claim_name: str, *, read_only: bool = False) -> Manifest:
    return {"name": volume, "persistentVolumeClaim": {"claimName": claim_name, "readOnly": read_only}}


def volume_claim(
    resource_name: str, config: StackConfig, name: str, component: str, *, size_gi: int, shared: bool,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.PersistentVolumeClaim:
    """A claim that outlives its pods; `shared` ones are mounted by pods on any node (ReadWriteMany)."""
    spec: Manifest = {"accessModes": ["ReadWriteMany" if shared else "ReadWriteOnce"],
                      "resources": {"requests": {"storage": f"{size_gi}Gi"}}}
    if shared and kube(config).shared_storage_class:
        spec["storageClassName"] = kube(config).shared_storage_class
    return k8s.core.v1.PersistentVolumeClaim(resource_name, metadata=metadata(config, name, component), spec=spec,
                                             opts=opts)


def service(
    resource_name: str, config: StackConfig, name: str, component: str, port: int, opts: pulumi.ResourceOptions,
    *, model: str | None = None,
) -> k8s.core.v1.Service:
    """A ClusterIP Service: in-namespace clients use `http://<name>:<port>`."""
    return k8s.core.v1.Service(
        resource_name,
        metadata=metadata(config, name, component, model=model),
        spec={"type": "ClusterIP", "selector": selector_labels(config, component),
              "ports": [{"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}]},
        opts=opts,
    )


def public_host(config: StackConfig, service_name: str) -> str | None:
    """The name a Service has at the edge (infra/kubernetes/edge.py), or None without an Ingress."""
    domain = kube(config).ingress_domain
    return f"{service_name}.{domain}" if domain else None


def cluster_url(config: StackConfig, service_name: str, port: int) -> str:
    return f"http://{service_name}.{kube(config).namespace}.svc.cluster.local:{port}"
