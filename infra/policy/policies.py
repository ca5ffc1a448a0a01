"""Rules every Docker container of the platform must follow, as pulumi-policy validations.

Each rule is a plain function of the container's properties (engine names, camelCase) returning
the violations found, so it can be tested without an engine; `POLICIES` wraps them for the pack.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from services.contract import ALLOW_PUBLIC_PORTS, MODEL_LABEL, PUBLIC_PORTS_POLICY

CONTAINER = "docker:index/container:Container"
PUBLIC_ADDRESSES = ("0.0.0.0", "::", "")
ROOT_USERS = ("root", "0")
ACCESS_LABEL = "mlops-platform.access"  # infra/containers.py
# A name that says "secret" holds one, unless it only points to a file that does (FOO_FILE, FOO_PATH).
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)
_POINTER_NAME = re.compile(r"_(FILE|PATH|DIR)$", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)

Props = Mapping[str, Any]


def _publicly_published(props: Props) -> list[Mapping[str, Any]]:
    """The container's ports published on every interface (no ip set is Docker's "every interface")."""
    return [port for port in props.get("ports") or [] if str(port.get("ip") or "") in PUBLIC_ADDRESSES]


def public_ports(props: Props, allow_public: bool = False) -> list[str]:
    """Published ports bind to an explicit non-public address; Docker's default is every interface."""
    if allow_public:
        return []
    return [
        f"port {port.get('internal')} is published on {port.get('ip') or '0.0.0.0 (no ip set)'}; "
        "bind it to 127.0.0.1, or allow public ports in the policy config"
        for port in _publicly_published(props)
    ]


def public_without_credential(props: Props) -> list[str]:
    """A port published on a public address belongs to a container that requires a credential.

    The program labels such containers (`ACCESS_LABEL=required`) when `authEnabled` is true; without it,
    `exposePorts` would let anyone on the network read and write models, data and reports.
    """
    if _labels(props).get(ACCESS_LABEL) == "required":
        return []
    return [
        f"port {port.get('internal')} is published on {port.get('ip') or '0.0.0.0'} but the container requires no "
        "credential: anyone on the network could read and change it; set authEnabled: true (with its secrets)"
        for port in _publicly_published(props)
    ]


def _labels(props: Props) -> dict[str, str]:
    return {str(item.get("label")): str(item.get("value")) for item in props.get("labels") or []}


def exposed_models_without_auth(containers: Sequence[Props]) -> list[str]:
    """On a stack publishing a port on a public address, every model's serving container requires a credential.

    They publish nothing themselves: the front relays every `/models/<name>/` to them, so one model whose
    container is open would answer anyone on the network, whatever the others require."""
    if not any(_publicly_published(props) for props in containers):
        return []
    return [
        f"model {_labels(props)[MODEL_LABEL]!r} is served by a container that requires no credential on a stack "
        "that publishes on a public address: the front would relay anyone's requests to it; set authEnabled: true"
        for props in containers
        if MODEL_LABEL in _labels(props) and _labels(props).get(ACCESS_LABEL) != "required"
    ]


def root_user(props: Props) -> list[str]:
    """The user is set explicitly and is not root (the image's USER is invisible to a policy)."""
    user = str(props.get("user") or "")
    name = user.split(":")[0]
    if not name:
        return ["no user is set, so the container may run as root; set `user` to a non-root uid:gid"]
    if name in ROOT_USERS:
        return [f"runs as root ({user!r}); set `user` to a non-root uid:gid"]
    return []


def missing_healthcheck(props: Props) -> list[str]:
    """A long-running container has a health check with a timeout (a hung probe must fail)."""
    if props.get("rm") or props.get("attach"):
        return []  # one-shot containers are not monitored
    check = props.get("healthcheck") or {}
    tests = list(check.get("tests") or [])
    if not tests or tests[0] == "NONE":
        return ["a long-running container needs a `healthcheck` with `tests`"]
    if not check.get("timeout"):
        return ["the `healthcheck` needs a `timeout`, or a hung probe never fails"]
    return []


def plaintext_secrets(props: Props) -> list[str]:
    """No secret travels in env or on the command line, where `docker inspect` shows it; use a file."""
    violations = []
    for entry in props.get("envs") or []:
        name, _, value = str(entry).partition("=")
        if value and _SECRET_NAME.search(name) and not _POINTER_NAME.search(name):
            violations.append(f"env {name} looks like a secret in plain text; upload it as a file and pass its path")
        elif _URL_WITH_PASSWORD.search(value):
            violations.append(f"env {name} holds a URL with a password; use a password file (e.g. PGPASSFILE)")
    violations += [
        f"command argument {position} holds a URL with a password"
        for position, argument in enumerate(props.get("command") or [])
        if _URL_WITH_PASSWORD.search(str(argument))
    ]
    return violations


def _container_policy(name: str, description: str, rule: Callable[[Props], list[str]]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != CONTAINER:
            return
        for message in rule(args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _validate_public_ports(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    for message in public_ports(args.props, bool(args.get_config().get(ALLOW_PUBLIC_PORTS, False))):
        report_violation(message, None)


def _validate_exposed_models(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    containers = [resource.props for resource in args.resources if resource.resource_type == CONTAINER]
    for message in exposed_models_without_auth(containers):
        report_violation(message, None)


POLICIES = [
    ResourceValidationPolicy(
        name=PUBLIC_PORTS_POLICY,
        description="Containers publish ports on 127.0.0.1 unless the policy config allows public ports.",
        validate=_validate_public_ports,
        config_schema=PolicyConfigSchema(properties={ALLOW_PUBLIC_PORTS: {"type": "boolean", "default": False}}),
    ),
    _container_policy(
        "public-ports-need-auth", "A port on a public address needs a container that requires a credential.",
        public_without_credential,
    ),
    StackValidationPolicy(
        name="exposed-models-need-auth",
        description="On a stack with a public port, every model's serving container requires a credential.",
        validate=_validate_exposed_models,
    ),
    _container_policy("non-root-user", "Containers run as an explicit non-root user.", root_user),
    _container_policy(
        "health-check-required", "Long-running containers have a health check with a timeout.", missing_healthcheck
    ),
    _container_policy(
        "no-plaintext-secrets", "No secret-looking value in env or command; secrets are files.", plaintext_secrets
    ),
]
