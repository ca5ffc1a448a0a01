"""Run the pods the kubernetes manifests declare on a real Docker daemon, and ask their declared probes.

Test code standing in for a kubelet, which cannot run here: each pod's container spec becomes one
container, keeping what decides whether the process starts and serves -- image, command (entrypoint)
and args (command), env, user and group (runAsUser/runAsGroup, fsGroup as a supplementary group),
read-only root filesystem, dropped capabilities, no privilege escalation, memory and CPU limits -- and
the volumes as a kubelet lays them out: emptyDir as a writable tmpfs, a PersistentVolumeClaim as a
directory owned root:fsGroup with setgid (subPath as a subdirectory), a Secret as a read-only
directory of files owned root:fsGroup with the volume's defaultMode. Pods share one network where each
Service name is an alias of the pods its selector matches, as cluster DNS would resolve it.
`MAPPED_FIELDS` lists every pod and container field this applies; anything else stops `start()`.
Not modelled: scheduling, image pulls, Service load balancing, NetworkPolicies, restarts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
from docker.models.containers import Container
from docker.types import Mount

from tests.kubernetes.manifests import Manifest, of_kind

MAPPED_FIELDS = {
    "pod": {"automountServiceAccountToken", "enableServiceLinks", "securityContext", "containers", "volumes",
            "restartPolicy", "topologySpreadConstraints", "terminationGracePeriodSeconds"},
    "container": {"name", "image", "imagePullPolicy", "command", "args", "env", "ports", "resources",
                  "securityContext", "volumeMounts", "startupProbe", "readinessProbe", "livenessProbe"},
}
_CPU_UNITS = {"m": 10**6, "": 10**9}
_MEMORY_UNITS = {"Mi": 2**20, "Gi": 2**30}


class PodError(RuntimeError):
    """A pod could not be started as declared, or a probe never answered; the message says which."""


@dataclass
class RunningPod:
    name: str
    container: Container
    spec: Manifest  # the container's spec
    ports: dict[str, int] = field(default_factory=dict)  # named port -> published loopback port

    def logs(self) -> str:
        return self.container.logs(tail=40).decode(errors="replace")


def _quantity(value: str, units: dict[str, int]) -> int:
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if suffix and value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(float(value) * units[""])


def unmapped_fields(pod: Manifest) -> list[str]:
    extra = [f"pod.{key}" for key in pod if key not in MAPPED_FIELDS["pod"]]
    for spec in pod["containers"]:
        extra += [f"{spec['name']}.{key}" for key in spec if key not in MAPPED_FIELDS["container"]]
    return extra


class PodsOnDocker:
    """The pods of one set of manifests on a Docker daemon; `down()` removes every part of them."""

    def __init__(self, client: docker.DockerClient, found: list[Manifest], prefix: str) -> None:
        self.client = client
        self.manifests = found
        self.prefix = prefix
        self.network = client.networks.create(f"{prefix}-pods", driver="bridge")
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{prefix}-volumes-"))
        self.pods: list[RunningPod] = []

    def start(self, kind: str, name: str) -> RunningPod:
        """Start the (first) container of a Deployment's or CronJob's pod template."""
        (owner,) = [m for m in of_kind(self.manifests, kind) if m["metadata"]["name"] == name]
        spec_ = owner["spec"]
        template = spec_["template"] if kind == "Deployment" else spec_["jobTemplate"]["spec"]["template"]
        pod = template["spec"]
        if extra := unmapped_fields(pod):
            raise PodError(f"{kind}/{name}: the harness does not apply {', '.join(extra)}")
        spec = pod["containers"][0]
        security = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
        fs_group = pod.get("securityContext", {}).get("fsGroup")
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        mounts, tmpfs = [], {}
        for volume_mount in spec.get("volumeMounts", []):
            volume = volumes[volume_mount["name"]]
            if "emptyDir" in volume:
                tmpfs[volume_mount["mountPath"]] = "rw,exec,mode=0777"
                continue
            source = self._volume_dir(volume, fs_group) / volume_mount.get("subPath", "")
            if "subPath" in volume_mount:
                self._own(source, fs_group)
            read_only = volume_mount.get("readOnly", False) or "secret" in volume or volume.get(
                "persistentVolumeClaim", {}).get("readOnly", False)
            mounts.append(Mount(volume_mount["mountPath"], str(source), type="bind", read_only=read_only))
        ports = {f"{port['containerPort']}/tcp": ("127.0.0.1", None) for port in spec.get("ports", [])}
        aliases = [service["metadata"]["name"] for service in of_kind(self.manifests, "Service")
                   if service["spec"]["selector"].items() <= template["metadata"]["labels"].items()]
        limits = spec.get("resources", {}).get("limits", {})
        container = self.client.containers.create(
            spec["image"],
            name=f"{self.prefix}-{name}",
            entrypoint=spec.get("command"),
            command=spec.get("args"),
            environment={item["name"]: item["value"] for item in spec.get("env", [])},
            user=f"{security['runAsUser']}:{security['runAsGroup']}",
            group_add=[str(fs_group)] if fs_group is not None else None,
            read_only=security.get("readOnlyRootFilesystem", False),
            cap_drop=security.get("capabilities", {}).get("drop"),
            security_opt=["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else None,
            mem_limit=_quantity(limits["memory"], _MEMORY_UNITS) if "memory" in limits else None,
            nano_cpus=_quantity(limits["cpu"], _CPU_UNITS) if "cpu" in limits else None,
            mounts=mounts,
            tmpfs=tmpfs,
            ports=ports,
            network=self.network.name,
            networking_config={self.network.name: self.client.api.create_endpoint_config(aliases=aliases)},
            labels={"mlops-platform.test": self.prefix},
        )
        container.start()
        container.reload()
        published = {f"{port['containerPort']}/tcp": port["name"] for port in spec.get("ports", [])}
        running = RunningPod(name, container, spec, {
            published[key]: int(bindings[0]["HostPort"])
            for key, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items() if bindings})
        self.pods.append(running)
        return running

    def _volume_dir(self, volume: Manifest, fs_group: int | None) -> Path:
        if "persistentVolumeClaim" in volume:
            path = self.scratch / "claims" / volume["persistentVolumeClaim"]["claimName"]
            if not path.exists():
                self._own(path, fs_group)
            return path
        if "secret" in volume:
            return self._secret_dir(volume["secret"], fs_group)
        raise PodError(f"volume {volume['name']}: the harness applies emptyDir, persistentVolumeClaim and secret")

    def _own(self, path: Path, fs_group: int | None) -> None:
        """A kubelet applies fsGroup to a volume: group-owned, group-writable, new files inherit the group."""
        path.mkdir(parents=True, exist_ok=True)
        if fs_group is not None:
            os.chown(path, 0, fs_group)
            path.chmod(0o2775)

    def _secret_dir(self, source: Manifest, fs_group: int | None) -> Path:
        (stored,) = [s for s in of_kind(self.manifests, "Secret") if s["metadata"]["name"] == source["secretName"]]
        path = self.scratch / "secrets" / source["secretName"]
        if not path.exists():
            path.mkdir(parents=True)
            path.chmod(0o755)
            for key, value in stored.get("stringData", {}).items():
                (path / key).write_text(value)
                os.chown(path / key, 0, fs_group if fs_group is not None else 0)
                (path / key).chmod(source.get("defaultMode", 0o644))
        return path

    def wait_exit(self, pod: RunningPod, timeout_s: float) -> int:
        return int(pod.container.wait(timeout=timeout_s)["StatusCode"])

    def answer(self, pod: RunningPod, probe: str) -> int:
        """One try of the container's declared probe: the HTTP status, or 0 when it could not connect."""
        declared = pod.spec[probe]["httpGet"]
        headers = {header["name"]: header["value"] for header in declared.get("httpHeaders", [])}
        port = declared["port"] if isinstance(declared["port"], int) else pod.ports[declared["port"]]
        try:
            return httpx.get(f"http://127.0.0.1:{port}{declared['path']}", headers=headers,
                             timeout=pod.spec[probe].get("timeoutSeconds", 1)).status_code
        except httpx.HTTPError:
            return 0

    def wait_started(self, pod: RunningPod) -> int:
        """Ask the startup probe until it succeeds (200-399) within its declared budget; its last answer."""
        probe = pod.spec["startupProbe"]
        deadline = time.monotonic() + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
        while True:
            status = self.answer(pod, "startupProbe")
            if 200 <= status < 400:
                return status
            pod.container.reload()
            if pod.container.status == "exited" or time.monotonic() > deadline:
                raise PodError(f"{pod.name}: startup probe never succeeded (last answer {status}, container "
                               f"{pod.container.status}); last log lines:\n{pod.logs()}")
            time.sleep(1)

    def down(self) -> None:
        missing = contextlib.suppress(docker.errors.NotFound)
        for pod in self.pods:
            with missing:
                pod.container.remove(force=True)
        with missing:
            self.network.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)
