"""The committed stack files (Pulumi.<stack>.yaml) pass the program's own validation, with dummy secrets set
the way `pulumi config set --secret` would, and carry no secret themselves."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest
import yaml

from tests.infra.program import CONTAINER, PROJECT, REPO_ROOT, run_program

# The stacks this project keeps (a project made from the template may have dropped staging or prod).
STACKS = tuple(stack for stack in ("dev", "staging", "prod") if (REPO_ROOT / f"Pulumi.{stack}.yaml").is_file())
# Every secret the program may read, as long and as plain as MLflow's password rule wants.
DUMMY_SECRETS = {key: f"dummy-{key}-0123456789" for key in (
    "adminPassword", "servingToken", "monitoringPassword", "monitoringUiSecret", "smokeToken", "postgresPassword")}
AUTH_SECRETS = ("adminPassword", "servingToken", "monitoringPassword", "monitoringUiSecret")


def stack_file(stack: str) -> Path:
    return REPO_ROOT / f"Pulumi.{stack}.yaml"


def stack_config(stack: str) -> dict[str, str]:
    """The file's config keys without the project prefix, as `run_program` takes them."""
    raw = yaml.safe_load(stack_file(stack).read_text())["config"]
    prefix = f"{PROJECT}:"
    assert all(key.startswith(prefix) for key in raw), f"Pulumi.{stack}.yaml: a key lacks the {prefix} prefix"
    return {key.removeprefix(prefix): str(value) for key, value in raw.items()}


def needed_secrets(config: dict[str, str]) -> dict[str, str]:
    keys = [*AUTH_SECRETS] if config.get("authEnabled") == "true" else []
    if config.get("trackingBackend") == "postgres":
        keys.append("postgresPassword")
    return {key: DUMMY_SECRETS[key] for key in keys}


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_file_passes_the_programs_validation(stack):
    config = stack_config(stack)
    declared = run_program(config, needed_secrets(config), stack=stack)
    prefix = config["namePrefix"]
    names = [resource.plain["name"] for resource in declared.of_type(CONTAINER)]
    assert names and all(name.startswith(f"{prefix}-") for name in names)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_holds_no_secret(stack):
    text = stack_file(stack).read_text()
    assert "secure:" not in text  # what `pulumi config set --secret` writes; set on the host, never committed
    assert not set(stack_config(stack)) & set(DUMMY_SECRETS)


def kept(*stacks: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not set(stacks) <= set(STACKS), reason=f"this project keeps no {'/'.join(stacks)} stack")


@kept("prod")
def test_prod_has_its_own_prefix_auth_and_postgres():
    prod = stack_config("prod")
    assert prod["authEnabled"] == "true" and prod["trackingBackend"] == "postgres"
    prefixes = [stack_config(stack)["namePrefix"] for stack in STACKS]
    assert len(set(prefixes)) == len(STACKS)


@kept("staging")
def test_staging_can_share_a_host_with_dev():
    ports = ("mlflowPort", "servingPort", "monitoringUiPort")
    dev, staging = stack_config("dev"), stack_config("staging")
    assert not {dev[port] for port in ports} & {staging[port] for port in ports}


@pytest.mark.parametrize("stack", [stack for stack in ("staging", "prod") if stack in STACKS])
def test_a_stack_without_its_secrets_names_the_missing_one(stack):
    with pytest.raises(pulumi.RunError, match=rf"{PROJECT}:\w+: is required when .*pulumi config set --secret"):
        run_program(stack_config(stack), {}, stack=stack)
