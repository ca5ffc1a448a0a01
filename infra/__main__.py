"""The platform on one Docker host: MLflow tracking, BentoML serving, Evidently monitoring, one network.

This file only wires components together; `config.py` reads the stack config and each component
lives in its own module.
"""

import pulumi
import pulumi_docker as docker
from config import load_stack_config
from containers import STACK_LABEL
from monitoring import Monitoring, MonitoringArgs
from serving import Serving, ServingArgs
from tracking import Tracking, TrackingArgs

config = load_stack_config()

# Containers find each other by alias on this network (mlflow, postgres, serving, monitoring, monitoring-ui).
network = docker.Network(
    "network",
    name=f"{config.name_prefix}-net",
    driver="bridge",
    labels=[docker.NetworkLabelArgs(label=STACK_LABEL, value=config.name_prefix)],
)
tracking = Tracking("tracking", TrackingArgs(config=config, network=network))
# Serving and monitoring need MLflow only while running (the job retries every interval), so they
# start without waiting for it.
serving = Serving("serving", ServingArgs(config=config, network=network, tracking_url=Tracking.internal_url))
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

pulumi.export("mlflow_url", tracking.url)
pulumi.export("serving_url", serving.url)
pulumi.export("monitoring_ui_url", monitoring.ui_url)
pulumi.export("serving_image", serving.image_name)
pulumi.export("model_version", serving.model_version)
