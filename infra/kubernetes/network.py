"""NetworkPolicies: nothing in the namespace talks to anything, except what the platform needs.

- the monitoring job -> MLflow (5000), and DNS to find it; with a drift alert, -> the webhook's
  network and port (driftAlertEgressCidr, driftAlertEgressPort);
- MLflow -> its external stores (the Postgres port, the S3 endpoint's port), and DNS to find them;
- the schema migration Job -> the Postgres port, and DNS;
- pods of `clientNamespace` (an ingress controller, a CI runner) -> MLflow, every model's serving and the
  Evidently UI.
Serving and the UI reach nothing. Kubelet probes and `kubectl port-forward` do not pass these policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
from config import StackConfig
from containers import child_of
from monitoring import UI_PORT
from serving import SERVING_PORT
from tracking import MLFLOW_PORT

from kubernetes.migration import COMPONENT as MIGRATION
from kubernetes.monitoring import JOB, UI
from kubernetes.serving import COMPONENT as SERVING
from kubernetes.tracking import COMPONENT as MLFLOW
from kubernetes.tracking import external_stores
from kubernetes.workloads import Manifest, kube, metadata, selector_labels
from services.contract import kubernetes_serving_name

COMPONENT = "network"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
DNS = {"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    config: StackConfig
    namespace: k8s.core.v1.Namespace


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops-platform:kubernetes:NetworkPolicies", name, None, opts)
        config, settings = args.config, kube(args.config)
        self._config = config
        self._opts = child_of(self, depends_on=[args.namespace])
        self._policy(f"{name}-default-deny", "default-deny", {}, ingress=[], egress=[])
        clients = ([{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: settings.client_namespace}}}]
                   if settings.client_namespace else [])
        job = {"podSelector": {"matchLabels": selector_labels(config, JOB)}}
        store_ports = _store_ports(config)
        self._policy(f"{name}-mlflow", MLFLOW, selector_labels(config, MLFLOW),
                     ingress=[{"from": [job, *clients], "ports": [_tcp(MLFLOW_PORT)]}],
                     egress=[DNS, {"ports": store_ports}] if store_ports else None)
        if external_stores(config):  # the schema migration Job's pods (kubernetes.migration)
            assert settings.postgres_port is not None  # set with the postgres backend
            self._policy(f"{name}-{MIGRATION}", MIGRATION, selector_labels(config, MIGRATION), ingress=[],
                         egress=[DNS, {"ports": [_tcp(settings.postgres_port)]}])
        webhook = ([{"to": [{"ipBlock": {"cidr": settings.alert_egress_cidr}}],
                     "ports": [_tcp(settings.alert_egress_port)]}] if config.drift_alert_url is not None else [])
        self._policy(f"{name}-monitoring", JOB, selector_labels(config, JOB), ingress=None, egress=[
            DNS, {"to": [{"podSelector": {"matchLabels": selector_labels(config, MLFLOW)}}],
                  "ports": [_tcp(MLFLOW_PORT)]}, *webhook])
        if clients:
            servers = [(kubernetes_serving_name(model.name), SERVING_PORT) for model in config.models]
            for component, port in ((SERVING, SERVING_PORT), *servers, (UI, UI_PORT)):
                self._policy(f"{name}-{component}", component, selector_labels(config, component),
                             ingress=[{"from": clients, "ports": [_tcp(port)]}], egress=None)
        self.register_outputs({})

    def _policy(self, resource_name: str, policy_name: str, pods: dict[str, str], *,
                ingress: list[Manifest] | None, egress: list[Manifest] | None) -> None:
        """Allow `ingress` to / `egress` from the `pods` (None: this policy leaves that direction alone)."""
        spec: Manifest = {"podSelector": {"matchLabels": pods} if pods else {}, "policyTypes": []}
        for direction, rules in (("Ingress", ingress), ("Egress", egress)):
            if rules is not None:
                spec["policyTypes"].append(direction)
                spec[direction.lower()] = rules
        k8s.networking.v1.NetworkPolicy(resource_name, metadata=metadata(self._config, policy_name, COMPONENT),
                                        spec=spec, opts=self._opts)


def _tcp(port: int) -> Manifest:
    return {"protocol": "TCP", "port": port}


def _store_ports(config: StackConfig) -> list[Manifest]:
    """The ports MLflow's external stores listen on (any address: they live outside the cluster)."""
    settings = kube(config)
    ports = []
    if settings.postgres_port is not None:
        ports.append(_tcp(settings.postgres_port))
    if config.artifacts is not None:
        endpoint = urlsplit(config.artifacts.endpoint_url or "https://s3.amazonaws.com")
        ports.append(_tcp(endpoint.port or (443 if endpoint.scheme == "https" else 80)))
    return ports
