"""A release on a stack serving several models (issue 21): which model it is there, its keys and route, and an
apply that carries every other model's pointer untouched (pipelines/stack_models.py, pipelines/stack.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from pipelines import stack
from pipelines.bento import BuiltBento
from pipelines.deploy import DeployError
from pipelines.stack import StackTarget
from pipelines.stack_models import StackModel, stack_model, stack_models
from tests.unit.test_release_failures import CONFIG, FailingStack, KnownPointer

TWO = {"namePrefix": "mlops", "models": json.dumps([{"name": "loan-default"}, {"name": "bike-rentals"}])}


def test_the_default_model_keeps_the_single_model_keys_and_root_and_another_has_its_own():
    default, bikes = stack_models(TWO)
    assert (default, bikes) == (StackModel("loan-default", None), StackModel("bike-rentals", "bike-rentals"))
    assert default.key("servingImage") == "servingImage" and bikes.key("servingImage") == "servingImage.bike-rentals"
    assert default.url("http://h:3") == "http://h:3" and bikes.url("http://h:3") == "http://h:3/models/bike-rentals"
    assert (default.front_backend, bikes.front_backend) == ("ready", "model-bike-rentals-ready")
    # Where its servers write the inference log: its canary reads only that folder.
    assert default.inference_log == "/var/lib/inference"
    assert bikes.inference_log == "/var/lib/inference/models/bike-rentals"
    assert stack_models({**TWO, "modelName": "bike-rentals"})[0] == StackModel("bike-rentals", None)
    # A kubernetes stack has no front in the cluster: each model answers at its own Service's URL.
    outputs = {"serving_url": "http://serving.ns.svc.cluster.local:3000",
               "serving_url.bike-rentals": "http://serving-bike-rentals.ns.svc.cluster.local:3000"}
    assert [model.url_in(outputs) for model in (default, bikes)] == list(outputs.values())
    assert bikes.url_in({"serving_url": "http://h:3"}) == "http://h:3/models/bike-rentals"


def test_a_stack_without_models_serves_whichever_model_its_releases_bring():
    assert stack_model({"namePrefix": "mlops"}, "churn") == StackModel("churn", None)


def test_a_stack_declaring_its_models_refuses_another():
    with pytest.raises(DeployError, match=r"stack 'mlops' does not serve model 'forecast' \(it serves loan-default, "
                                          r"bike-rentals\).*Add `- name: forecast`"):
        stack_model(TWO, "forecast")
    with pytest.raises(DeployError, match="stack config models is not a list of models with names"):
        stack_models({"models": "[1, 2]"})


class TwoModelStack(FailingStack):
    def config(self) -> Mapping[str, str]:
        return TWO


def test_a_release_of_one_model_sets_only_its_keys_and_carries_the_others(monkeypatch):
    monkeypatch.setattr(stack, "build_release_image", lambda *args: "mlops-serving:v4-b")
    monkeypatch.setattr(BuiltBento, "model_version", property(lambda self: "4"))
    serving = {"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
               "servingImage.bike-rentals": "mlops-serving:v3-b", "modelVersion.bike-rentals": "3"}
    applier = TwoModelStack("apply")
    bento = BuiltBento("bike-rentals:v4", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    config = CONFIG.model_copy(update={"model_name": "bike-rentals"})
    with pytest.raises(DeployError, match="unhealthy"):
        StackTarget(config, applier, pointer=KnownPointer(serving)).roll_out(bento, smoke=[])  # type: ignore[arg-type]
    assert applier.applied == [
        {**serving, "candidateImage.bike-rentals": "mlops-serving:v4-b", "candidateVersion.bike-rentals": "4"},
        {**serving, "candidateImage.bike-rentals": "", "candidateVersion.bike-rentals": "none"}]


def docker_listing(monkeypatch):
    """`docker ps` and `docker inspect` as a stack of two models answers them (the default model, bike-rentals)."""
    from types import SimpleNamespace

    from pipelines import status

    listed = "\n".join(["mlops-serving-v7-0a1b2c3d4e\tmlops\tloan-default",
                        "mlops-release-bike-rentals-v3-1a2b3c4d5e\tmlops\tbike-rentals",
                        "mlops-canary-bike-rentals-v4-2a3b4c5d6e\tmlops\tbike-rentals",
                        "mlops-candidate-bike-rentals-v5-3a4b5c6d7e\tmlops\tbike-rentals",
                        "mlops-front\tmlops\t"])

    def docker(command, **kwargs):
        if command[1] == "inspect":
            return SimpleNamespace(returncode=0, stdout='["SERVING_CANARY_WEIGHT_PERCENT=25"]')
        return SimpleNamespace(returncode=0, stdout=listed)

    monkeypatch.setattr(status.subprocess, "run", docker)
    return status


def test_status_shows_each_model_on_a_stack(monkeypatch):
    status = docker_listing(monkeypatch)
    assert status.stack_serving() == {
        "stack mlops": "bike-rentals v3, canary v4 (20% of requests); loan-default v7"}


def test_the_versions_a_stack_serves_are_those_of_the_model_asked_about(monkeypatch):
    """Retire and gc keep what serves: bike-rentals v3 serving keeps no loan-default v3 from retiring."""
    status = docker_listing(monkeypatch)
    assert status.stack_versions("loan-default") == {"7"}
    assert status.stack_versions("bike-rentals") == {"3", "4"}
    assert status.stack_versions("churn") == set()


def test_a_release_of_one_model_on_kubernetes_checks_that_models_own_service(monkeypatch):
    """No front there: the checks port-forward to the model's Service (infra/kubernetes/serving.py names it)."""
    forwarded = []

    @contextlib.contextmanager
    def port_forward(namespace: str, service: str, port: int):
        forwarded.append((namespace, service, port))
        yield "http://127.0.0.1:9"  # the discard port: the check fails, and the release restores what served

    class KubernetesStack(TwoModelStack):
        def config(self) -> Mapping[str, str]:
            return {**TWO, "target": "kubernetes"}

        def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
            self.applied.append(dict(changes))
            return {"serving_url": "http://serving.mlops-dev.svc.cluster.local:3000",
                    "kubernetes_namespace": "mlops-dev"}

    monkeypatch.setattr(stack, "build_release_image", lambda *args: "mlops-serving:v4-b")
    monkeypatch.setattr(stack, "push_release_image", lambda image, registry: image)
    monkeypatch.setattr(stack, "port_forward", port_forward)
    monkeypatch.setattr(BuiltBento, "model_version", property(lambda self: "4"))
    serving = {"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
               "servingImage.bike-rentals": "mlops-serving:v3-b", "modelVersion.bike-rentals": "3"}
    applier = KubernetesStack("check")
    bento = BuiltBento("bike-rentals:v4", model=None, path=Path("/nonexistent"), reused=True)  # type: ignore[arg-type]
    config = CONFIG.model_copy(update={"model_name": "bike-rentals"})
    config = config.model_copy(update={"platform": config.platform.model_copy(update={"startup_timeout_s": 1})})
    with pytest.raises(DeployError):
        StackTarget(config, applier, pointer=KnownPointer(serving)).roll_out(bento, smoke=[])  # type: ignore[arg-type]
    assert forwarded == [("mlops-dev", "serving-bike-rentals", 3000)]
    assert applier.applied[0]["servingImage.bike-rentals"] == "mlops-serving:v4-b"
    assert applier.applied[-1]["servingImage.bike-rentals"] == "mlops-serving:v3-b"  # restored
