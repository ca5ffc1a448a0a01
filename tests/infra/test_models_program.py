"""Several models on one docker stack, under mocks (issue 21, "Stack config" and "Serving"): the stack file
declares them (`models`), each model but the default has its own release keys, containers and aliases, the front
routes `/models/<name>/` to each, and the config loader and the policy pack refuse what would break that."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from services.contract import MODEL_LABEL
from services.front.model_routes import BACKENDS_FILE, MAP_FILE
from tests.infra.program import CONTAINER, REPO_ROOT, run_program
from tests.infra.test_stack_program import SMOKE, load_module

MODELS = json.dumps([{"name": "loan-default"}, {"name": "bike-rentals", "servingMemoryMb": 768,
                                                 "canaryPercent": 20}])
CHAMPIONS = {"models": MODELS, "servingImage": "mlops-serving:v7-a", "modelVersion": "7",
             "servingImage.bike-rentals": "mlops-serving:v3-b", "modelVersion.bike-rentals": "3"}


def uploaded(container, path: str) -> str:
    (content,) = [upload["content"] for upload in container.plain["uploads"] if upload["file"] == path]
    return content


def labels_of(container) -> dict[str, str]:
    return {item["label"]: item["value"] for item in container.plain["labels"]}


def test_each_model_has_its_own_containers_aliases_and_route():
    stack = run_program(CHAMPIONS)
    default, bikes = stack.container("serving"), stack.container("release-bike-rentals")
    assert default.plain["image"] == "mlops-serving:v7-a" and bikes.plain["image"] == "mlops-serving:v3-b"
    assert bikes.plain["name"].startswith("mlops-release-bike-rentals-v3-")
    assert (default.plain["memory"], bikes.plain["memory"]) == (1024, 768)
    assert (labels_of(default)[MODEL_LABEL], labels_of(bikes)[MODEL_LABEL]) == ("loan-default", "bike-rentals")
    assert bikes.plain["volumes"] == default.plain["volumes"]  # one inference log; each record names its model
    front = stack.container("front")
    assert uploaded(front, MAP_FILE) == "loan-default default\nbike-rentals model-bike-rentals\n"
    backends = uploaded(front, BACKENDS_FILE)
    assert "backend model-bike-rentals-ready\n" in backends and "release-bike-rentals:3000" in backends
    assert "serving:3000" not in backends  # the default model's servers are in no other model's backend
    assert (stack.exports["model_version"], stack.exports["model_version.bike-rentals"]) == ("7", "3")
    assert stack.exports["serving_image.bike-rentals"] == "mlops-serving:v3-b"


def test_a_release_of_one_model_changes_none_of_the_others_containers_or_the_front():
    before = run_program(CHAMPIONS, SMOKE)
    during = run_program({**CHAMPIONS, "candidateImage.bike-rentals": "mlops-serving:v4-b",
                          "candidateVersion.bike-rentals": "4"}, SMOKE)
    assert during.container("candidate-bike-rentals").plain["image"] == "mlops-serving:v4-b"
    for alias in ("serving", "front", "release-bike-rentals"):
        assert during.container(alias).plain == before.container(alias).plain, alias
    canary = run_program({**CHAMPIONS, "canaryImage.bike-rentals": "mlops-serving:v4-b",
                          "canaryVersion.bike-rentals": "4"}, SMOKE).container("canary-bike-rentals")
    assert "SERVING_CANARY_WEIGHT_PERCENT=25" in canary.plain["envs"]  # its own canaryPercent, 20 %: 25 / 125


def test_a_declared_model_without_a_release_has_no_container_and_a_stack_without_models_routes_its_one():
    stack = run_program({"models": MODELS})
    assert not [c for c in stack.of_type(CONTAINER) if labels_of(c).get(MODEL_LABEL) == "bike-rentals"]
    assert uploaded(run_program().container("front"), MAP_FILE) == "loan-default default\n"
    assert uploaded(run_program().container("front"), BACKENDS_FILE) == ""
    one = run_program({"models": json.dumps([{"name": "loan-default", "servingMemoryMb": 512}])})
    assert one.container("serving").plain["memory"] == 512  # the default model's entry counts too


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"models": json.dumps([{"name": "a"}, {"name": "a"}])}, "both serve /models/a/: two models on one route"),
        ({"models": json.dumps([{"name": "Bike_Rentals"}])}, "models[0].name 'Bike_Rentals' is not a DNS label"),
        ({"models": json.dumps([{"name": "a", "replicas": 2}])}, "models[0] has unknown field(s) replicas"),
        ({"models": json.dumps([{"name": "a", "servingMemoryMb": "lots"}])}, "models[0].servingMemoryMb must be"),
        ({"models": json.dumps({"name": "a"})}, "models: must be a non-empty list"),
        ({"models": json.dumps([{"name": "a"}]), "modelName": "b"}, "modelName: 'b' is not in models (a)"),
        ({"modelName": "loan_default"}, "modelName: 'loan_default' is not a DNS label"),
        ({"servingImage.forecast": "mlops-serving:v1"}, "servingImage.forecast is the key of model 'forecast'"),
        ({"models": MODELS, "servingImage.loan-default": "mlops-serving:v9"},
         "servingImage.loan-default is a key of the default model 'loan-default', whose release keys have no suffix: "
         "write servingImage"),
        ({**CHAMPIONS, "canaryImage.bike-rentals": "mlops-serving:v4-b"}, "smokeToken: is required"),
        ({"models": MODELS, "canaryImage.bike-rentals": "mlops-serving:v4-b"},
         "canaryImage.bike-rentals: a canary needs a champion beside it: set servingImage.bike-rentals too"),
    ],
)
def test_bad_models_config_fails_naming_the_key(config, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config)
    assert message in str(raised.value)


def test_the_policy_pack_refuses_a_model_served_without_a_credential_on_an_exposed_stack():
    policies = load_module(REPO_ROOT / "infra" / "policy" / "policies.py")
    exposed = {"exposePorts": "true", "authEnabled": "true"}
    from tests.infra.test_stack_program import AUTH_SECRETS

    guarded = [c.plain for c in run_program({**CHAMPIONS, **exposed}, AUTH_SECRETS).of_type(CONTAINER)]
    assert policies.exposed_models_without_auth(guarded) == []
    # A fork's edit that leaves one model's container open behind the public front.
    opened = [{**props, "labels": [{"label": "mlops-platform.access", "value": "open"} if item["label"] ==
                                   "mlops-platform.access" else item for item in props["labels"]]}
              if {"label": MODEL_LABEL, "value": "bike-rentals"} in props["labels"] else props for props in guarded]
    (violation,) = policies.exposed_models_without_auth(opened)
    assert "model 'bike-rentals' is served by a container that requires no credential" in violation
    loopback = [c.plain for c in run_program(CHAMPIONS).of_type(CONTAINER)]  # nothing public: nothing relayed
    assert policies.exposed_models_without_auth(loopback) == []


def test_prometheus_scrapes_every_models_containers():
    prometheus = run_program(CHAMPIONS).container("prometheus")
    (scrape,) = [upload["content"] for upload in prometheus.plain["uploads"]
                 if upload["file"] == "/etc/prometheus/prometheus.yml"]
    (serving,) = [job for job in yaml.safe_load(scrape)["scrape_configs"] if job["job_name"] == "serving"]
    assert serving["dns_sd_configs"][0]["names"] == ["serving", "serving-canary", "serving-candidate",
                                                     "release-bike-rentals", "canary-bike-rentals",
                                                     "candidate-bike-rentals"]
