"""Evidently monitoring on kubernetes: a drift job per model as a CronJob, the Evidently UI as a Deployment.

As on the docker target each model has its job (`monitoring` for the default model, `monitoring-<name>` for
each other), judging its own log directory by its own policy, with its reports and log index in a folder of its
own on the state claim, and its project in the one workspace the UI shows. Every job's pods carry the
`monitoring` component label, so one network policy and MLflow's one ingress rule cover them all.

A job reads the inference log from serving's shared claim (read-only) and keeps its workspace,
reports and read offsets on a second shared claim that the UI serves. Shared volumes rather than object
storage, because the inference log contract is a directory of append-only files (services/contract.py)
that serving writes and the job reads as files; object storage would need a shipper and another reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from config import PolicySource, StackConfig
from containers import SECRETS_DIR, child_of
from monitoring import (
    MLFLOW_CREDENTIALS_FILE,
    STATE_DIR,
    UI_PORT,
    UI_SECRET_FILE,
    WORKSPACE_DIR,
    drift_alert_files,
    job_state_dir,
)

from kubernetes.workloads import (
    Manifest,
    claim_volume,
    cluster_url,
    container,
    image,
    kube,
    metadata,
    mount,
    pod_spec,
    pod_template,
    probes,
    resources,
    secret,
    secret_volume,
    selector_labels,
    service,
    volume_claim,
)
from services.contract import (
    INFERENCE_LOG_ENV,
    INFERENCE_LOG_MOUNT,
    MONITORED_MODEL_ENV,
    MONITORING_POLICY_ENV,
    MONITORING_REPORTS_ENV,
    MONITORING_WORKSPACE_ENV,
    inference_log_dir,
    monitoring_alias,
)

JOB, UI = "monitoring", "monitoring-ui"
# `python -m services.monitoring` exits 3 on DRIFT, 4 on NOT ENOUGH DATA and 2 on bad settings: a verdict,
# which a retry would only repeat, so the Job fails at once; other failures (MLflow away) are retried.
VERDICT_EXIT_CODES = [2, 3, 4]


@dataclass(frozen=True)
class MonitoringArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace
    tracking_url: str
    inference_log: k8s.core.v1.PersistentVolumeClaim
    # ~/.mlflow/credentials of the job's own MLflow user when MLflow runs with basic auth (a secret), else None.
    tracking_credentials: pulumi.Output[str] | None = None


class Monitoring(pulumi.ComponentResource):
    """A CronJob per model (`monitoring`, `monitoring-<name>`) and the UI, reachable in the namespace as
    http://monitoring-ui:8000."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:Monitoring", name, None, opts)
        config = args.config
        self._name, self._args, self._in_namespace = name, args, child_of(self, depends_on=[args.namespace])
        in_namespace = self._in_namespace
        state = volume_claim(f"{name}-state", config, "monitoring-state", JOB, size_gi=10, shared=True,
                             opts=in_namespace)
        state_volume = claim_volume("state", state.metadata["name"])
        self._image = image(config, "monitoring")
        self._volumes = [claim_volume("inference-log", args.inference_log.metadata["name"], read_only=True),
                         state_volume]
        self._mounts = [mount("inference-log", INFERENCE_LOG_MOUNT, read_only=True), mount("state", STATE_DIR)]
        if args.tracking_credentials is not None:
            credentials = secret(f"{name}-mlflow-credentials", config, f"{JOB}-mlflow-credentials", JOB,
                                 {"credentials": args.tracking_credentials}, in_namespace)
            self._volumes.append(secret_volume("mlflow-credentials", credentials.metadata["name"]))
            self._mounts.append(mount("mlflow-credentials", MLFLOW_CREDENTIALS_FILE.rsplit("/", 1)[0], read_only=True))
        self._alert = drift_alert_files(config)  # the docker target's wiring; network.py opens the way to the webhook
        if self._alert.files:
            alert_files = secret(f"{name}-alert", config, f"{JOB}-alert", JOB, self._alert.files, in_namespace)
            self._volumes.append(secret_volume("alert", alert_files.metadata["name"]))
            self._mounts.append(mount("alert", SECRETS_DIR, read_only=True))
        self.job = self._cron_job(None, config.model_name, config.monitoring)
        self.jobs = {model.name: self._cron_job(model.name, model.name, model.monitoring) for model in config.models}

        ui_secret = config.monitoring_ui_secret
        ui_volumes, ui_mounts = [state_volume], [mount("state", STATE_DIR)]
        if ui_secret is not None:
            stored = secret(f"{name}-ui-secret", config, f"{UI}-secret", UI,
                            {UI_SECRET_FILE.rsplit("/", 1)[1]: ui_secret}, in_namespace)
            ui_volumes.append(secret_volume("ui-secret", stored.metadata["name"]))
            ui_mounts.append(mount("ui-secret", UI_SECRET_FILE.rsplit("/", 1)[0], read_only=True))
        ui = container(
            UI, self._image,
            resources_=resources(config.memory.monitoring_ui, "100m", "1"),
            port=UI_PORT,
            command=["python", "-m", "services.monitoring.ui", "--workspace", WORKSPACE_DIR, "--host", "0.0.0.0",
                     "--port", str(UI_PORT), *(["--secret-file", UI_SECRET_FILE] if ui_secret else [])],
            mounts=ui_mounts,
            # Evidently has no /health; /api/version answers 200 once the UI serves, and stays open with a secret.
            health=probes("/api/version", startup_s=180),
        )
        k8s.apps.v1.Deployment(
            f"{name}-ui",
            metadata=metadata(config, UI, UI),
            spec={
                "replicas": 1,  # the workspace is files on one claim; one reader keeps it simple
                "selector": {"matchLabels": selector_labels(config, UI)},
                "strategy": {"type": "Recreate"},
                "template": pod_template(config, UI, pod_spec([ui], ui_volumes)),
            },
            opts=in_namespace,
        )
        service(f"{name}-ui-service", config, UI, UI, UI_PORT, in_namespace)
        self.ui_url = pulumi.Output.from_input(cluster_url(config, UI, UI_PORT))
        self.register_outputs({"ui_url": self.ui_url})

    def _cron_job(self, model: str | None, model_name: str, monitoring: PolicySource) -> k8s.batch.v1.CronJob:
        """`model_name`'s job (`model` None: the default model's), judging its own log by its own policy."""
        config, name, job_name = self._args.config, self._name, monitoring_alias(model)
        job = container(
            JOB, self._image,
            resources_=resources(config.memory.monitoring, "250m", "1"),
            command=["python", "-m", "services.monitoring"],
            env={
                "MLFLOW_TRACKING_URI": self._args.tracking_url,
                MONITORED_MODEL_ENV: model_name,
                INFERENCE_LOG_ENV: inference_log_dir(model),
                MONITORING_WORKSPACE_ENV: WORKSPACE_DIR,
                MONITORING_REPORTS_ENV: f"{job_state_dir(model)}/reports",
                MONITORING_POLICY_ENV: monitoring.policy.to_json(),  # its interval is the CronJob's schedule
                **self._alert.env,
            },
            mounts=self._mounts,
        )
        return k8s.batch.v1.CronJob(
            f"{name}-job" + ("" if model is None else f"-{model}"),
            metadata=metadata(config, job_name, JOB, model=model),
            spec={
                "schedule": kube(config).monitoring_schedules[model],
                # Two runs at once would judge the same rows twice and race on the read offsets.
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 300,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"metadata": {"labels": selector_labels(config, JOB)}, "spec": _job_spec(
                    pod_template(config, JOB, pod_spec([job], self._volumes, restartPolicy="Never"), model=model))},
            },
            opts=self._in_namespace,
        )


def _job_spec(template: Manifest) -> Manifest:
    return {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 3600,
        "ttlSecondsAfterFinished": 86400,
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": JOB, "operator": "In", "values": VERDICT_EXIT_CODES}}]},
        "template": template,
    }
