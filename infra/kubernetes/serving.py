"""BentoML serving on kubernetes: per model the release image of one model version, at least two replicas.

Each model the stack serves has its own Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget,
all named `serving` for the default model (as with one model) and `serving-<model>` for every other
(services.contract.kubernetes_serving_name), each from that model's own release keys and `servingMemoryMb`.
A rollout starts a new pod before an old one stops (`maxUnavailable: 0`) and sends it traffic only
once `/readyz` answers; the autoscaler adds replicas on CPU and the disruption budget keeps one serving
through node drains. Every replica appends to the inference log on one shared (ReadWriteMany) claim, in
files named by its pod: the default model's at the claim's root, every other model's in its own subdirectory
`models/<model>/`, so each model's monitoring CronJob reads its own. A `models` entry's `servingWorkers` sets
the worker processes of its model's pods, as on docker.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from config import ModelRelease, StackConfig
from containers import SECRETS_DIR, child_of
from serving import SERVING_PORT

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
    MODEL_VERSION_OUTPUT,
    NO_IMAGE,
    SERVING_IMAGE_OUTPUT,
    SERVING_RUNTIME_REPOSITORY,
    SERVING_TOKEN_FILE_ENV,
    SMOKE_TOKEN_FILE_ENV,
    inference_log_dir,
    kubernetes_serving_name,
    model_key,
    serving_workers_env,
)

COMPONENT = kubernetes_serving_name(None)
BENTOML_HOME = "/home/app/bentoml"  # the images' BENTOML_HOME: BentoML writes there at start
CPU_TARGET_PERCENT = 70


@dataclass(frozen=True)
class ServingArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace


class Serving(pulumi.ComponentResource):
    """The model servers, the default model's reachable in the namespace as http://serving:3000, every other
    model's as http://serving-<model>:3000."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:Serving", name, None, opts)
        self._name, self._config = name, args.config
        config = args.config
        self._in_namespace = child_of(self, depends_on=[args.namespace])
        self.inference_log = volume_claim(f"{name}-inference-log", config, "inference-log", COMPONENT, size_gi=20,
                                          shared=True, opts=self._in_namespace)
        self._volumes: list[Manifest] = [claim_volume("inference-log", self.inference_log.metadata["name"]),
                                         {"name": "bentoml-home", "emptyDir": {"sizeLimit": "1Gi"}}]
        self._mounts = [mount("inference-log", INFERENCE_LOG_MOUNT), mount("bentoml-home", BENTOML_HOME)]
        self._token_env = self._tokens()
        self.image_name = self._model(None, config.release, config.memory.serving, config.serving_workers)
        self.model_version = config.model_version
        for model in config.models:
            self._model(model.name, model.release, model.memory_mb, model.workers)
        # What serves each other model, as its stack outputs (the release pointer's fallback), as on docker, and
        # where it answers in the cluster (no front there routes /models/<name>/).
        self.model_outputs = {key: value for model in config.models for key, value in (
            (model_key(SERVING_IMAGE_OUTPUT, model.name), model.release.serving_image or NO_IMAGE),
            (model_key(MODEL_VERSION_OUTPUT, model.name), model.release.model_version),
            (model_key("serving_url", model.name),
             cluster_url(config, kubernetes_serving_name(model.name), SERVING_PORT)))}
        self.url = pulumi.Output.from_input(cluster_url(config, COMPONENT, SERVING_PORT))
        self.register_outputs({"url": self.url, "image": self.image_name, "model_version": self.model_version})

    def _tokens(self) -> dict[str, str]:
        """One Secret of the serving and smoke tokens, which every model's pods mount; the variables naming them."""
        config, env, files = self._config, {}, {}
        for variable, token, file in ((SERVING_TOKEN_FILE_ENV, config.serving_token, "serving-token"),
                                      (SMOKE_TOKEN_FILE_ENV, config.smoke_token, "smoke-token")):
            if token is not None:
                env[variable] = f"{SECRETS_DIR}/{file}"
                files[file] = token
        if files:
            tokens = secret(f"{self._name}-tokens", config, f"{COMPONENT}-tokens", COMPONENT, files,
                            self._in_namespace)
            self._volumes.append(secret_volume("tokens", tokens.metadata["name"]))
            self._mounts.append(mount("tokens", SECRETS_DIR, read_only=True))
        return env

    def _model(self, model: str | None, release: ModelRelease, memory_mb: int, workers: int | None) -> str:
        """`model`'s Deployment, autoscaler, disruption budget and Service (None: the default model's, named as
        with one model), its pods running `workers` worker processes (None: its bento's own); the image it
        serves, the runtime image until the model has a release."""
        config, settings = self._config, kube(self._config)
        component, suffix = kubernetes_serving_name(model), "" if model is None else f"-{model}"
        # With several models every serving object names its model; one model's stay as they always were.
        label = (model or config.model_name) if config.models else None
        image_name = release.serving_image or image(config, SERVING_RUNTIME_REPOSITORY)
        server = container(
            COMPONENT, image_name,
            resources_=resources(memory_mb, "500m", "2"),
            port=SERVING_PORT,
            env={INFERENCE_LOG_ENV: inference_log_dir(model), **self._token_env,
                 **dict([serving_workers_env(workers)] if workers is not None else [])},
            mounts=self._mounts,
            health=probes("/livez", ready_path="/readyz", startup_s=180),
        )
        selector = selector_labels(config, component)
        spread = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                  "labelSelector": {"matchLabels": selector}}
        annotations = {"mlops-platform/model-version": release.model_version}
        if not release.serving_image:
            # The runtime image serves no model, so its pods are never ready: `pulumi up` must not wait for them.
            annotations["pulumi.com/skipAwait"] = "true"
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-server{suffix}",
            metadata=metadata(config, component, component, model=label, annotations=annotations),
            spec={
                "replicas": settings.serving_replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "minReadySeconds": 5,
                "template": pod_template(config, component, pod_spec(
                    [server], self._volumes, topologySpreadConstraints=[spread], terminationGracePeriodSeconds=30),
                    model=label),
            },
            # The HPA owns the replica count once it runs; a later `pulumi up` must not reset it.
            opts=pulumi.ResourceOptions.merge(self._in_namespace,
                                              pulumi.ResourceOptions(ignore_changes=["spec.replicas"])),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-autoscaler{suffix}",
            metadata=metadata(config, component, component, model=label),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": component},
                "minReplicas": settings.serving_replicas,
                "maxReplicas": settings.serving_max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}],
            },
            opts=child_of(self, depends_on=[deployment]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-disruption-budget{suffix}",
            metadata=metadata(config, component, component, model=label),
            spec={"minAvailable": 1, "selector": {"matchLabels": selector},
                  # Pods that are not ready serve nothing, so draining them never costs availability.
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=self._in_namespace,
        )
        service(f"{self._name}-service{suffix}", self._config, component, component, SERVING_PORT,
                self._in_namespace, model=label)
        return image_name
