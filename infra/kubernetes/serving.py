"""BentoML serving on kubernetes: the release image of one model version, at least two replicas.

A rollout starts a new pod before an old one stops (`maxUnavailable: 0`) and sends it traffic only
once `/readyz` answers; the HorizontalPodAutoscaler adds replicas on CPU and the PodDisruptionBudget
keeps one serving through node drains. Every replica appends to the inference log on a shared
(ReadWriteMany) claim, in files named by its pod, which the monitoring CronJob reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig
from containers import SECRETS_DIR, child_of
from serving import SERVING_PORT

from kubernetes.workloads import (
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
    SERVING_RUNTIME_REPOSITORY,
    SERVING_TOKEN_FILE_ENV,
    SMOKE_TOKEN_FILE_ENV,
)

COMPONENT = "serving"
BENTOML_HOME = "/home/app/bentoml"  # the images' BENTOML_HOME: BentoML writes there at start
CPU_TARGET_PERCENT = 70


@dataclass(frozen=True)
class ServingArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace


class Serving(pulumi.ComponentResource):
    """The model server, reachable in the namespace as http://serving:3000."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:Serving", name, None, opts)
        config, settings = args.config, kube(args.config)
        in_namespace = child_of(self, depends_on=[args.namespace])
        self.inference_log = volume_claim(f"{name}-inference-log", config, "inference-log", COMPONENT, size_gi=20,
                                          shared=True, opts=in_namespace)
        self.image_name = config.serving_image or image(config, SERVING_RUNTIME_REPOSITORY)
        self.model_version = config.model_version

        env = {INFERENCE_LOG_ENV: INFERENCE_LOG_MOUNT}
        files = {}
        for variable, token, file in ((SERVING_TOKEN_FILE_ENV, config.serving_token, "serving-token"),
                                      (SMOKE_TOKEN_FILE_ENV, config.smoke_token, "smoke-token")):
            if token is not None:
                env[variable] = f"{SECRETS_DIR}/{file}"
                files[file] = token
        volumes = [claim_volume("inference-log", self.inference_log.metadata["name"]),
                   {"name": "bentoml-home", "emptyDir": {"sizeLimit": "1Gi"}}]
        mounts = [mount("inference-log", INFERENCE_LOG_MOUNT), mount("bentoml-home", BENTOML_HOME)]
        if files:
            tokens = secret(f"{name}-tokens", config, f"{COMPONENT}-tokens", COMPONENT, files, in_namespace)
            volumes.append(secret_volume("tokens", tokens.metadata["name"]))
            mounts.append(mount("tokens", SECRETS_DIR, read_only=True))
        server = container(
            COMPONENT, self.image_name,
            resources_=resources(config.memory.serving, "500m", "2"),
            port=SERVING_PORT,
            env=env,
            mounts=mounts,
            health=probes("/livez", ready_path="/readyz", startup_s=180),
        )
        spread = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                  "labelSelector": {"matchLabels": selector_labels(config, COMPONENT)}}
        annotations = {"mlops-platform/model-version": config.model_version}
        if not config.serving_image:
            # The runtime image serves no model, so its pods are never ready: `pulumi up` must not wait for them.
            annotations["pulumi.com/skipAwait"] = "true"
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-server",
            metadata=metadata(config, COMPONENT, COMPONENT, annotations=annotations),
            spec={
                "replicas": settings.serving_replicas,
                "selector": {"matchLabels": selector_labels(config, COMPONENT)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "minReadySeconds": 5,
                "template": pod_template(config, COMPONENT, pod_spec(
                    [server], volumes, topologySpreadConstraints=[spread], terminationGracePeriodSeconds=30)),
            },
            # The HPA owns the replica count once it runs; a later `pulumi up` must not reset it.
            opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(ignore_changes=["spec.replicas"])),
        )
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": COMPONENT}
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=metadata(config, COMPONENT, COMPONENT),
            spec={
                "scaleTargetRef": target,
                "minReplicas": settings.serving_replicas,
                "maxReplicas": settings.serving_max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}],
            },
            opts=child_of(self, depends_on=[self.deployment]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=metadata(config, COMPONENT, COMPONENT),
            spec={"minAvailable": 1, "selector": {"matchLabels": selector_labels(config, COMPONENT)},
                  # Pods that are not ready serve nothing, so draining them never costs availability.
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=in_namespace,
        )
        self.service = service(f"{name}-service", config, COMPONENT, COMPONENT, SERVING_PORT, in_namespace)
        self.url = pulumi.Output.from_input(cluster_url(config, COMPONENT, SERVING_PORT))
        self.register_outputs({"url": self.url, "image": self.image_name, "model_version": self.model_version})
