"""The real Pulumi program with `target: kubernetes` under mocks: what `pulumi up` would ask the cluster for.

tests/kubernetes checks the same manifests against schemas, Checkov and cross-references, and runs the
pods on Docker; this file checks the program's choices and its config errors.
"""

from __future__ import annotations

import pytest

from tests.infra.program import run_program
from tests.kubernetes.manifests import FULL, FULL_SECRETS, SMALL, manifests, named, of_kind, pod_specs

OUTPUTS = {"mlflow_url", "serving_url", "monitoring_ui_url", "serving_image", "model_version", "canary_version",
           "candidate_version"}


@pytest.fixture(scope="module")
def small_stack():
    return run_program(SMALL)


@pytest.fixture(scope="module")
def full_stack():
    return run_program(FULL, FULL_SECRETS)


def test_docker_stays_the_default_target_and_declares_no_kubernetes_resource():
    stack = run_program()
    assert not [r for r in stack.resources if r.type.startswith(("kubernetes:", "mlops-platform:kubernetes"))]
    assert set(stack.exports) == OUTPUTS


def test_outputs_are_those_of_the_docker_target_plus_the_namespace(small_stack, full_stack):
    assert set(small_stack.exports) == OUTPUTS | {"kubernetes_namespace"}
    assert small_stack.exports["serving_url"] == "http://serving.mlops-dev.svc.cluster.local:3000"
    assert full_stack.exports["serving_image"] == FULL["servingImage"]
    assert full_stack.exports["model_version"] == "3"
    assert not full_stack.secret_exports


def test_everything_lives_in_the_stack_namespace_with_the_stack_labels(small_stack):
    found = manifests(small_stack)
    (namespace,) = of_kind(found, "Namespace")
    assert namespace["metadata"]["name"] == "mlops-dev"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in found:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "mlops-dev", manifest["metadata"]["name"]
        assert manifest["metadata"]["labels"]["mlops-platform.stack"] == "mlops"


def test_every_workload_is_bounded_and_unprivileged(small_stack, full_stack):
    for found in (manifests(small_stack), manifests(full_stack)):
        for where, spec in pod_specs(found).items():
            assert spec["automountServiceAccountToken"] is False, where
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            for container in spec["containers"]:
                limits, requests = container["resources"]["limits"], container["resources"]["requests"]
                assert set(limits) == set(requests) == {"cpu", "memory"}, where
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
                assert security["runAsUser"] == 10001 and security["capabilities"] == {"drop": ["ALL"]}


def test_small_mlflow_is_one_replica_on_one_claim_and_full_one_is_two_on_external_stores(small_stack, full_stack):
    small = named(manifests(small_stack), "Deployment", "mlflow")["spec"]
    assert (small["replicas"], small["strategy"]["type"]) == (1, "Recreate")
    args = small["template"]["spec"]["containers"][0]["args"]
    assert "--serve-artifacts" in args and args[args.index("--backend-store-uri") + 1].startswith("sqlite:////mlflow")
    found = manifests(full_stack)
    full = named(found, "Deployment", "mlflow")["spec"]
    assert full["replicas"] == 2 and full["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = full["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--artifacts-destination") + 1] == "s3://mlops-artifacts/prod"
    assert args[args.index("--backend-store-uri") + 1] == "postgresql+psycopg2:///?service=mlflow"
    assert "--app-name" in args
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.storage:9000"
    # The database password reaches MLflow only inside the mounted pg_service.conf.
    service_file = named(found, "Secret", "mlflow-database")["stringData"]["pg_service.conf"]
    assert "password=pg@pass" in service_file and "port=6432" in service_file and "sslmode=require" in service_file
    assert "mlflow-database" not in str(env) and "pg@pass" not in str(full)


def test_mlflow_connects_to_postgres_with_only_the_mounted_service_file(tmp_path, monkeypatch):
    """The declared backend URI names no host or password; libpq takes both from pg_service.conf."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    closed_port = 1  # nothing listens: the refusal names the address libpq read from the file
    found = manifests(run_program({**SMALL, "trackingBackend": "postgres"},
                                  {"postgresUri": f"postgresql://mlflow:pw@127.0.0.1:{closed_port}/mlflow"}))
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(named(found, "Secret", "mlflow-database")["stringData"]["pg_service.conf"])
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    args = named(found, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]["args"]
    engine = sqlalchemy.create_engine(args[args.index("--backend-store-uri") + 1])
    with pytest.raises(sqlalchemy.exc.OperationalError, match=f'"127.0.0.1", port {closed_port} failed'):
        engine.connect()


def test_serving_rolls_out_without_losing_capacity_and_scales(full_stack):
    found = manifests(full_stack)
    serving = named(found, "Deployment", "serving")
    assert serving["spec"]["replicas"] == 3
    assert serving["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert serving["spec"]["template"]["spec"]["containers"][0]["image"] == FULL["servingImage"]
    assert "pulumi.com/skipAwait" not in serving["metadata"]["annotations"]  # `pulumi up` waits for the rollout
    hpa = named(found, "HorizontalPodAutoscaler", "serving")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] == 3
    assert named(found, "PodDisruptionBudget", "serving")["spec"]["minAvailable"] == 1


def test_a_stack_without_a_release_does_not_wait_for_serving_readiness(small_stack):
    serving = named(manifests(small_stack), "Deployment", "serving")
    assert serving["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert serving["spec"]["template"]["spec"]["containers"][0]["image"] == "mlops-serving-runtime:0.1.0"


def test_monitoring_runs_as_a_cronjob_reading_the_shared_inference_log(small_stack):
    found = manifests(small_stack)
    job = named(found, "CronJob", "monitoring")["spec"]
    assert job["concurrencyPolicy"] == "Forbid" and job["schedule"] == "*/5 * * * *"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    (log,) = [v for v in pod["volumes"] if v["name"] == "inference-log"]
    assert log["persistentVolumeClaim"] == {"claimName": "inference-log", "readOnly": True}
    assert named(found, "PersistentVolumeClaim", "inference-log")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_network_policies_deny_by_default_and_open_only_the_platform_paths(small_stack, full_stack):
    small = {m["metadata"]["name"]: m["spec"] for m in of_kind(manifests(small_stack), "NetworkPolicy")}
    assert set(small) == {"default-deny", "mlflow", "monitoring"}
    assert small["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [],
                                     "egress": []}
    assert small["mlflow"]["policyTypes"] == ["Ingress"]  # MLflow on its claim reaches nothing
    full = {m["metadata"]["name"]: m["spec"] for m in of_kind(manifests(full_stack), "NetworkPolicy")}
    assert set(full) == {"default-deny", "mlflow", "monitoring", "serving", "monitoring-ui"}
    store_ports = {port["port"] for rule in full["mlflow"]["egress"] for port in rule["ports"]}
    assert store_ports == {53, 6432, 9000}
    assert full["serving"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_secrets_reach_pods_as_files_only(full_stack):
    found = manifests(full_stack)
    text = str([m for m in found if m["kind"] != "Secret"])
    for value in FULL_SECRETS.values():
        assert value not in text
    assert {m["metadata"]["name"] for m in of_kind(found, "Secret")} == {
        "mlflow-database", "mlflow-s3", "mlflow-auth", "serving-tokens", "monitoring-mlflow-credentials",
        "monitoring-ui-secret"}


@pytest.mark.parametrize(("config", "secrets", "message"), [
    ({"target": "swarm"}, {}, "target: must be one of docker, kubernetes"),
    ({"target": "kubernetes"}, {}, "imageTag: has the moving tag :latest"),
    ({**SMALL, "servingImage": "registry.example.com/mlops-serving"}, {}, "servingImage: has no tag"),
    ({**SMALL, "monitoringIntervalMinutes": "7"}, {}, "CronJob schedule"),
    ({**SMALL, "kubernetesNamespace": "Prod_NS"}, {}, "is not a DNS label"),
    ({**SMALL, "servingReplicas": "1"}, {}, "servingReplicas: must be between 2"),
    ({**SMALL, "trackingBackend": "postgres"}, {}, "postgresUri: is required"),
    ({**SMALL, "trackingBackend": "postgres"}, {"postgresUri": "postgresql://db.example.com/mlflow"},
     "missing user, password"),
    *(({**SMALL, "trackingBackend": "postgres"}, {"postgresUri": uri}, "postgresUri: holds a control character")
      for uri in ("postgresql://u:pw%0Ahost=evil@db/mlflow", "postgresql://u:pw@db/mlflow?sslmode=require%0Ahost=x",
                  "postgresql://u:pw\nhost=evil@db/mlflow", "postgresql://u:pw@db/ml%00flow")),
    ({**SMALL, "artifactDestination": "s3://bucket/x"}, {}, "s3AccessKeyId: is required"),
    ({**SMALL, "candidateImage": "r.example.com/s:v2"}, {}, "candidateImage: a candidate beside the champion runs"),
])
def test_bad_kubernetes_config_is_refused_naming_the_key(config, secrets, message):
    with pytest.raises(Exception, match="stack config") as failure:
        run_program(config, secrets)
    assert message in str(failure.value)


def test_schedules_follow_the_interval():
    for minutes, schedule in (("1", "*/1 * * * *"), ("60", "0 * * * *"), ("360", "0 */6 * * *"),
                              ("1440", "0 0 * * *")):
        found = manifests(run_program({**SMALL, "monitoringIntervalMinutes": minutes}))
        assert named(found, "CronJob", "monitoring")["spec"]["schedule"] == schedule
