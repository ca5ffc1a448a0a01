"""The real Pulumi program with `target: kubernetes` under mocks: what `pulumi up` would ask the cluster for.

tests/kubernetes checks the same manifests against schemas, Checkov and cross-references, and runs the
pods on Docker; this file checks the program's choices and its config errors.
"""

from __future__ import annotations

import pytest
from pulumi.runtime import rpc

from tests.infra.certificates import self_signed
from tests.infra.program import run_program
from tests.kubernetes.manifests import (
    AUTH_SECRETS,
    FULL,
    FULL_SECRETS,
    SMALL,
    declare,
    manifests,
    named,
    of_kind,
    pod_specs,
)

OUTPUTS = {"mlflow_url", "serving_url", "monitoring_ui_url", "serving_image", "model_version", "canary_version",
           "candidate_version"}


@pytest.fixture(scope="module")
def small_stack():
    return declare(SMALL)


@pytest.fixture(scope="module")
def full_stack():
    return declare(FULL, FULL_SECRETS)


def test_docker_stays_the_default_target_and_declares_no_kubernetes_resource():
    stack = run_program()
    assert not [r for r in stack.resources if r.type.startswith(("kubernetes:", "mlops-platform:kubernetes"))]
    assert set(stack.exports) == OUTPUTS | {"prometheus_url"}  # the kubernetes target has no Prometheus yet


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


def test_rolled_mlflow_replicas_wait_for_a_migration_job_and_do_not_migrate_themselves(full_stack):
    """Two replicas rolled one by one: the schema is backed up and migrated once, by a Job, before the rollout."""
    found = manifests(full_stack)
    job = named(found, "Job", "mlflow-migrate")["spec"]
    (migrate,) = job["template"]["spec"]["containers"]
    assert migrate["command"][:3] == ["python", "/opt/tracking/schema.py", "postgresql+psycopg2:///?service=mlflow"]
    backup_dir = migrate["command"][migrate["command"].index("--backup-dir") + 1]
    mounts = {m["mountPath"]: m["name"] for m in migrate["volumeMounts"]}
    (backups,) = [v for v in job["template"]["spec"]["volumes"] if v["name"] == mounts[backup_dir]]
    assert backups["persistentVolumeClaim"]["claimName"] == "mlflow-schema-backups"
    assert {"name": "PGSERVICEFILE", "value": "/etc/mlflow/database/pg_service.conf"} in migrate["env"]
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    # Its own labels: the MLflow Service and disruption budget do not pick the Job's pod.
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "mlflow-migrate"

    (deployment,) = [r for r in full_stack.of_type("kubernetes:apps/v1:Deployment") if r.name.endswith("-server")
                     and r.plain["metadata"]["name"] == "mlflow"]
    (job_resource,) = full_stack.of_type("kubernetes:batch/v1:Job")
    assert job_resource.name in deployment.depends_on
    server = named(found, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "SCHEMA_MIGRATION", "value": "job"} in server["env"]  # the entrypoint only checks the schema
    assert "db" not in server.get("command", []) and "upgrade" not in server["args"]


def test_one_mlflow_replaced_with_recreate_migrates_itself_without_a_job(small_stack):
    """One pod on a ReadWriteOnce claim, the old one stopped first: no old server runs under the migration."""
    found = manifests(small_stack)
    assert not of_kind(found, "Job")
    server = named(found, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "SCHEMA_MIGRATION" not in {item["name"] for item in server.get("env", [])}


def test_mlflow_with_auth_refuses_the_routes_its_permission_map_does_not_cover(full_stack):
    container = named(manifests(full_stack), "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert {item["name"]: item["value"] for item in container["env"]}["MLFLOW_BASIC_AUTH_FAIL_CLOSED"] == "true"


def test_mlflow_makes_the_audit_trail_at_start_for_the_monitoring_jobs_to_append_to(full_stack):
    """As on docker: each model's CronJob writes its retrain requests into the audit chain as the monitoring user."""
    container = named(manifests(full_stack), "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert (env["TEAM_SHARED_EXPERIMENTS"], env["MONITORING_USER"]) == ("audit", "monitoring")


def test_mlflow_connects_to_postgres_with_only_the_mounted_service_file(tmp_path, monkeypatch):
    """The declared backend URI names no host or password; libpq takes both from pg_service.conf."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    closed_port = 1  # nothing listens: the refusal names the address libpq read from the file
    found = manifests(declare({**SMALL, "trackingBackend": "postgres"},
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
    assert set(full) == {"default-deny", "mlflow", "mlflow-migrate", "monitoring", "serving", "monitoring-ui"}
    store_ports = {port["port"] for rule in full["mlflow"]["egress"] for port in rule["ports"]}
    assert store_ports == {53, 6432, 9000}
    assert {port["port"] for rule in full["mlflow-migrate"]["egress"] for port in rule["ports"]} == {53, 6432}
    assert full["mlflow-migrate"]["ingress"] == []
    assert full["serving"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_secrets_reach_pods_as_files_only(full_stack):
    found = manifests(full_stack)
    text = str([m for m in found if m["kind"] != "Secret"])
    for value in FULL_SECRETS.values():
        assert value not in text
    assert {m["metadata"]["name"] for m in of_kind(found, "Secret")} == {
        "mlflow-database", "mlflow-s3", "mlflow-auth", "serving-tokens", "monitoring-mlflow-credentials",
        "monitoring-ui-secret", "edge-tls", "monitoring-alert", "mlflow-flask"}


def test_tls_at_the_edge_is_an_ingress_with_a_secret_tls_secret(full_stack):
    found = manifests(full_stack)
    (ingress,) = of_kind(found, "Ingress")
    hosts = {"mlflow": 5000, "serving": 3000, "monitoring-ui": 8000}
    assert ingress["spec"]["tls"] == [{"hosts": [f"{name}.ml.example.com" for name in hosts],
                                       "secretName": "edge-tls"}]
    routed = {rule["host"]: rule["http"]["paths"][0]["backend"]["service"] for rule in ingress["spec"]["rules"]}
    assert routed == {f"{name}.ml.example.com": {"name": name, "port": {"name": "http"}} for name in hosts}
    tls = named(found, "Secret", "edge-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert tls["stringData"] == {"tls.crt": FULL_SECRETS["tlsCertificate"], "tls.key": FULL_SECRETS["tlsPrivateKey"]}
    (declared,) = [r for r in full_stack.resources if r.type == "kubernetes:core/v1:Secret" and r.name == "edge-tls"]
    assert rpc.is_rpc_secret(declared.inputs["stringData"])
    # The Ingress keeps the Host header; MLflow answers 403 to a Host it does not list.
    args = named(found, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "mlflow.ml.example.com" in args[args.index("--allowed-hosts") + 1].split(",")
    assert not of_kind(manifests(declare(SMALL)), "Ingress")


def _env(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def _mounted_file(pod: dict, container: dict, path: str, found: list) -> str:
    """The content of the Secret file a pod sees at `path`."""
    directory, file = path.rsplit("/", 1)
    (volume,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == directory]
    (secret,) = [v["secret"]["secretName"] for v in pod["volumes"] if v["name"] == volume]
    return named(found, "Secret", secret)["stringData"][file]


def test_the_drift_alert_is_wired_as_on_docker_and_its_webhook_is_the_jobs_only_way_out(full_stack, small_stack):
    found = manifests(full_stack)
    pod = named(found, "CronJob", "monitoring")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    job = pod["containers"][0]
    env = _env(job)
    alert_env = {key: value for key, value in env.items() if key.startswith("MONITORING_ALERT_")}
    # The same variables and paths as the docker target's job (one definition, infra/monitoring.py).
    docker_job = run_program({"driftAlertKind": "github"}, {key: FULL_SECRETS[key] for key in (
        "driftAlertWebhookUrl", "driftAlertToken")}).container("monitoring")
    assert alert_env == {key: value for key, value in (e.split("=", 1) for e in docker_job.plain["envs"])
                         if key.startswith("MONITORING_ALERT_")}
    assert alert_env["MONITORING_ALERT_KIND"] == "github"
    assert _mounted_file(pod, job, env["MONITORING_ALERT_WEBHOOK_URL_FILE"], found) == FULL_SECRETS[
        "driftAlertWebhookUrl"]
    assert _mounted_file(pod, job, env["MONITORING_ALERT_TOKEN_FILE"], found) == FULL_SECRETS["driftAlertToken"]
    egress = named(found, "NetworkPolicy", "monitoring")["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "140.82.112.0/20"}}], "ports": [{"protocol": "TCP", "port": 443}]} in egress
    small = manifests(small_stack)
    assert len(named(small, "NetworkPolicy", "monitoring")["spec"]["egress"]) == 2  # DNS and MLflow, nothing else
    small_job = named(small, "CronJob", "monitoring")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert not [key for key in _env(small_job["containers"][0]) if key.startswith("MONITORING_ALERT_")]


def test_every_mlflow_replica_signs_with_the_one_flask_secret_from_a_secret(full_stack):
    found = manifests(full_stack)
    deployment = named(found, "Deployment", "mlflow")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    env = _env(server)
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in env  # a file, never a value in the manifest
    assert _mounted_file(pod, server, env["MLFLOW_FLASK_SERVER_SECRET_KEY_FILE"], found) == FULL_SECRETS[
        "mlflowSecretKey"]


def test_the_flask_secret_is_required_naming_the_key():
    without = {key: value for key, value in AUTH_SECRETS.items() if key != "mlflowSecretKey"}
    with pytest.raises(Exception, match="stack config mlops-platform:mlflowSecretKey: is required on the kubernetes"):
        run_program(SMALL, without)


@pytest.mark.parametrize(("config", "secrets", "message"), [
    ({"target": "swarm"}, {}, "target: must be one of docker, kubernetes"),
    ({**SMALL, "driftAlertEgressCidr": "140.82.112.1/20"}, {}, "driftAlertEgressCidr: '140.82.112.1/20' is not"),
    ({**SMALL, "driftAlertEgressPort": "https"}, {}, "driftAlertEgressPort: must be a whole number"),
    ({**SMALL}, {"mlflowSecretKey": "short"}, "mlflowSecretKey: must be at least 16 characters"),
    ({**SMALL, "authEnabled": "false"}, {}, "authEnabled: must be true on the kubernetes target"),
    ({**SMALL, "ingressDomain": "ml.example.com", "clientNamespace": "ingress-nginx"}, {}, "ingressDomain: needs TLS"),
    ({**SMALL, "clientNamespace": "ingress-nginx"}, self_signed("x.example.com").as_secrets(),
     "ingressDomain: is required with tlsCertificate"),
    ({**SMALL, "ingressDomain": "ml.example.com"}, self_signed("x.example.com").as_secrets(),
     "ingressDomain: needs clientNamespace"),
    ({"target": "kubernetes"}, {}, "imageTag: has the moving tag :latest"),
    ({**SMALL, "servingImage": "registry.example.com/mlops-serving"}, {}, "servingImage: has no tag"),
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
        run_program(config, {**AUTH_SECRETS, **secrets})
    assert message in str(failure.value)
