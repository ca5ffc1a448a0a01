"""Run the real Pulumi program (infra/__main__.py) under Pulumi mocks and capture what it declares.

Both tiers use this: tests/infra asserts on the declared resources, tests/stack applies the same
inputs to a real Docker daemon. The mocks answer like the Docker provider where the program reads an
output: an Image's `repo_digest` and a RemoteImage's `image_id` are the image name, so the captured
Container inputs name images the stack harness can build and run as they are.
"""

from __future__ import annotations

import asyncio
import importlib
import runpy
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
PROJECT = "mlops-platform"

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/image:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
PROGRAM_MODULES = ("config", "config_reader", "config_kubernetes", "config_edge", "config_artifacts",
                   "config_monitoring", "containers",
                   "tracking", "object_store", "serving", "front", "monitoring", "prometheus", "kubernetes")


def plain(value: Any) -> Any:
    """The value with Pulumi's secret wrappers removed, at any depth."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


@dataclass(frozen=True)
class Declared:
    """One resource as the program declared it; `inputs` keeps secrets wrapped, `plain` does not."""

    type: str
    name: str
    inputs: dict[str, Any]
    parent_type: str  # the type of the resource it was declared under ("pulumi:pulumi:Stack" at top level)
    depends_on: tuple[str, ...] = ()  # names of the resources it waits for (inputs and depends_on)

    @property
    def plain(self) -> dict[str, Any]:
        return plain(self.inputs)


@dataclass
class DeclaredStack:
    config: dict[str, str] = field(default_factory=dict)  # the stack config it was declared with
    secrets: dict[str, str] = field(default_factory=dict)  # its secrets, as `pulumi config set --secret`
    resources: list[Declared] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    secret_exports: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Declared]:
        return [resource for resource in self.resources if resource.type == type_]

    def container(self, alias: str) -> Declared:
        """The container reachable on the platform network as `alias`."""
        for resource in self.of_type(CONTAINER):
            if any(alias in network.get("aliases", []) for network in resource.plain.get("networksAdvanced", [])):
                return resource
        raise KeyError(f"no container with network alias {alias!r}")


class _ProviderLikeMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == IMAGE:
            outputs["repo_digest"] = outputs["repoDigest"] = plain(args.inputs["imageName"])
        elif args.typ == REMOTE_IMAGE:
            outputs["image_id"] = outputs["imageId"] = plain(args.inputs["name"])
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


class _CapturingMonitor(MockMonitor):
    """Records every registration with its inputs (secrets still wrapped) and its parent."""

    def __init__(self, stack: DeclaredStack) -> None:
        super().__init__(_ProviderLikeMocks())
        self.stack = stack

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            parent_type = request.parent.split("::")[2].split("$")[-1] if request.parent else ""
            inputs = rpc.deserialize_properties(request.object)
            depends_on = tuple(urn.split("::")[-1] for urn in request.dependencies)
            self.stack.resources.append(Declared(request.type, request.name, dict(inputs), parent_type, depends_on))
        return response


def _ensure_event_loop() -> None:
    """Pulumi's SDK calls asyncio.get_event_loop(); an earlier asyncio.run() (any test's) left none to get."""
    try:
        if not asyncio.get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())


def _forget_program_modules() -> None:
    for module in [name for name in sys.modules if name.split(".")[0] in PROGRAM_MODULES]:
        sys.modules.pop(module, None)


def program_module(name: str) -> ModuleType:
    """One module of the program, imported flat as under `pulumi up` (infra/ on sys.path), then forgotten."""
    with mock.patch.object(sys, "path", [str(INFRA_DIR), *sys.path]):
        try:
            return importlib.import_module(name)
        finally:
            _forget_program_modules()


# Set by a failed run: its failed futures become garbage once the test lets go of the error, and a
# collection that runs their finalizers in the middle of a later compile() trips CPython 3.11.7 ("AST
# constructor recursion depth mismatch", seen at session end). tests/infra/conftest.py collects then.
failed_run_garbage = False


def _settle_leftovers() -> None:
    """A run that failed leaves applies pending and its error in the SDK's ambient settings, which the next
    set_mocks does not reset: the next run would fail with this run's error (seen: a too-short secret
    reported again by the next test's run). Run what is left to its end, then forget it."""
    loop = asyncio.get_event_loop()
    for _ in range(100):  # a finished task may start others; a bound, not a hang
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if not leftovers:
            break
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    ambient = pulumi.runtime.settings.SETTINGS
    ambient.rpc_manager.clear()
    ambient.outputs.clear()
    global failed_run_garbage
    failed_run_garbage = True


def run_program(
    config: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    *,
    stack: str = "dev",
) -> DeclaredStack:
    """Run infra/__main__.py with this stack config (keys without the project prefix); secrets as `--secret`."""
    declared = DeclaredStack(config=dict(config or {}), secrets=dict(secrets or {}))
    _ensure_event_loop()
    monitor = _CapturingMonitor(declared)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    values = {**(config or {}), **(secrets or {})}
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": value for key, value in values.items()},
        [f"{PROJECT}:{key}" for key in (secrets or {})],
    )
    exported: dict[str, Any] = {}

    def program() -> None:
        with mock.patch.object(pulumi, "export", lambda name, value: exported.__setitem__(name, value)):
            runpy.run_path(str(INFRA_DIR), run_name="__main__")

    # The program's sibling modules import flat (`from config import ...`), as under `pulumi up`:
    # each run imports them afresh, and they leave no top-level `config`, `serving`... behind.
    try:
        _sync_await(run_pulumi_func(program))
    except BaseException:
        _settle_leftovers()
        raise
    finally:
        _forget_program_modules()
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        declared.exports[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            declared.secret_exports.add(name)
    return declared
