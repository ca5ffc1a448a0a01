"""TLS at the edge on kubernetes (with tlsCertificate and ingressDomain): one Ingress terminating TLS.

It serves each platform Service under its own name, `<service>.<ingressDomain>` (mlflow, serving,
monitoring-ui), with the certificate from a `kubernetes.io/tls` Secret, so credentials cross the
network outside the cluster only encrypted. The ingress controller runs in `clientNamespace`, which the
NetworkPolicies let reach the three Services; behind it every request still needs its credential.

With several models (`models`), a second Ingress on serving's host routes `/models/<name>/<path>` to that
model's Service as `/<path>`, as the docker target's front does (services/front/haproxy.cfg). The rewrite
is ingress-nginx's `rewrite-target` annotation on regex paths: the Ingress API itself cannot rewrite a path,
and Gateway API's URLRewrite is a CRD the offline schemas do not hold. It is an Ingress of its own because the
annotation rewrites every path of its Ingress; `/predict` and every other path stay on the first one's `/`,
the default model's Service.
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
from services.contract import MODEL_ROUTE_PREFIX, kubernetes_serving_name

COMPONENT = "edge"
TLS_SECRET = "edge-tls"
SERVICES = {MLFLOW: MLFLOW_PORT, SERVING: SERVING_PORT, UI: UI_PORT}  # what the Ingress serves
# `/models/<name>` and everything below it; the rewrite keeps what follows the name (`/predict`, or `/`).
MODEL_ROUTES = {"nginx.ingress.kubernetes.io/use-regex": "true", "nginx.ingress.kubernetes.io/rewrite-target": "/$2"}


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
        spec = _spec(list(hosts.values()), [_rule(host, service) for service, host in hosts.items()],
                     settings.ingress_class)
        after = child_of(self, depends_on=[args.namespace, certificate])
        k8s.networking.v1.Ingress(f"{name}-ingress", metadata=metadata(config, COMPONENT, COMPONENT), spec=spec,
                                  opts=after)
        if config.models:
            host = hosts[SERVING]
            assert host is not None  # an Edge comes only with ingressDomain
            k8s.networking.v1.Ingress(
                f"{name}-models", metadata=metadata(config, f"{COMPONENT}-models", COMPONENT, annotations=MODEL_ROUTES),
                spec=_spec([host], [_model_routes(config, host)], settings.ingress_class), opts=after)
        self.urls = {service: f"https://{host}" for service, host in hosts.items()}
        self.register_outputs({})


def _rule(host: str, service: str) -> Manifest:
    backend = {"service": {"name": service, "port": {"name": HTTP_PORT_NAME}}}
    return {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}


def _spec(hosts: list[str], rules: list[Manifest], ingress_class: str) -> Manifest:
    spec: Manifest = {"tls": [{"hosts": hosts, "secretName": TLS_SECRET}], "rules": rules}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return spec


def _model_routes(config: StackConfig, host: str) -> Manifest:
    """`/models/<name>/` of every model, the default one's too, each to its own Service."""
    models = [(config.model_name, None), *((model.name, model.name) for model in config.models)]
    paths = [{"path": f"{MODEL_ROUTE_PREFIX}{name}(/|$)(.*)", "pathType": "ImplementationSpecific",
              "backend": {"service": {"name": kubernetes_serving_name(model), "port": {"name": HTTP_PORT_NAME}}}}
             for name, model in models]
    return {"host": host, "http": {"paths": paths}}
