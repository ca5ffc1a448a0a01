"""Building blocks the components share, so every container gets the same safe defaults.

Each `services/<folder>/Dockerfile` creates the non-root user `APP_USER`; each container here runs
as a non-root user, publishes ports on the configured address only, carries a health check with a
timeout, a restart policy and a memory limit, and makes `pulumi up` wait until it is healthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pulumi
import pulumi_docker as docker
from config import StackConfig

from services.contract import STACK_LABEL, image_ref

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"
APP_USER = "10001:10001"
SECRETS_DIR = "/home/app/secrets"  # where secret files land in a container (the app user's home)
# "required" on a container whose every data endpoint needs a credential; the policy pack lets only
# such containers publish on a public address.
ACCESS_LABEL = "mlops-platform.access"


def child_of(parent: pulumi.Resource, *, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))


def service_image(
    resource_name: str, folder: str, config: StackConfig, opts: pulumi.ResourceOptions, *, repository: str = ""
) -> docker.Image:
    """An image built by services/<folder>/Dockerfile; containers use its id, so a rebuild replaces them.

    The build context is services/ itself, so every image can carry the shared `services/contract.py`.
    """
    return docker.Image(
        resource_name,
        image_name=image_ref(config.name_prefix, repository or folder, config.image_tag),
        build=docker.DockerBuildArgs(
            context=str(SERVICES_DIR),
            dockerfile=str(SERVICES_DIR / folder / "Dockerfile"),
            args={"BASE_IMAGE": config.base_image},
            # The classic builder needs no buildx; host networking lets pip reach the index
            # from daemons whose bridge has no route out.
            builder_version=docker.BuilderVersion.BUILDER_V1,
            network="host",
        ),
        skip_push=True,
        opts=opts,
    )


def volume(resource_name: str, purpose: str, config: StackConfig, opts: pulumi.ResourceOptions) -> docker.Volume:
    # Volumes outlive containers: this is where state survives a replace.
    return docker.Volume(
        resource_name,
        name=f"{config.name_prefix}-{purpose}",
        labels=[docker.VolumeLabelArgs(label=STACK_LABEL, value=config.name_prefix)],
        opts=opts,
    )


def mount(volume: docker.Volume, path: str, *, read_only: bool = False) -> docker.ContainerVolumeArgs:
    return docker.ContainerVolumeArgs(volume_name=volume.name, container_path=path, read_only=read_only)


def published(internal: int, external: int, config: StackConfig) -> docker.ContainerPortArgs:
    return docker.ContainerPortArgs(internal=internal, external=external, ip=config.bind_address, protocol="tcp")


def http_probe(port: int, path: str, *, tls: bool = False) -> list[str]:
    """Exec-form probe with the image's own Python (no curl in the images); fails on non-2xx or after 4 s.

    Over `tls` it does not verify the certificate: it asks the container's own loopback, whose name the
    certificate does not carry, and only whether the server answers.
    """
    if tls:
        url = f"https://127.0.0.1:{port}{path}"
        return ["CMD", "python", "-c", "import ssl, urllib.request; urllib.request.urlopen("
                f"'{url}', timeout=4, context=ssl._create_unverified_context())"]
    url = f"http://127.0.0.1:{port}{path}"
    return ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=4)"]


def healthcheck(
    tests: list[str], *, start_period: str = "60s", interval: str = "15s"
) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=tests, interval=interval, timeout="5s", start_period=start_period, retries=5
    )


def secret_file(path: str, content: pulumi.Output[str], *, owner: str = APP_USER) -> docker.ContainerUploadArgs:
    """A secret reaches a container only as a file readable by its user, never as env or command line."""
    user, group = owner.split(":")
    return docker.ContainerUploadArgs(file=path, content=content, owner=user, group=group, permissions="0600")


def config_file(path: str, content: str) -> docker.ContainerUploadArgs:
    """A file of plain settings the container reads (its user needs no more than to read it)."""
    return docker.ContainerUploadArgs(file=path, content=content, permissions="0644")


def secret_files(
    secrets: Sequence[tuple[str, pulumi.Output[str] | None, str]],
) -> tuple[list[str], list[docker.ContainerUploadArgs]]:
    """For each (env var, secret, file name) whose secret is set: `ENV=<path>` and the upload of that file."""
    envs, uploads = [], []
    for env, secret, file in secrets:
        if secret is not None:
            envs.append(f"{env}={SECRETS_DIR}/{file}")
            uploads.append(secret_file(f"{SECRETS_DIR}/{file}", secret))
    return envs, uploads


def service_container(
    resource_name: str,
    config: StackConfig,
    *,
    service: str,
    image: pulumi.Input[str],
    network: docker.Network,
    memory_mb: int,
    health: docker.ContainerHealthcheckArgs,
    envs: Sequence[pulumi.Input[str]] = (),
    volumes: Sequence[docker.ContainerVolumeArgs] = (),
    ports: Sequence[docker.ContainerPortArgs] = (),
    command: Sequence[str] | None = None,
    uploads: Sequence[docker.ContainerUploadArgs] = (),
    user: str = APP_USER,
    access_controlled: bool = False,
    name_suffix: pulumi.Input[str] = "",
    stop_grace_seconds: int | None = None,
    labels: Mapping[str, str] | None = None,
    opts: pulumi.ResourceOptions,
) -> docker.Container:
    """A long-running container on the platform network, reachable there by the alias `service`.

    A `name_suffix` that changes with what the container runs lets a replacement start beside the old
    container (Pulumi creates the new one before deleting the old unless told otherwise; Docker refuses
    two containers of one name). `stop_grace_seconds` stops the old one gracefully before removing it.
    """
    return docker.Container(
        resource_name,
        name=pulumi.Output.concat(config.name_prefix, "-", service, name_suffix),
        image=image,
        command=list(command) if command is not None else None,
        envs=list(envs),
        user=user,
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[service])],
        ports=list(ports),
        volumes=list(volumes),
        uploads=list(uploads),
        healthcheck=health,
        restart=config.restart_policy,
        memory=memory_mb,
        log_driver="json-file",
        log_opts={"max-size": "10m", "max-file": "3"},
        labels=[docker.ContainerLabelArgs(label=STACK_LABEL, value=config.name_prefix),
                docker.ContainerLabelArgs(label=ACCESS_LABEL, value="required" if access_controlled else "open"),
                *(docker.ContainerLabelArgs(label=label, value=value) for label, value in (labels or {}).items())],
        must_run=True,
        destroy_grace_seconds=stop_grace_seconds,
        wait=True,
        wait_timeout=config.health_timeout_seconds,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["uploads"])),
    )
