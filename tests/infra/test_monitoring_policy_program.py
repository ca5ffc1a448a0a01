"""The served model's monitoring policy reaches the stack's job: from its pipeline config, as one JSON env var."""

from __future__ import annotations

import json

import pulumi
import pytest

from services.contract import MONITORING_POLICY_ENV
from services.monitoring.policy import MonitoringPolicy
from tests.infra.program import REPO_ROOT, run_program
from tests.kubernetes.manifests import SMALL, declare, manifests, named

THRESHOLDS = {"min_rows": 40, "drift_share_threshold": 0.55, "window_hours": 6, "on_drift": "none",
              "cooldown_minutes": 15, "interval_minutes": 15, "min_labeled_rows": 20,
              "max_missing_share_increase": 0.2, "log_retention_days": 9}


def job_env(stack) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in stack.container("monitoring").plain["envs"])


def cronjob(stack) -> dict:
    return named(manifests(stack), "CronJob", "monitoring")["spec"]


def cronjob_env(stack) -> dict[str, str]:
    (container,) = cronjob(stack)["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def test_the_demo_configs_policy_reaches_the_job_by_default():
    from pipelines.config import load_config

    demo = load_config(REPO_ROOT / "pipelines" / "pipeline.yaml").monitoring
    env = job_env(run_program())
    assert json.loads(env[MONITORING_POLICY_ENV]) == json.loads(demo.to_json())
    assert not {name for name in env if name.startswith("MONITORING_INTERVAL")}


def test_non_default_thresholds_reach_the_docker_job(pipeline_config):
    alert = {"webhook_url_file": "/run/secrets/hook"}  # the local run's alert: the stack has its own
    path = pipeline_config({**THRESHOLDS, "alert": alert}, model_name="loan-default")
    policy = json.loads(job_env(run_program({"pipelineConfig": path}))[MONITORING_POLICY_ENV])
    assert policy == json.loads(MonitoringPolicy(**THRESHOLDS).to_json())


def test_non_default_thresholds_reach_the_kubernetes_cronjob_and_its_schedule(pipeline_config):
    stack = declare({**SMALL, "pipelineConfig": pipeline_config(THRESHOLDS)})
    assert json.loads(cronjob_env(stack)[MONITORING_POLICY_ENV]) == json.loads(MonitoringPolicy(**THRESHOLDS).to_json())
    assert cronjob(stack)["schedule"] == "*/15 * * * *"


@pytest.mark.parametrize(("minutes", "schedule"), [(1, "*/1 * * * *"), (60, "0 * * * *"), (360, "0 */6 * * *"),
                                                   (1440, "0 0 * * *")])
def test_the_cronjob_schedule_follows_the_policys_interval(pipeline_config, minutes, schedule):
    stack = declare({**SMALL, "pipelineConfig": pipeline_config({"interval_minutes": minutes})})
    assert cronjob(stack)["schedule"] == schedule


def test_an_interval_cron_cannot_keep_is_refused_naming_the_file_and_key(pipeline_config):
    path = pipeline_config({"interval_minutes": 7})
    with pytest.raises(pulumi.RunError, match="CronJob schedule") as raised:
        declare({**SMALL, "pipelineConfig": path})
    assert f"mlops-platform:pipelineConfig: {path}: monitoring.interval_minutes: on the kubernetes" in str(raised.value)


def test_the_old_interval_key_is_refused_saying_where_it_moved():
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"monitoringIntervalMinutes": "5"})
    message = str(raised.value)
    assert "mlops-platform:monitoringIntervalMinutes is gone" in message
    assert "set monitoring.interval_minutes in the model's pipeline config" in message
    assert "mlops-platform:pipelineConfig" in message and "pipelines/pipeline.yaml" in message


@pytest.mark.parametrize(("monitoring", "top", "message"), [
    ({"drift_share_threshold": 1.5}, {},
     "monitoring.drift_share_threshold: Input should be less than or equal to 1 (got 1.5)"),
    ({"min_rows": 10, "drift_treshold": 0.2}, {}, "monitoring.drift_treshold: unknown key"),
    ({"interval_minutes": 0}, {}, "monitoring.interval_minutes: Input should be greater than 0"),
    ("often", {}, "monitoring must be a mapping of settings"),
    ({}, {"model_name": "churn"}, "is the config of model 'churn', but modelName is 'loan-default'"),
])
def test_a_bad_policy_stops_the_program_naming_the_file_and_the_key(pipeline_config, monitoring, top, message):
    path = pipeline_config(monitoring, **top)
    with pytest.raises(pulumi.RunError) as raised:
        run_program({"pipelineConfig": path})
    assert f"stack config mlops-platform:pipelineConfig: {path}" in str(raised.value)
    assert message in str(raised.value)


def test_a_missing_pipeline_config_is_named():
    with pytest.raises(pulumi.RunError, match="mlops-platform:pipelineConfig: models/absent/pipeline.yaml not found"):
        run_program({"pipelineConfig": "models/absent/pipeline.yaml"})
