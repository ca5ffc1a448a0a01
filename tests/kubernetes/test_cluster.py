"""Only a cluster can prove these: run when KUBECONFIG names one (kubectl on PATH), skipped otherwise.

The API server (with its admission: Pod Security "restricted" on the namespace) accepts every manifest
in a server-side dry run, in a throwaway namespace. Scheduling, Service routing, HPA behaviour and real
rolling updates need the platform's images in the cluster's registry and a `pulumi up` (docs/kubernetes.md).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from secrets import token_hex

import pytest
import yaml

from tests.kubernetes.manifests import SMALL, declare, manifests

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def _kubectl(*args: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed next to KUBECONFIG"
    done = subprocess.run([kubectl, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_api_server_accepts_every_manifest(tmp_path: Path):
    namespace = f"mlopst-{token_hex(3)}"
    found = manifests(declare({**SMALL, "kubernetesNamespace": namespace}))
    (namespace_manifest,), rest = [m for m in found if m["kind"] == "Namespace"], [
        m for m in found if m["kind"] != "Namespace"]
    (tmp_path / "namespace.yaml").write_text(yaml.safe_dump(namespace_manifest))
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump_all(rest))
    _kubectl("apply", "-f", str(tmp_path / "namespace.yaml"))
    try:
        _kubectl("apply", "--dry-run=server", "-f", str(tmp_path / "platform.yaml"))
    finally:
        _kubectl("delete", "namespace", namespace, "--wait=false")
