"""TLS at the edge on kubernetes (with tlsCertificate and ingressDomain): one Ingress terminating TLS.

It serves each platform Service under its own name, `<service>.<ingressDomain>` (mlflow, serving,
monitoring-ui), with the certificate from a `kubernetes.io/tls` Secret, so credentials cross the
network outside the cluster only encrypted. The ingress controller runs in `clientNamespace`, which the
NetworkPolicies let reach the three Services; behind it every request still needs its credential.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig
from containers import child_of
from monitoring import UI_PORT
from serving import SERVING_PORT
from tracking import MLFLOW_PORT

from kubernetes.monitoring import UI
from kubernetes.serving import COMPONENT as SERVING
from kubernetes.tracking import COMPONENT as MLFLOW
from kubernetes.workloads import HTTP_PORT_NAME, Manifest, kube, metadata, public_host

COMPONENT = "edge"
TLS_SECRET = "edge-tls"
SERVICES = {MLFLOW: MLFLOW_PORT, SERVING: SERVING_PORT, UI: UI_PORT}  # what the Ingress serves


@dataclass(frozen=True)
class EdgeArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace


class Edge(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:Edge", name, None, opts)
        config, settings = args.config, kube(args.config)
        assert config.tls is not None  # load_stack_config requires TLS with ingressDomain
        in_namespace = child_of(self, depends_on=[args.namespace])
        certificate = k8s.core.v1.Secret(
            f"{name}-tls", metadata=metadata(config, TLS_SECRET, COMPONENT), type="kubernetes.io/tls",
            string_data={"tls.crt": config.tls.certificate, "tls.key": config.tls.private_key},
            # The key stays encrypted in the state whichever form the provider reads back.
            opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(
                additional_secret_outputs=["data", "stringData"])))
        hosts = {service: public_host(config, service) for service in SERVICES}
        spec: Manifest = {
            "tls": [{"hosts": list(hosts.values()), "secretName": TLS_SECRET}],
            "rules": [_rule(host, service) for service, host in hosts.items()],
        }
        if settings.ingress_class:
            spec["ingressClassName"] = settings.ingress_class
        k8s.networking.v1.Ingress(f"{name}-ingress", metadata=metadata(config, COMPONENT, COMPONENT), spec=spec,
                                  opts=child_of(self, depends_on=[args.namespace, certificate]))
        self.urls = {service: f"https://{host}" for service, host in hosts.items()}
        self.register_outputs({})


def _rule(host: str, service: str) -> Manifest:
    backend = {"service": {"name": service, "port": {"name": HTTP_PORT_NAME}}}
    return {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
