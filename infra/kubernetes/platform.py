"""The platform on a Kubernetes cluster: one namespace per stack holding MLflow, serving and monitoring.

Called by infra/__main__.py when the stack config says `target: kubernetes`; returns the stack outputs
under the same names as the docker target.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig

from kubernetes.edge import Edge, EdgeArgs
from kubernetes.monitoring import Monitoring, MonitoringArgs
from kubernetes.network import NetworkPolicies, NetworkPoliciesArgs
from kubernetes.serving import Serving, ServingArgs
from kubernetes.tracking import Tracking, TrackingArgs
from kubernetes.workloads import kube, labels
from services.contract import MODEL_VERSION_OUTPUT, NO_VERSION, SERVING_IMAGE_OUTPUT


def kubernetes_platform(config: StackConfig) -> dict[str, pulumi.Input[str]]:
    namespace = k8s.core.v1.Namespace("namespace", metadata={"name": kube(config).namespace, "labels": {
        **labels(config, "platform"),
        # The API server refuses any pod that breaks the "restricted" Pod Security Standard.
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }})
    tracking = Tracking("tracking", TrackingArgs(config=config, namespace=namespace))
    serving = Serving("serving", ServingArgs(config=config, namespace=namespace))
    monitoring = Monitoring("monitoring", MonitoringArgs(
        config=config, namespace=namespace, tracking_url=Tracking.internal_url,
        inference_log=serving.inference_log, tracking_credentials=tracking.monitoring_credentials))
    NetworkPolicies("network", NetworkPoliciesArgs(config=config, namespace=namespace))
    if kube(config).ingress_domain:
        Edge("edge", EdgeArgs(config=config, namespace=namespace))
    return {
        "mlflow_url": tracking.url,
        "serving_url": serving.url,
        "monitoring_ui_url": monitoring.ui_url,
        SERVING_IMAGE_OUTPUT: serving.image_name,
        MODEL_VERSION_OUTPUT: serving.model_version,
        "canary_version": NO_VERSION,  # canary releases need the docker target's front (docs/zero-downtime.md)
        "candidate_version": NO_VERSION,  # and so does a candidate beside the champion
        "kubernetes_namespace": kube(config).namespace,
        **serving.model_outputs,
    }
