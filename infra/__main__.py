"""The platform: MLflow tracking, BentoML serving, Evidently monitoring, on one Docker host or on Kubernetes.

This file only wires components together; `config.py` reads the stack config (`target: docker`, the
default, or `kubernetes`), each component lives in its own module, the kubernetes ones in kubernetes/.
"""

import pulumi
import pulumi_docker as docker
from config import StackConfig, load_stack_config
from front import Front, FrontArgs
from kubernetes.platform import kubernetes_platform
from monitoring import Monitoring, MonitoringArgs
from object_store import ObjectStore, ObjectStoreArgs
from prometheus import Prometheus, PrometheusArgs
from serving import Serving, ServingArgs
from tracking import Tracking, TrackingArgs

from services.contract import (
    MODEL_VERSION_OUTPUT,
    PROMETHEUS_URL_OUTPUT,
    SERVING_IMAGE_OUTPUT,
    STACK_LABEL,
    TLS_SERVER_NAME_OUTPUT,
)


def docker_platform(config: StackConfig) -> dict[str, pulumi.Input[str]]:
    # Containers find each other by alias on this network (mlflow, postgres, seaweedfs, serving, front, monitoring,
    # monitoring-ui, prometheus).
    network = docker.Network(
        "network",
        name=f"{config.name_prefix}-net",
        driver="bridge",
        labels=[docker.NetworkLabelArgs(label=STACK_LABEL, value=config.name_prefix)],
    )
    object_store = None
    if config.artifacts is not None and config.artifacts.seaweedfs:
        object_store = ObjectStore("object-store", ObjectStoreArgs(config=config, store=config.artifacts,
                                                                   network=network)).container
    tracking = Tracking("tracking", TrackingArgs(config=config, network=network, object_store=object_store))
    # Serving and monitoring need MLflow only while running (the job retries every interval), so they
    # start without waiting for it.
    serving = Serving("serving", ServingArgs(config=config, network=network, tracking_url=Tracking.internal_url))
    front = Front("front", FrontArgs(config=config, network=network))
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            config=config,
            network=network,
            tracking_url=Tracking.internal_url,
            inference_log=serving.inference_log,
            tracking_credentials=tracking.monitoring_credentials,
        ),
    )
    prometheus = Prometheus("prometheus", PrometheusArgs(config=config, network=network))
    tls_name = {TLS_SERVER_NAME_OUTPUT: front.tls_server_name} if front.tls_server_name is not None else {}
    metrics = {PROMETHEUS_URL_OUTPUT: prometheus.url} if prometheus.url is not None else {}
    return {
        **tls_name,
        **metrics,
        "mlflow_url": tracking.url,
        "serving_url": front.url,
        "monitoring_ui_url": monitoring.ui_url,
        SERVING_IMAGE_OUTPUT: serving.image_name,
        MODEL_VERSION_OUTPUT: serving.model_version,
        "canary_version": serving.canary_version,
        "candidate_version": serving.candidate_version,
        **serving.model_outputs,
    }


config = load_stack_config()
platform = kubernetes_platform if config.target == "kubernetes" else docker_platform
for name, value in platform(config).items():
    pulumi.export(name, value)
