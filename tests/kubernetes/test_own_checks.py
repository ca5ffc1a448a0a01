"""The references between the declared manifests hold, and each check catches the mistake it is for."""

from __future__ import annotations

import copy

import pytest

from tests.kubernetes import checks
from tests.kubernetes.manifests import SECOND_MODEL, Manifest, named


def test_the_declared_manifests_pass_every_check(small: list[Manifest], full: list[Manifest],
                                                 two_models: list[Manifest]):
    for found in (small, full, two_models):
        assert [problem for check in checks.CHECKS for problem in check(found)] == []


def _broken(found: list[Manifest], kind: str, name: str, change) -> list[Manifest]:
    copied = copy.deepcopy(found)
    change(named(copied, kind, name))
    return copied


def _pod(deployment: Manifest) -> Manifest:
    return deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize(("check", "kind", "name", "change", "problem"), [
    (checks.selectors_match_pods, "Service", "serving",
     lambda m: m["spec"]["selector"].update({"app.kubernetes.io/name": "servng"}), "Service/serving: selects no pod"),
    (checks.named_ports_exist, "Service", "mlflow",
     lambda m: m["spec"]["ports"][0].update(targetPort="web"), "has no port web"),
    (checks.named_ports_exist, "Deployment", "monitoring-ui",
     lambda m: _pod(m)["containers"][0]["readinessProbe"]["httpGet"].update(port="ui"), "names port ui"),
    (checks.serving_probes_match_the_api, "Deployment", "serving",
     lambda m: _pod(m)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"), "asks /healthz"),
    (checks.scalers_point_at_deployments, "HorizontalPodAutoscaler", "serving",
     lambda m: m["spec"]["scaleTargetRef"].update(name="server"), "no Deployment server"),
    (checks.scalers_point_at_deployments, "PodDisruptionBudget", "serving",
     lambda m: m["spec"]["selector"]["matchLabels"].pop("app.kubernetes.io/name"), "not one Deployment's pods"),
    (checks.image_tags_are_immutable, "Deployment", "mlflow",
     lambda m: _pod(m)["containers"][0].update(image="registry.example.com/ml/mlops-tracking:latest"), "tag latest"),
    (checks.secret_references_exist, "Deployment", "mlflow",
     lambda m: _pod(m)["volumes"][-1]["secret"].update(secretName="mlflow-auth-old"), "mlflow-auth-old is not"),
    (checks.secret_references_exist, "Deployment", "serving",
     lambda m: _pod(m)["containers"][0]["env"].append(
         {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "serving-tokens", "key": "serving-token"}}}),
     "from the environment"),
    (checks.file_variables_name_mounted_secret_files, "Deployment", "mlflow",
     lambda m: _pod(m)["containers"][0]["env"].append(
         {"name": "MLFLOW_FLASK_SERVER_SECRET_KEY_FILE", "value": "/etc/mlflow/flask/secret"}),
     "which Secret mlflow-flask does not hold"),
    (checks.file_variables_name_mounted_secret_files, "CronJob", "monitoring",
     lambda m: m["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"].append(
         {"name": "MONITORING_ALERT_TOKEN_FILE", "value": "/home/app/secrets/alert/token"}),
     "/home/app/secrets/alert/token, in no mounted volume"),
    (checks.ingress_routes_and_certificates_exist, "Ingress", "edge",
     lambda m: m["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(name="tracking"),
     "no Service tracking"),
    (checks.ingress_routes_and_certificates_exist, "Ingress", "edge",
     lambda m: m["spec"]["tls"][0]["hosts"].pop(), "host monitoring-ui.ml.example.com has no TLS Secret"),
])
def test_each_check_names_what_is_wrong(full, check, kind, name, change, problem):
    found = check(_broken(full, kind, name, change))
    assert len(found) == 1 and problem in found[0], found


def _models_route(ingress: Manifest, model: str) -> Manifest:
    (path,) = [p for p in ingress["spec"]["rules"][0]["http"]["paths"] if p["path"].startswith(f"/models/{model}(")]
    return path


@pytest.mark.parametrize(("check", "kind", "name", "change", "problem"), [
    (checks.serving_probes_match_the_api, "Deployment", f"serving-{SECOND_MODEL}",
     lambda m: _pod(m)["containers"][0]["startupProbe"]["httpGet"].update(path="/"), "startupProbe asks /,"),
    (checks.scalers_point_at_deployments, "HorizontalPodAutoscaler", f"serving-{SECOND_MODEL}",
     lambda m: m["spec"]["scaleTargetRef"].update(name=f"{SECOND_MODEL}"), f"no Deployment {SECOND_MODEL}"),
    (checks.model_routes_reach_each_models_service, "Ingress", "edge-models",
     lambda m: _models_route(m, SECOND_MODEL)["backend"]["service"].update(name="serving"),
     f"/models/{SECOND_MODEL}/predict reaches ('serving', '/predict'), not ('serving-{SECOND_MODEL}', '/predict')"),
    (checks.model_routes_reach_each_models_service, "Ingress", "edge-models",
     lambda m: m["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/rewrite-target": "/$1"}),
     f"/models/{SECOND_MODEL}/predict reaches ('serving-{SECOND_MODEL}', '//'), not"),
])
def test_each_check_names_what_is_wrong_with_several_models(two_models, check, kind, name, change, problem):
    found = check(_broken(two_models, kind, name, change))
    assert any(problem in line for line in found), found
