"""Each pod the kubernetes target declares, run on the real Docker daemon as its spec says: it starts
as the non-root user on a read-only root filesystem with its secret files, and its probes answer.

The images are the ones the stack builds (services/*/Dockerfile on BASE_IMAGE), under the names the
manifests use. Auth is on (the target requires it), so every secret file a pod reads is mounted the kubelet's way.
"""

from __future__ import annotations

from collections.abc import Iterator
from secrets import token_hex

import docker
import httpx
import pytest

from tests.infra.program import IMAGE, DeclaredStack, run_program
from tests.kubernetes.manifests import ADMIN_PASSWORD, AUTH_SECRETS, SMALL, declare, manifests
from tests.kubernetes.pods import PodsOnDocker, RunningPod
from tests.stack.harness import DockerStack

pytestmark = pytest.mark.timeout(900)
VERDICTS = {0: "OK", 3: "DRIFT", 4: "NOT ENOUGH DATA"}


@pytest.fixture(scope="module")
def pods(docker_client: docker.DockerClient, base_image: str) -> Iterator[PodsOnDocker]:
    prefix, tag = f"mlopst-{token_hex(3)}", "k8s-test"
    # The docker target's image builds, under the names the kubernetes manifests use (same prefix and tag).
    builds = DockerStack(docker_client, DeclaredStack(resources=run_program(
        {"namePrefix": prefix, "baseImage": base_image, "imageTag": tag}).of_type(IMAGE)))
    declared = manifests(declare({**SMALL, "namePrefix": prefix, "imageTag": tag}))
    running = PodsOnDocker(docker_client, declared, prefix)
    try:
        builds.up()
        yield running
    finally:
        running.down()
        builds.down()


@pytest.fixture(scope="module")
def mlflow(pods: PodsOnDocker) -> RunningPod:
    pod = pods.start("Deployment", "mlflow")
    pods.wait_started(pod)
    return pod


def test_mlflow_starts_and_its_probes_answer(pods: PodsOnDocker, mlflow: RunningPod):
    assert pods.answer(mlflow, "readinessProbe") == 200
    assert pods.answer(mlflow, "livenessProbe") == 200
    # Basic auth from the mounted secret file: the API refuses without a credential, accepts the admin's.
    api = f"http://127.0.0.1:{mlflow.ports['http']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api, auth=("admin", ADMIN_PASSWORD)).status_code == 200


def test_mlflow_runs_with_the_flask_secret_every_replica_shares(mlflow: RunningPod):
    """The entrypoint exports the key from the mounted Secret file, so every replica signs CSRF tokens alike."""
    environ = mlflow.container.exec_run(["cat", "/proc/1/environ"]).output.split(b"\0")
    assert f"MLFLOW_FLASK_SERVER_SECRET_KEY={AUTH_SECRETS['mlflowSecretKey']}".encode() in environ


def test_serving_starts_live_and_reports_not_ready_without_a_model(pods: PodsOnDocker):
    serving = pods.start("Deployment", "serving")
    assert pods.wait_started(serving) == 200
    assert pods.answer(serving, "livenessProbe") == 200
    # The runtime image serves no model, so readiness keeps it out of the Service until a release.
    assert pods.answer(serving, "readinessProbe") == 503


def test_evidently_ui_starts_and_its_probes_answer(pods: PodsOnDocker):
    ui = pods.start("Deployment", "monitoring-ui")
    pods.wait_started(ui)
    assert pods.answer(ui, "readinessProbe") == 200
    assert pods.answer(ui, "livenessProbe") == 200
    assert httpx.get(f"http://127.0.0.1:{ui.ports['http']}/api/projects").status_code == 401  # the secret file holds


def test_monitoring_job_reaches_mlflow_and_exits_with_a_verdict(pods: PodsOnDocker, mlflow: RunningPod):
    job = pods.start("CronJob", "monitoring")
    code = pods.wait_exit(job, timeout_s=600)
    assert code in VERDICTS, f"exit {code}, not a verdict; last log lines:\n{job.logs()}"
    assert VERDICTS[code] in job.logs()


def test_every_pod_ran_as_declared_non_root_on_a_read_only_root(pods: PodsOnDocker, mlflow: RunningPod):
    assert len(pods.pods) == 4  # the tests above started every workload the manifests declare
    for pod in pods.pods:
        pod.container.reload()
        host = pod.container.attrs["HostConfig"]
        assert pod.container.attrs["Config"]["User"] == "10001:10001"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
