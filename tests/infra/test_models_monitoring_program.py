"""Each declared model monitored on its own, and served with its own workers, under mocks (issue 21, "Monitoring"
and "Stack config"): a monitoring job per model with the policy of the model's own pipeline config, reading only
that model's inference log folder, scraped by Prometheus; `servingWorkers` reaching that model's containers only."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from services.contract import MONITORING_POLICY_ENV
from services.monitoring.policy import MonitoringPolicy, checked_policy
from tests.infra.program import CONTAINER, REPO_ROOT, run_program
from tests.infra.test_models_program import CHAMPIONS
from tests.infra.test_stack_program import SMOKE

BIKES_POLICY = {"drift_share_threshold": 0.45, "min_rows": 60, "interval_minutes": 10}
WORKERS = "BENTOML_CONFIG_OPTIONS"


def env_of(container) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.plain["envs"])


def models(*entries: dict) -> dict[str, str]:
    return {**CHAMPIONS, "models": json.dumps(list(entries))}


def test_each_model_has_its_own_job_with_its_own_policy_and_log_folder(pipeline_config):
    bikes_file = pipeline_config(BIKES_POLICY, model_name="bike-rentals")
    stack = run_program(models({"name": "loan-default"}, {"name": "bike-rentals", "pipelineConfig": bikes_file}))
    default, bikes = env_of(stack.container("monitoring")), env_of(stack.container("monitoring-bike-rentals"))
    assert (default["MODEL_NAME"], bikes["MODEL_NAME"]) == ("loan-default", "bike-rentals")
    assert json.loads(bikes[MONITORING_POLICY_ENV]) == json.loads(MonitoringPolicy(**BIKES_POLICY).to_json())
    assert json.loads(default[MONITORING_POLICY_ENV]) == json.loads(run_env("monitoring")[MONITORING_POLICY_ENV])
    # Each reads only its own model's folder of the one log volume, where that model's servers write.
    assert (default["INFERENCE_LOG_DIR"], bikes["INFERENCE_LOG_DIR"]) == (
        "/var/lib/inference", "/var/lib/inference/models/bike-rentals")
    assert env_of(stack.container("serving"))["INFERENCE_LOG_DIR"] == "/var/lib/inference"
    assert env_of(stack.container("release-bike-rentals"))["INFERENCE_LOG_DIR"] == bikes["INFERENCE_LOG_DIR"]
    # Its own reports and log index; one workspace (a project per model) that the one UI serves.
    assert bikes["MONITORING_REPORTS_DIR"] == "/var/lib/monitoring/models/bike-rentals/reports"
    assert bikes["MONITORING_WORKSPACE"] == default["MONITORING_WORKSPACE"]
    assert stack.container("monitoring-bike-rentals").plain["volumes"] == stack.container("monitoring").plain["volumes"]
    assert len([c for c in stack.of_type(CONTAINER) if c.plain["name"].startswith("mlops-monitoring-ui")]) == 1


def run_env(alias: str) -> dict[str, str]:
    """A single-model stack's container env: what the default model's containers keep beside other models."""
    return env_of(run_program().container(alias))


def test_a_single_model_stack_keeps_its_one_job_and_the_default_models_job_is_unchanged():
    single = run_program()
    assert sorted(c.plain["name"] for c in single.of_type(CONTAINER) if "-monitoring" in c.plain["name"]) == [
        "mlops-monitoring", "mlops-monitoring-ui"]
    beside = run_program(models({"name": "loan-default"}, {"name": "bike-rentals"}))
    assert beside.container("monitoring").plain == single.container("monitoring").plain


def test_a_model_without_pipeline_config_is_monitored_by_its_folders():
    job = env_of(run_program(models({"name": "loan-default"}, {"name": "bike-rentals"}))
                 .container("monitoring-bike-rentals"))
    folder = yaml.safe_load((REPO_ROOT / "models" / "bike-rentals" / "pipeline.yaml").read_text())
    expected = checked_policy(folder.get("monitoring") or {})
    assert json.loads(job[MONITORING_POLICY_ENV]) == json.loads(expected.to_json())


def test_the_default_models_entry_may_name_its_config(pipeline_config):
    own = pipeline_config({"drift_share_threshold": 0.6})
    job = env_of(run_program(models({"name": "loan-default", "pipelineConfig": own}, {"name": "bike-rentals"}))
                 .container("monitoring"))
    assert json.loads(job[MONITORING_POLICY_ENV])["drift_share_threshold"] == 0.6


def test_prometheus_scrapes_every_models_monitoring_job():
    prometheus = run_program(CHAMPIONS).container("prometheus")
    (scrape,) = [upload["content"] for upload in prometheus.plain["uploads"]
                 if upload["file"] == "/etc/prometheus/prometheus.yml"]
    (job,) = [job for job in yaml.safe_load(scrape)["scrape_configs"] if job["job_name"] == "monitoring"]
    assert job["static_configs"] == [{"targets": ["monitoring:9108", "monitoring-bike-rentals:9108"]}]


def test_serving_workers_reach_that_models_containers_only():
    config = {**models({"name": "loan-default"}, {"name": "bike-rentals", "servingWorkers": 3}),
              "canaryImage.bike-rentals": "mlops-serving:v4-b", "canaryVersion.bike-rentals": "4"}
    stack = run_program(config, SMOKE)
    for alias in ("release-bike-rentals", "canary-bike-rentals"):
        assert env_of(stack.container(alias))[WORKERS] == "services.Serving.workers=3", alias
    assert WORKERS not in env_of(stack.container("serving"))  # its bento's own (its config's serving.workers)
    default = run_program(models({"name": "loan-default", "servingWorkers": 2}, {"name": "bike-rentals"}))
    assert env_of(default.container("serving"))[WORKERS] == "services.Serving.workers=2"
    assert WORKERS not in env_of(default.container("release-bike-rentals"))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"servingWorkers": 0}, "models[1].servingWorkers must be a whole number between 1 and 64 (got 0)"),
        ({"servingWorkers": "two"}, "models[1].servingWorkers must be a whole number between 1 and 64 (got 'two')"),
        ({"servingWorkers": True}, "models[1].servingWorkers must be a whole number"),
        ({"pipelineConfig": 5}, "models[1].pipelineConfig must be the path of the model's pipeline config (got 5)"),
        ({"pipelineConfig": "models/absent.yaml"}, "models[1].pipelineConfig: models/absent.yaml not found"),
        ({"name": "forecast"},
         "models[1].pipelineConfig (unset: the model's folder's) models/forecast/pipeline.yaml not found"),
    ],
)
def test_a_bad_models_entry_fails_naming_it(entry, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"models": json.dumps([{"name": "loan-default"}, {"name": "bike-rentals", **entry}])})
    assert f"stack config mlops-platform:models: {message}" in str(raised.value)


def test_a_models_policy_file_must_be_that_models_and_valid(pipeline_config):
    for entry, message in [
        ({"pipelineConfig": pipeline_config({}, model_name="churn")},
         "is the config of model 'churn', but models[1].name is 'bike-rentals'"),
        ({"pipelineConfig": pipeline_config({"drift_share_threshold": 2})},
         "monitoring.drift_share_threshold: Input should be less than or equal to 1 (got 2)"),
    ]:
        with pytest.raises(pulumi.RunError) as raised:
            run_program({"models": json.dumps([{"name": "loan-default"}, {"name": "bike-rentals", **entry}])})
        assert f"mlops-platform:models: models[1].pipelineConfig: {entry['pipelineConfig']}" in str(raised.value)
        assert message in str(raised.value)
    both = {"models": json.dumps([{"name": "loan-default", "pipelineConfig": pipeline_config({})}]),
            "pipelineConfig": pipeline_config({})}
    with pytest.raises(pulumi.RunError, match="models\\[0\\].pipelineConfig and mlops-platform:pipelineConfig both"):
        run_program(both)
