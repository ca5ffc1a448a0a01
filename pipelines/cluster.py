"""What a release to a kubernetes-target stack needs beyond `pulumi up` (used by `pipelines.stack.StackTarget`).

The rollout wait itself is `pulumi up`: pulumi-kubernetes waits until the serving Deployment's new pods
are ready (readiness = /readyz with the model loaded) and fails the update otherwise. What remains:
the release image must be in the cluster's registry before the apply, and the smoke requests need a
way to the in-cluster Service from the machine that runs the release. Neither can run without a cluster
and a registry, so neither runs in this repo's tests (docs/kubernetes.md).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

from pipelines.errors import CannotRun


class ReleaseError(CannotRun):
    """A docker or kubectl step failed; the message says which and why."""


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ReleaseError(f"{' '.join(command[:3])} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def push_release_image(local_image: str, registry: str) -> str:
    """Tag the locally built release image into `registry` (config imageRegistry) and push it; its new name."""
    if not registry:
        return local_image  # the cluster loads local images (kind load, k3s import)
    remote = f"{registry}/{local_image}"
    _run(["docker", "tag", local_image, remote])
    _run(["docker", "push", remote])
    return remote


@contextlib.contextmanager
def port_forward(namespace: str, service: str, port: int, timeout_s: float = 30) -> Iterator[str]:
    """`kubectl port-forward svc/<service>` on a free loopback port, for smoke requests; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
    process = subprocess.Popen(
        ["kubectl", "port-forward", "--namespace", namespace, "--address", "127.0.0.1", f"svc/{service}",
         f"{local}:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().strip() if process.poll() is not None and process.stderr else "timed out"
                raise ReleaseError(f"kubectl port-forward to {namespace}/{service}:{port} failed: {error}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{local}"
    finally:
        process.terminate()
        process.wait(timeout=10)
