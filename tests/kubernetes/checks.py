"""What a schema cannot see in the kubernetes manifests: references between them and to the services.

Each check returns the problems it finds as lines naming the manifest; an empty list means it holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from services.contract import MODEL_LABEL
from tests.kubernetes.manifests import Manifest, of_kind, pod_specs

# The serving API's probe paths (docs/contracts.md): open without a token, /readyz only with a model loaded.
SERVING_PROBES = {"startupProbe": "/livez", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
MOVING_TAGS = {"latest", "stable", "main", "master", "dev", "edge", "nightly"}
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _templates(found: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(`Kind/name`, pod template) of every workload."""
    for manifest in found:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "Deployment":
            yield where, manifest["spec"]["template"]
        elif manifest["kind"] == "CronJob":
            yield where, manifest["spec"]["jobTemplate"]["spec"]["template"]
        elif manifest["kind"] == "Job":
            yield where, manifest["spec"]["template"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _selected(found: list[Manifest], selector: dict[str, str]) -> list[tuple[str, Manifest]]:
    return [(where, template) for where, template in _templates(found)
            if _selects(selector, template["metadata"]["labels"])]


def selectors_match_pods(found: list[Manifest]) -> list[str]:
    problems = []
    for manifest in of_kind(found, "Deployment"):
        spec = manifest["spec"]
        if not _selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
            problems.append(f"Deployment/{manifest['metadata']['name']}: selector does not match its pod labels")
    selectors = [(f"Service/{m['metadata']['name']}", m["spec"]["selector"]) for m in of_kind(found, "Service")]
    selectors += [(f"{m['kind']}/{m['metadata']['name']}", m["spec"]["selector"]["matchLabels"])
                  for m in of_kind(found, "PodDisruptionBudget")]
    selectors += [(f"NetworkPolicy/{m['metadata']['name']}", m["spec"]["podSelector"].get("matchLabels", {}))
                  for m in of_kind(found, "NetworkPolicy")]
    problems += [f"{where}: selects no pod" for where, selector in selectors if not _selected(found, selector)]
    return problems


def named_ports_exist(found: list[Manifest]) -> list[str]:
    problems = []
    for service in of_kind(found, "Service"):
        for port in service["spec"]["ports"]:
            for where, template in _selected(found, service["spec"]["selector"]):
                names = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
                if isinstance(port["targetPort"], str) and port["targetPort"] not in names:
                    problems.append(f"Service/{service['metadata']['name']}: {where} has no port {port['targetPort']}")
    for where, template in _templates(found):
        for container in template["spec"]["containers"]:
            names = {p.get("name") for p in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in names:
                    problems.append(f"{where}: {probe} names port {port}, which {container['name']} lacks")
    return problems


def _serving_deployments(found: list[Manifest]) -> list[Manifest]:
    """Every model's serving Deployment (its container is `serving`, whichever model it serves)."""
    return [m for m in of_kind(found, "Deployment")
            if [c["name"] for c in m["spec"]["template"]["spec"]["containers"]] == ["serving"]]


def serving_probes_match_the_api(found: list[Manifest]) -> list[str]:
    problems = []
    for serving in _serving_deployments(found):
        container = serving["spec"]["template"]["spec"]["containers"][0]
        asked = {probe: container.get(probe, {}).get("httpGet", {}).get("path") for probe in SERVING_PROBES}
        problems += [f"Deployment/{serving['metadata']['name']}: {probe} asks {asked[probe]}, the serving API "
                     f"answers it on {path}" for probe, path in SERVING_PROBES.items() if asked[probe] != path]
    return problems if _serving_deployments(found) else ["no serving Deployment"]


def scalers_point_at_deployments(found: list[Manifest]) -> list[str]:
    deployments = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(found, "Deployment")}
    problems = []
    for hpa in of_kind(found, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or (hpa["metadata"]["namespace"], target["name"]) not in deployments:
            problems.append(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: no Deployment {target['name']}")
    for pdb in of_kind(found, "PodDisruptionBudget"):
        owners = [where for where, _ in _selected(found, pdb["spec"]["selector"]["matchLabels"])]
        if len(owners) != 1 or not owners[0].startswith("Deployment/"):
            problems.append(f"PodDisruptionBudget/{pdb['metadata']['name']}: selects {owners or 'nothing'}, "
                            "not one Deployment's pods")
    return problems


def image_tags_are_immutable(found: list[Manifest]) -> list[str]:
    problems = []
    for where, spec in pod_specs(found).items():
        for container in spec["containers"]:
            image = container["image"]
            name = image.rsplit("/", 1)[-1]
            tag = name.split("@")[0].rsplit(":", 1)[1] if ":" in name.split("@")[0] else None
            if not _DIGEST.search(image) and (tag is None or tag in MOVING_TAGS):
                problems.append(f"{where}: image {image} is not pinned (no digest, tag {tag or 'missing'})")
    return problems


def secret_references_exist(found: list[Manifest]) -> list[str]:
    secrets = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(found, "Secret")}
    claims = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(found, "PersistentVolumeClaim")}
    problems = []
    for manifest in found:
        if manifest["kind"] not in ("Deployment", "CronJob", "Job"):
            continue
        namespace, where = manifest["metadata"]["namespace"], f"{manifest['kind']}/{manifest['metadata']['name']}"
        spec = pod_specs([manifest])[where]
        for volume in spec.get("volumes", []):
            if "secret" in volume and (namespace, volume["secret"]["secretName"]) not in secrets:
                problems.append(f"{where}: Secret {volume['secret']['secretName']} is not declared")
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and (namespace, claim) not in claims:
                problems.append(f"{where}: PersistentVolumeClaim {claim} is not declared")
        for container in spec["containers"]:
            for variable in container.get("env", []) + container.get("envFrom", []):
                if "valueFrom" in variable or "secretRef" in variable:
                    problems.append(f"{where}: {container['name']} reads a secret from the environment, not a file")
    return problems


_FILE_VARIABLE = re.compile(r"(_FILE|_PATH)$")


def file_variables_name_mounted_secret_files(found: list[Manifest]) -> list[str]:
    """Each `*_FILE`/`*_PATH` variable naming a file in a mounted Secret's directory names a file that
    Secret holds (a path the program wired without mounting its file fails here, not in the pod)."""
    secrets = {(m["metadata"]["namespace"], m["metadata"]["name"]): set(m.get("stringData", {}))
               for m in of_kind(found, "Secret")}
    problems = []
    for manifest in found:
        if manifest["kind"] not in ("Deployment", "CronJob"):
            continue
        namespace, where = manifest["metadata"]["namespace"], f"{manifest['kind']}/{manifest['metadata']['name']}"
        spec = pod_specs([manifest])[where]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            directories = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
            for variable in container.get("env", []):
                if not _FILE_VARIABLE.search(variable["name"]) or "/" not in variable.get("value", ""):
                    continue
                directory, file = variable["value"].rsplit("/", 1)
                volume = directories.get(directory)
                if volume is None and directory.startswith(("/home/app/secrets", "/etc/mlflow")):
                    problems.append(f"{where}: {variable['name']} names {variable['value']}, in no mounted volume")
                elif volume is not None and "secret" in volume and file not in secrets.get(
                        (namespace, volume["secret"]["secretName"]), set()):
                    problems.append(f"{where}: {variable['name']} names {variable['value']}, which Secret "
                                    f"{volume['secret']['secretName']} does not hold")
    return problems


def ingress_routes_and_certificates_exist(found: list[Manifest]) -> list[str]:
    """Each Ingress backend is a declared Service port; each host is covered by a declared TLS Secret."""
    services = {(m["metadata"]["namespace"], m["metadata"]["name"]): {p.get("name") for p in m["spec"]["ports"]}
                for m in of_kind(found, "Service")}
    tls_secrets = {(m["metadata"]["namespace"], m["metadata"]["name"]) for m in of_kind(found, "Secret")
                   if m.get("type") == "kubernetes.io/tls"}
    problems = []
    for ingress in of_kind(found, "Ingress"):
        namespace, where = ingress["metadata"]["namespace"], f"Ingress/{ingress['metadata']['name']}"
        covered = {host for tls in ingress["spec"].get("tls", []) for host in tls.get("hosts", [])
                   if (namespace, tls.get("secretName")) in tls_secrets}
        for rule in ingress["spec"].get("rules", []):
            if rule.get("host") not in covered:
                problems.append(f"{where}: host {rule.get('host')} has no TLS Secret")
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["port"].get("name") not in services.get((namespace, backend["name"]), set()):
                    problems.append(f"{where}: no Service {backend['name']} with port {backend['port']}")
    return problems


_REWRITE, _USE_REGEX = "nginx.ingress.kubernetes.io/rewrite-target", "nginx.ingress.kubernetes.io/use-regex"


def _ingress_nginx_route(found: list[Manifest], host: str, path: str) -> tuple[str, str] | None:
    """(Service, path it receives) for a request, as ingress-nginx routes it: every Ingress of the host merged,
    its paths regexes anchored at the start (case-insensitive) once one Ingress of the host asks for regexes,
    the longest path first; a `rewrite-target` rewrites what its own Ingress's paths match."""
    routes = [(entry["path"], entry.get("pathType"), entry["backend"]["service"]["name"],
               ingress["metadata"].get("annotations", {}).get(_REWRITE))
              for ingress in of_kind(found, "Ingress") for rule in ingress["spec"].get("rules", [])
              if rule.get("host") == host for entry in rule["http"]["paths"]]
    regex = any(ingress["metadata"].get("annotations", {}).keys() & {_REWRITE, _USE_REGEX}
                for ingress in of_kind(found, "Ingress") if host in {r.get("host") for r in ingress["spec"]["rules"]})
    for pattern, kind, service, rewrite in sorted(routes, key=lambda route: -len(route[0])):
        if regex:
            match = re.match(pattern, path, re.IGNORECASE)
            if match:
                return service, match.expand(re.sub(r"\$(\d)", r"\\\1", rewrite)) if rewrite else path
        elif path == pattern or (kind == "Prefix" and path.startswith(pattern.rstrip("/") + "/")):
            return service, path
    return None


def model_routes_reach_each_models_service(found: list[Manifest]) -> list[str]:
    """Behind an Ingress with several models, `/models/<model>/<endpoint>` reaches that model's Service as
    `/<endpoint>` (as the docker front's route does), and `/predict` the default model's, Service `serving`."""
    services = {m["metadata"]["labels"][MODEL_LABEL]: m["metadata"]["name"] for m in of_kind(found, "Service")
                if MODEL_LABEL in m["metadata"]["labels"]}
    hosts = {rule["host"] for ingress in of_kind(found, "Ingress") for rule in ingress["spec"]["rules"]
             if any(p["backend"]["service"]["name"] in services.values() for p in rule["http"]["paths"])}
    problems = []
    for host in sorted(hosts):
        asked = {"/predict": ("serving", "/predict")} | {
            f"/models/{model}{endpoint}": (service, endpoint or "/") for model, service in services.items()
            for endpoint in ("/predict", "/readyz", "/livez", "/metrics", "/", "")}
        for path, expected in asked.items():
            if (reached := _ingress_nginx_route(found, host, path)) != expected:
                problems.append(f"Ingress: https://{host}{path} reaches {reached or 'nothing'}, not {expected}")
    return problems


CHECKS: list[Callable[[list[Manifest]], list[str]]] = [
    selectors_match_pods, named_ports_exist, serving_probes_match_the_api, scalers_point_at_deployments,
    image_tags_are_immutable, secret_references_exist, ingress_routes_and_certificates_exist,
    file_variables_name_mounted_secret_files, model_routes_reach_each_models_service,
]
