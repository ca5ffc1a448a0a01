"""Apply the Docker resources the Pulumi program declares (captured under mocks) to a real daemon.

This is test code standing in for the Pulumi engine + Docker provider, which cannot be installed
here; users run `pulumi up`. The mapping stays small and keeps pulumi_docker's input names
(`APPLIED_INPUTS` lists each one), so a reader can check it line by line against the provider docs:
Image -> images.build with the classic builder, RemoteImage -> images.get/pull, Network ->
networks.create, Volume -> volumes.create, Container -> containers.create + put_archive (uploads) +
start + wait for health. Containers start in dependency waves, independent ones together.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import time
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import docker
from docker.models.containers import Container
from docker.types import LogConfig

from tests.infra.program import CONTAINER, IMAGE, NETWORK, REMOTE_IMAGE, VOLUME, Declared, DeclaredStack

# Every pulumi_docker input this harness applies, with the keys it reads of structured inputs (None:
# a plain value or a free-form map). Anything else the program declares stops `up()`, so the harness
# never silently drops what the program asks for.
_LABELS = {"label", "value"}
APPLIED_INPUTS: dict[str, dict[str, set[str] | None]] = {
    IMAGE: {
        "imageName": None, "skipPush": None, "buildOnPreview": None,  # nothing is pushed or previewed here
        "build": {"context", "dockerfile", "args", "network", "builderVersion"},
    },
    REMOTE_IMAGE: {"name": None, "keepLocally": None},
    NETWORK: {"name": None, "driver": None, "labels": _LABELS},
    VOLUME: {"name": None, "labels": _LABELS},
    CONTAINER: {
        "name": None, "image": None, "command": None, "envs": None, "user": None, "restart": None,
        "maxRetryCount": None, "memory": None, "logDriver": None, "logOpts": None, "mustRun": None, "wait": None,
        "destroyGraceSeconds": None,
        "waitTimeout": None, "labels": _LABELS,
        "ports": {"internal", "external", "ip", "protocol"},
        "volumes": {"volumeName", "containerPath", "readOnly"},
        "networksAdvanced": {"name", "aliases"},
        "healthcheck": {"tests", "interval", "timeout", "startPeriod", "retries"},
        "uploads": {"file", "content", "owner", "group", "permissions", "executable"},
    },
}


def unapplied_inputs(declared: DeclaredStack) -> list[str]:
    """The declared inputs this harness would not apply, as "<resource>.<input>[.<key>]"."""
    missing = []
    for resource in declared.resources:
        if not resource.type.startswith("docker:"):
            continue
        applied = APPLIED_INPUTS.get(resource.type)
        if applied is None:
            missing.append(f"{resource.name} ({resource.type})")
            continue
        for key, value in resource.plain.items():
            if key not in applied:
                missing.append(f"{resource.name}.{key}")
                continue
            items = value if isinstance(value, list) else [value]
            structured = [item for item in items if isinstance(item, dict)] if applied[key] else []
            missing += [f"{resource.name}.{key}.{sub}" for item in structured for sub in item
                        if sub not in applied[key]]  # type: ignore[operator]
        if resource.plain.get("build", {}).get("builderVersion", "BuilderV1") != "BuilderV1":
            missing.append(f"{resource.name}.build.builderVersion (only the classic builder is applied)")
    return sorted(set(missing))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_NANOS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


class StackError(RuntimeError):
    """A resource could not be created or did not become healthy; the message says which and why."""


def nanoseconds(duration: str) -> int:
    """Docker's health-check durations ("15s", "1m30s") in nanoseconds, as the Engine API wants them."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(number + unit for number, unit in parts) != duration:
        raise StackError(f"cannot read duration {duration!r}")
    return int(sum(float(number) * _NANOS[unit] for number, unit in parts))


def _labels(declared: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in declared or []}


def _upload_archive(uploads: Iterable[dict[str, Any]]) -> bytes:
    """One tar of the `uploads`, extracted at / with their owner, group and permissions."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for upload in uploads:
            payload = upload["content"].encode()
            info = tarfile.TarInfo(str(PurePosixPath(upload["file"]).relative_to("/")))
            info.size, info.mtime = len(payload), int(time.time())
            info.mode = int(upload.get("permissions") or ("0755" if upload.get("executable") else "0644"), 8)
            info.uid, info.gid = int(upload.get("owner") or 0), int(upload.get("group") or 0)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _dependency_waves(containers: list[Declared]) -> list[list[Declared]]:
    """Containers grouped as the engine would run them: each wave only after the containers it depends
    on; within a wave, all at once (Pulumi creates independent resources in parallel)."""
    names = {container.name for container in containers}
    waves: list[list[Declared]] = []
    done: set[str] = set()
    pending = list(containers)
    while pending:
        wave = [c for c in pending if not set(c.depends_on) & (names - done)]
        if not wave:
            raise StackError(f"dependency cycle among {[c.name for c in pending]}")
        waves.append(wave)
        done |= {c.name for c in wave}
        pending = [c for c in pending if c.name not in done]
    return waves


class DockerStack:
    """The declared stack on a real daemon: `up()` creates it, `down()` removes every part of it."""

    def __init__(self, client: docker.DockerClient, declared: DeclaredStack) -> None:
        self.client = client
        self.declared = declared
        self.containers: dict[str, Container] = {}  # by Pulumi resource name
        self.build_seconds: dict[str, float] = {}

    def up(self) -> None:
        if unapplied := unapplied_inputs(self.declared):
            raise StackError(f"the harness does not apply these declared inputs: {', '.join(unapplied)}")
        for image in self.declared.of_type(IMAGE):
            self._build(image.plain)
        for image in self.declared.of_type(REMOTE_IMAGE):
            self._pull(image.plain)
        for network in self.declared.of_type(NETWORK):
            props = network.plain
            self.client.networks.create(props["name"], driver=props.get("driver", "bridge"),
                                        labels=_labels(props.get("labels")))
        for volume in self.declared.of_type(VOLUME):
            self.client.volumes.create(volume.plain["name"], labels=_labels(volume.plain.get("labels")))
        for wave in _dependency_waves(self.declared.of_type(CONTAINER)):
            for declared in wave:
                self._launch(declared)
            for declared in wave:
                self._wait_if_asked(declared)

    def start(self, declared: Declared) -> Container:
        """Create, upload into, start and (with `wait`) health-gate one container, as the provider does."""
        container = self._launch(declared)
        self._wait_if_asked(declared)
        return container

    def _wait_if_asked(self, declared: Declared) -> None:
        if declared.plain.get("wait"):
            self.wait_healthy(declared.name, float(declared.plain.get("waitTimeout", 60)))

    def _launch(self, declared: Declared) -> Container:
        props = declared.plain
        networks = props.get("networksAdvanced") or []
        first_network = networks[0]["name"] if networks else None
        check = props.get("healthcheck")
        restart = {"Name": props.get("restart", "no")}
        if restart["Name"] == "on-failure":
            restart["MaximumRetryCount"] = int(props.get("maxRetryCount", 0))
        container = self.client.containers.create(
            props["image"],
            name=props["name"],
            command=props.get("command"),
            environment=props.get("envs"),
            user=props.get("user"),
            ports={f"{p['internal']:.0f}/{p.get('protocol', 'tcp')}": (p.get("ip", "0.0.0.0"), int(p["external"]))
                   for p in props.get("ports") or []},
            volumes={v["volumeName"]: {"bind": v["containerPath"], "mode": "ro" if v.get("readOnly") else "rw"}
                     for v in props.get("volumes") or []},
            network=first_network,
            networking_config={
                first_network: self.client.api.create_endpoint_config(aliases=networks[0].get("aliases"))
            } if first_network else None,
            healthcheck={
                "test": check["tests"], "interval": nanoseconds(check["interval"]),
                "timeout": nanoseconds(check["timeout"]), "start_period": nanoseconds(check["startPeriod"]),
                "retries": int(check["retries"]),
            } if check else None,
            restart_policy=restart,
            mem_limit=f"{props['memory']:.0f}m" if props.get("memory") else None,
            log_config=LogConfig(type=props.get("logDriver", "json-file"), config=props.get("logOpts") or {}),
            labels=_labels(props.get("labels")),
        )
        self.containers[declared.name] = container
        for extra in networks[1:]:
            self.client.networks.get(extra["name"]).connect(container, aliases=extra.get("aliases"))
        if props.get("uploads"):
            container.put_archive("/", _upload_archive(props["uploads"]))
        if props.get("mustRun", True):
            container.start()
        return container

    def wait_healthy(self, name: str, timeout_s: float) -> None:
        container = self.containers[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            health = state.get("Health", {}).get("Status")
            if health == "healthy":
                return
            # A restart means the process died: `pulumi up` would wait out the timeout, a test need not.
            if state["Status"] in ("exited", "dead", "restarting") or health == "unhealthy":
                break
            time.sleep(1)
        container.reload()
        logs = container.logs(tail=30).decode(errors="replace")
        raise StackError(
            f"container {container.name} is not healthy after {timeout_s:.0f}s "
            f"(status {container.attrs['State']['Status']}, health "
            f"{container.attrs['State'].get('Health', {}).get('Status')}); last log lines:\n{logs}"
        )

    def replace(self, name: str) -> Container:
        """Kill and remove one container, then create it again from the same inputs (a Pulumi replace)."""
        self._kill(name)
        (declared,) = [c for c in self.declared.of_type(CONTAINER) if c.name == name]
        return self.start(declared)

    def apply(self, changed: DeclaredStack) -> None:
        """Apply a new program run whose changes are containers (a release image, a canary), in the order
        `pulumi up` takes with its default create-before-delete replacement:

        1. pull the new images (RemoteImage);
        2. create each new or changed container (a changed one beside the old one) and, with `wait`, wait
           until it is healthy;
        3. only then delete the replaced and the removed ones: with `destroyGraceSeconds`, `docker stop`
           with that timeout first (the provider's delete), so they drain, then remove them.

        A container that never gets healthy fails the update and what it was to replace keeps running, as
        under the engine; the engine deletes the failed one at the next `up`, the harness at once.
        """
        for image in changed.of_type(REMOTE_IMAGE):
            self._pull(image.plain)
        before = {c.name: c for c in self.declared.of_type(CONTAINER)}
        after = {c.name: c for c in changed.of_type(CONTAINER)}
        retired = [(self.containers[name], old) for name, old in before.items() if name not in after]
        for name, declared in after.items():
            old = before.get(name)
            if old is not None and old.plain == declared.plain:
                continue  # no diff: the engine leaves the container alone
            if old is not None and old.plain["name"] == declared.plain["name"]:
                raise StackError(f"{name}: the replacement keeps the container name {declared.plain['name']}; "
                                 "create-before-delete would fail on it, so the program must change the name")
            running = self.containers.get(name)
            try:
                self.start(declared)
            except (StackError, docker.errors.APIError):
                if running is not None:
                    self.containers[name] = running
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.containers.get(declared.plain["name"]).remove(force=True)
                raise
            if old is not None:
                retired.append((running, old))
        for container, declared in retired:
            grace = declared.plain.get("destroyGraceSeconds")
            if grace:
                container.stop(timeout=int(grace))
            container.remove(force=True)
            if self.containers.get(declared.name) is container:
                del self.containers[declared.name]
        self.declared = changed

    def _kill(self, name: str) -> None:
        old = self.containers.pop(name)
        old.kill()
        old.remove(force=True)

    def container(self, alias: str) -> Container:
        return self.containers[self.declared.container(alias).name]

    def down(self) -> None:
        """Remove the containers, network and volumes by their declared names; keep built layers cached."""
        missing = contextlib.suppress(docker.errors.NotFound)
        for declared in self.declared.of_type(CONTAINER):
            with missing:
                self.client.containers.get(declared.plain["name"]).remove(force=True)
        for network in self.declared.of_type(NETWORK):
            with missing:
                self.client.networks.get(network.plain["name"]).remove()
        for volume in self.declared.of_type(VOLUME):
            with missing:
                self.client.volumes.get(volume.plain["name"]).remove(force=True)
        for image in self.declared.of_type(IMAGE):
            # noprune keeps the dependency layers, so the next run's build is a cache hit.
            with missing:
                self.client.images.remove(image.plain["imageName"], noprune=True)

    def _build(self, props: dict[str, Any]) -> None:
        build = props["build"]
        started = time.monotonic()
        try:
            self.client.images.build(
                path=build["context"],
                dockerfile=build.get("dockerfile"),
                buildargs=build.get("args"),
                network_mode=build.get("network"),
                tag=props["imageName"],
                rm=True,
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(line.get("stream", line.get("error", ""))) for line in exc.build_log)
            raise StackError(f"building {props['imageName']} failed: {exc.msg}\n{log[-3000:]}") from None
        self.build_seconds[props["imageName"]] = time.monotonic() - started

    def _pull(self, props: dict[str, Any]) -> None:
        try:
            self.client.images.get(props["name"])
        except docker.errors.ImageNotFound:
            self.client.images.pull(props["name"])
