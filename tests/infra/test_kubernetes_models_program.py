"""Several models on the kubernetes target, under mocks (issue 21, "Kubernetes target"): a Deployment, Service,
autoscaler and disruption budget per model, each from that model's own release keys, an Ingress routing
`/models/<name>/` to each, and the config loader refusing what the target cannot serve, naming the key.

tests/kubernetes validates the same two-model manifests against the schemas, Checkov and the own checks.
"""

from __future__ import annotations

import json

import pytest

from services.contract import MODEL_LABEL
from tests.infra.program import run_program
from tests.kubernetes.manifests import (
    AUTH_SECRETS,
    FULL,
    FULL_SECRETS,
    SECOND_MODEL,
    SMALL,
    TWO_MODELS,
    declare,
    manifests,
    named,
)

SERVING_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")


@pytest.fixture(scope="module")
def two_models():
    return declare(TWO_MODELS, FULL_SECRETS)


def _server(deployment: dict) -> dict:
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    return server


def test_each_model_has_its_own_serving_objects_from_its_own_release_keys(two_models):
    found = manifests(two_models)
    for kind in SERVING_KINDS:
        for name, model in (("serving", "loan-default"), (f"serving-{SECOND_MODEL}", SECOND_MODEL)):
            assert named(found, kind, name)["metadata"]["labels"][MODEL_LABEL] == model, (kind, name)
    default, second = named(found, "Deployment", "serving"), named(found, "Deployment", f"serving-{SECOND_MODEL}")
    assert _server(default)["image"] == FULL["servingImage"]
    assert _server(second)["image"] == TWO_MODELS[f"servingImage.{SECOND_MODEL}"]
    assert second["metadata"]["annotations"] == {"mlops-platform/model-version": "5"}  # `pulumi up` awaits it
    assert _server(second)["resources"]["limits"]["memory"] == "768Mi"
    assert _server(default)["resources"]["limits"]["memory"] == "1024Mi"
    # Each selects its own pods only: the Service, the budget and the spread never mix the models' replicas.
    selector = second["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/name"] == f"serving-{SECOND_MODEL}"
    assert second["spec"]["template"]["metadata"]["labels"][MODEL_LABEL] == SECOND_MODEL
    assert named(found, "Service", f"serving-{SECOND_MODEL}")["spec"]["selector"] == selector
    assert named(found, "PodDisruptionBudget", f"serving-{SECOND_MODEL}")["spec"]["selector"]["matchLabels"] == selector
    hpa = named(found, "HorizontalPodAutoscaler", f"serving-{SECOND_MODEL}")["spec"]
    assert hpa["scaleTargetRef"]["name"] == f"serving-{SECOND_MODEL}" and hpa["minReplicas"] == 3
    assert two_models.exports[f"model_version.{SECOND_MODEL}"] == "5"
    assert two_models.exports[f"serving_image.{SECOND_MODEL}"] == TWO_MODELS[f"servingImage.{SECOND_MODEL}"]
    assert two_models.exports[f"serving_url.{SECOND_MODEL}"] == (
        f"http://serving-{SECOND_MODEL}.mlops-dev.svc.cluster.local:3000")


def test_every_models_pods_are_hardened_as_the_default_models(two_models):
    found = manifests(two_models)
    default, second = (named(found, "Deployment", name) for name in ("serving", f"serving-{SECOND_MODEL}"))
    pods = [deployment["spec"]["template"]["spec"] for deployment in (default, second)]
    for field in ("securityContext", "automountServiceAccountToken", "enableServiceLinks", "volumes"):
        assert pods[1][field] == pods[0][field], field
    for field in ("securityContext", "startupProbe", "readinessProbe", "livenessProbe", "ports", "volumeMounts"):
        assert _server(second)[field] == _server(default)[field], field
    assert second["spec"]["strategy"] == default["spec"]["strategy"]  # maxUnavailable 0: a rollout keeps capacity


def _env(cron_job: dict) -> dict[str, str]:
    (job,) = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in job["env"]}


def test_each_models_inference_log_is_a_directory_of_its_own_on_the_shared_claim(two_models):
    found = manifests(two_models)
    logs = {name: {item["name"]: item["value"] for item in _server(named(found, "Deployment", name))["env"]}[
        "INFERENCE_LOG_DIR"] for name in ("serving", f"serving-{SECOND_MODEL}")}
    # The default model's at the root, as on a single-model stack; each monitoring CronJob reads its model's.
    assert logs == {"serving": "/var/lib/inference",
                    f"serving-{SECOND_MODEL}": f"/var/lib/inference/models/{SECOND_MODEL}"}
    assert _env(named(found, "CronJob", "monitoring"))["INFERENCE_LOG_DIR"] == logs["serving"]
    assert _env(named(found, "CronJob", f"monitoring-{SECOND_MODEL}"))["INFERENCE_LOG_DIR"] == logs[
        f"serving-{SECOND_MODEL}"]


def test_each_model_is_monitored_by_a_cron_job_of_its_own_on_its_own_policy_and_schedule(tmp_path):
    own = tmp_path / "pipeline.yaml"  # the second model's pipeline config, judging every 15 minutes at 0.2
    own.write_text(f"model_name: {SECOND_MODEL}\nmonitoring:\n  interval_minutes: 15\n  drift_share_threshold: 0.2\n")
    models = json.dumps([{"name": "loan-default"}, {"name": SECOND_MODEL, "pipelineConfig": str(own)}])
    found = manifests(declare({**TWO_MODELS, "models": models}, FULL_SECRETS))
    default, second = named(found, "CronJob", "monitoring"), named(found, "CronJob", f"monitoring-{SECOND_MODEL}")
    assert (default["spec"]["schedule"], second["spec"]["schedule"]) == ("*/5 * * * *", "*/15 * * * *")
    env = _env(second)
    assert env["MODEL_NAME"] == SECOND_MODEL
    assert env["MONITORING_REPORTS_DIR"] == f"/var/lib/monitoring/models/{SECOND_MODEL}/reports"
    assert env["MONITORING_WORKSPACE"] == _env(default)["MONITORING_WORKSPACE"]  # one workspace, one UI
    assert json.loads(env["MONITORING_POLICY"])["drift_share_threshold"] == 0.2
    assert json.loads(_env(default)["MONITORING_POLICY"])["drift_share_threshold"] != 0.2
    # The same pod as the default model's job (hardening, volumes, the one network policy's label) but its model.
    pods = [job["spec"]["jobTemplate"]["spec"]["template"] for job in (default, second)]
    assert pods[1]["metadata"]["labels"] == {**pods[0]["metadata"]["labels"], MODEL_LABEL: SECOND_MODEL}
    assert {key: value for key, value in pods[1]["spec"].items() if key != "containers"} == {
        key: value for key, value in pods[0]["spec"].items() if key != "containers"}
    assert second["spec"]["concurrencyPolicy"] == "Forbid"


def test_an_entrys_serving_workers_set_its_models_pods_worker_processes():
    models = json.dumps([{"name": "loan-default"}, {"name": SECOND_MODEL, "servingWorkers": 3}])
    found = manifests(declare({**TWO_MODELS, "models": models}, FULL_SECRETS))
    env = {name: {item["name"]: item["value"] for item in _server(named(found, "Deployment", name))["env"]}
           for name in ("serving", f"serving-{SECOND_MODEL}")}
    assert env[f"serving-{SECOND_MODEL}"]["BENTOML_CONFIG_OPTIONS"] == "services.Serving.workers=3"
    assert "BENTOML_CONFIG_OPTIONS" not in env["serving"]  # no entry's workers: the bento's own


def test_the_ingress_routes_each_models_path_to_its_service_and_keeps_the_rest_on_the_default(two_models):
    found = manifests(two_models)
    edge, models = named(found, "Ingress", "edge"), named(found, "Ingress", "edge-models")
    assert edge == named(manifests(declare(FULL, FULL_SECRETS)), "Ingress", "edge")  # /predict: the default model
    assert models["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/use-regex": "true",
                                                 "nginx.ingress.kubernetes.io/rewrite-target": "/$2"}
    assert models["spec"]["tls"] == [{"hosts": ["serving.ml.example.com"], "secretName": "edge-tls"}]
    (rule,) = models["spec"]["rules"]
    assert rule["host"] == "serving.ml.example.com"
    assert {path["path"]: path["backend"]["service"]["name"] for path in rule["http"]["paths"]} == {
        "/models/loan-default(/|$)(.*)": "serving", f"/models/{SECOND_MODEL}(/|$)(.*)": f"serving-{SECOND_MODEL}"}
    assert {path["pathType"] for path in rule["http"]["paths"]} == {"ImplementationSpecific"}


def test_the_ingress_controller_may_reach_every_models_pods(two_models):
    policy = named(manifests(two_models), "NetworkPolicy", f"serving-{SECOND_MODEL}")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == f"serving-{SECOND_MODEL}"
    assert policy["ingress"] == named(manifests(two_models), "NetworkPolicy", "serving")["spec"]["ingress"]


def test_a_model_without_a_release_yet_runs_the_runtime_image_and_is_not_awaited():
    config = {key: value for key, value in TWO_MODELS.items() if not key.endswith(f".{SECOND_MODEL}")}
    second = named(manifests(declare(config, FULL_SECRETS)), "Deployment", f"serving-{SECOND_MODEL}")
    assert _server(second)["image"] == "registry.example.com/ml/mlops-serving-runtime:0.1.0"
    assert second["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_one_model_declared_or_none_keeps_the_single_model_objects():
    for config in (SMALL, {**SMALL, "models": json.dumps([{"name": "loan-default"}])}):
        found = manifests(declare(config))
        assert {m["metadata"]["name"] for m in found if m["kind"] in SERVING_KINDS} == {
            "serving", "mlflow", "monitoring-ui"}
        assert not [m for m in found if MODEL_LABEL in m["metadata"]["labels"]]


LONG = "m" * 56  # a DNS label, but `serving-<it>` is 64 characters


@pytest.mark.parametrize(("config", "message"), [
    ({"models": json.dumps([{"name": "a"}, {"name": "a"}])}, "both serve /models/a/: two models on one route"),
    ({"models": json.dumps([{"name": "a"}, {"name": "B"}])}, "models[1].name 'B' is not a DNS label"),
    ({f"servingImage.{SECOND_MODEL}": "registry.example.com/ml/mlops-serving"},
     f"servingImage.{SECOND_MODEL}: has no tag"),
    ({f"servingImage.{SECOND_MODEL}": "registry.example.com/ml/mlops-serving:latest"},
     f"servingImage.{SECOND_MODEL}: has the moving tag :latest"),
    ({f"canaryImage.{SECOND_MODEL}": "registry.example.com/ml/mlops-serving:v6"},
     f"canaryImage.{SECOND_MODEL}: canary releases run on the docker target only"),
    ({f"candidateImage.{SECOND_MODEL}": "registry.example.com/ml/mlops-serving:v6"},
     f"candidateImage.{SECOND_MODEL}: a candidate beside the champion runs on the docker target only"),
])
def test_bad_models_on_kubernetes_are_refused_naming_the_key(config, message):
    with pytest.raises(Exception, match="stack config") as failure:
        run_program({**(TWO_MODELS if "models" not in config else FULL), **config}, {**AUTH_SECRETS, **FULL_SECRETS})
    assert message in str(failure.value)


def test_a_model_name_too_long_for_its_kubernetes_service_is_refused(tmp_path):
    own = tmp_path / "pipeline.yaml"  # its own pipeline config, which the stack reads for its monitoring policy
    own.write_text(f"model_name: {LONG}\n")
    models = json.dumps([{"name": "loan-default"}, {"name": LONG, "pipelineConfig": str(own)}])
    with pytest.raises(Exception, match="stack config") as failure:
        run_program({**FULL, "models": models}, {**AUTH_SECRETS, **FULL_SECRETS})
    assert f"models: model '{LONG}' is too long for the kubernetes target: its Service" in str(failure.value)


def test_a_model_name_too_long_for_its_monitoring_cron_job_is_refused(tmp_path):
    name = "m" * 42  # `serving-<it>` fits a Service; `monitoring-<it>` is 53 characters, one past a CronJob's most
    own = tmp_path / "pipeline.yaml"
    own.write_text(f"model_name: {name}\n")
    models = json.dumps([{"name": "loan-default"}, {"name": name, "pipelineConfig": str(own)}])
    with pytest.raises(Exception, match="stack config") as failure:
        run_program({**FULL, "models": models}, {**AUTH_SECRETS, **FULL_SECRETS})
    assert f"its monitoring CronJob 'monitoring-{name}' would be 53 characters, at most 52 fit" in str(failure.value)
