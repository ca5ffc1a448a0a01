"""Prometheus on the docker stack, under mocks: its image, TSDB volume, network, port, memory and token file."""

from __future__ import annotations

import pulumi
import pytest

from tests.infra.program import IMAGE, VOLUME, run_program
from tests.infra.test_stack_program import AUTH_SECRETS, HARDENED, HARDENED_SECRETS

TOKEN_FILE = "/home/app/secrets/serving-token"


@pytest.fixture(scope="module")
def default_stack():
    return run_program()


def test_prometheus_runs_its_own_image_on_the_platform_network_as_the_app_user(default_stack):
    prometheus = default_stack.container("prometheus")
    (image,) = [i for i in default_stack.of_type(IMAGE) if i.plain["imageName"] == "mlops-prometheus:latest"]
    assert image.plain["build"]["dockerfile"].endswith("services/prometheus/Dockerfile")
    assert prometheus.plain["image"] == "mlops-prometheus:latest"
    assert prometheus.plain["user"] == "10001:10001"
    assert prometheus.plain["networksAdvanced"] == [{"name": "mlops-net", "aliases": ["prometheus"]}]
    assert "/-/ready" in " ".join(prometheus.plain["healthcheck"]["tests"])
    assert prometheus.plain["memory"] == 384


def test_its_tsdb_lives_on_a_volume(default_stack):
    (mount,) = default_stack.container("prometheus").plain["volumes"]
    assert mount == {"volumeName": "mlops-prometheus-tsdb", "containerPath": "/var/lib/prometheus/tsdb",
                     "readOnly": False}
    assert "mlops-prometheus-tsdb" in {v.plain["name"] for v in default_stack.of_type(VOLUME)}


def test_its_port_and_memory_come_from_the_stack_config():
    stack = run_program({"prometheusPort": "19090", "prometheusMemoryMb": "640"})
    prometheus = stack.container("prometheus")
    assert prometheus.plain["ports"] == [{"internal": 9090, "external": 19090, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert prometheus.plain["memory"] == 640
    assert stack.exports["prometheus_url"] == "http://127.0.0.1:19090"


def test_a_port_taken_by_another_service_is_refused():
    with pytest.raises(pulumi.RunError, match="published ports must differ"):
        run_program({"prometheusPort": "3000"})


def test_with_exposed_ports_it_is_reachable_on_the_network_only():
    # It has no credential of its own: the policy pack lets only access-controlled containers go public.
    stack = run_program(HARDENED, HARDENED_SECRETS)
    prometheus = stack.container("prometheus")
    assert not prometheus.plain.get("ports")
    assert "prometheus_url" not in stack.exports


def test_without_auth_it_keeps_the_images_placeholder_token(default_stack):
    assert not default_stack.container("prometheus").plain.get("uploads")


def test_with_auth_it_gets_the_serving_token_as_a_secret_file():
    stack = run_program({"authEnabled": "true"}, AUTH_SECRETS)
    prometheus = stack.container("prometheus")
    (upload,) = prometheus.plain["uploads"]
    assert upload["file"] == TOKEN_FILE and upload["content"] == AUTH_SECRETS["servingToken"]
    assert upload["permissions"] == "0600" and (upload["owner"], upload["group"]) == ("10001", "10001")
    assert AUTH_SECRETS["servingToken"] not in repr(prometheus.plain.get("envs")) + repr(stack.exports)
