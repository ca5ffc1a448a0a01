"""services/prometheus agrees with the parts it reads: the front's servers and exporter, the serving metric and
the token file infra uploads. (`promtool check config` and `check rules` run in its image build.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.contract import MODEL_INFO_METRIC
from tests.infra.program import program_module

SERVICES = Path(__file__).resolve().parents[2] / "services"
SCRAPE = yaml.safe_load((SERVICES / "prometheus" / "prometheus.yml").read_text())
RULES = [rule for path in sorted((SERVICES / "prometheus" / "rules").glob("*.yml"))
         for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
HAPROXY = (SERVICES / "front" / "haproxy.cfg").read_text()


def job(name: str) -> dict:
    (found,) = [j for j in SCRAPE["scrape_configs"] if j["job_name"] == name]
    return found


def test_serving_containers_are_found_by_the_names_the_front_routes_to():
    (dns,) = job("serving")["dns_sd_configs"]
    front_servers = set(re.findall(r"server-template \w+ \d+ ([\w-]+):3000", HAPROXY))
    assert set(dns["names"]) == front_servers == {"serving", "serving-canary", "serving-candidate"}
    assert dns["port"] == 3000 and dns["type"] == "A"


def test_the_front_is_scraped_on_its_exporter_port():
    (targets,) = job("front")["static_configs"]
    port = re.search(r"frontend metrics\n\s+bind :(\d+)", HAPROXY).group(1)
    assert targets["targets"] == [f"front:{port}"]
    assert "use-service prometheus-exporter" in HAPROXY


def test_the_token_file_is_the_one_infra_uploads():
    prometheus = program_module("prometheus")
    assert job("serving")["authorization"]["credentials_file"] == prometheus.SERVING_TOKEN_FILE


def test_every_per_model_series_is_joined_with_the_servers_model_info():
    recorded = {rule["record"]: rule["expr"] for rule in RULES if "record" in rule}
    per_model = {name: expr for name, expr in recorded.items() if name.startswith("model_version:")}
    assert {"model_version:requests:rate1m", "model_version:error_ratio:rate1m", "model_version:latency_seconds:p50",
            "model_version:latency_seconds:p99"} <= per_model.keys()
    for name, expr in per_model.items():
        assert f"group_left (model_name, model_version) {MODEL_INFO_METRIC}" in expr or \
            expr.split("/")[0].strip() in recorded, name


def test_serving_alerts_read_only_recorded_series():
    recorded = {rule["record"] for rule in RULES if "record" in rule}
    alerts = {rule["alert"]: rule["expr"] for rule in RULES if "alert" in rule}
    assert set(alerts) == {"ModelErrorRateHigh", "ModelLatencyP99High", "ModelDrift", "ModelLiveFairness",
                           "MonitoringRunsFailing"}  # the last three read the monitoring job's own series
    for name in ("ModelErrorRateHigh", "ModelLatencyP99High"):
        assert alerts[name].split(" ")[0] in recorded
