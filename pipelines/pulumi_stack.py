"""The stack seam: what a release needs of a Pulumi stack, and `PulumiStack`, which drives this repo's program
through the Pulumi Automation API (users, with the Pulumi CLI installed). The tests pass a harness with the
same shape that applies the program's declarations to a real Docker daemon (tests/stack/harness.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from pipelines.config import REPO_ROOT
from pipelines.errors import CannotRun
from services.contract import ALLOW_PUBLIC_PORTS, EXPOSE_PORTS_KEY, PUBLIC_PORTS_POLICY

POLICY_PACK = REPO_ROOT / "infra" / "policy"  # every update of a stack is checked by it, as `pulumi up` in docs


class StackError(CannotRun):
    """The stack could not be read, built for or applied."""


class StackApplier(Protocol):
    """What a release needs of a stack: its config, its secrets, and applying config changes."""

    def config(self) -> Mapping[str, str]: ...

    def secret(self, key: str) -> str | None:
        """A secret of the stack config (the serving and smoke tokens), None when unset."""
        ...

    def outputs(self) -> Mapping[str, str]:
        """The stack's outputs after its last update (empty before the first), its own word on what it runs."""
        ...

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        """Set these stack config keys, bring the stack up to date, return the new outputs."""
        ...


class PulumiStack:
    """A Pulumi stack of this repo's program, driven through the Automation API (needs the Pulumi CLI)."""

    def __init__(self, name: str) -> None:
        from pulumi import automation

        self._auto = automation
        try:
            self._stack = automation.select_stack(stack_name=name, work_dir=str(REPO_ROOT))
        except Exception as exc:  # the CLI missing, not logged in, no such stack: its message says which
            raise StackError(f"cannot select Pulumi stack '{name}': {exc}") from None

    def config(self) -> Mapping[str, str]:
        return {key.split(":", 1)[-1]: value.value for key, value in self._stack.get_all_config().items()
                if not value.secret}

    def secret(self, key: str) -> str | None:
        values = self._stack.get_all_config()  # the Automation API hands secrets to the program decrypted
        found = next((value for name, value in values.items() if name.split(":", 1)[-1] == key), None)
        return found.value if found is not None and found.secret else None

    def outputs(self) -> Mapping[str, str]:
        try:
            return _plain(self._stack.outputs())
        except Exception as exc:  # as in apply: the CLI's own message says what failed
            raise StackError(f"cannot read the outputs of stack '{self._stack.name}': {exc}") from None

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        try:
            for key, value in changes.items():
                self._stack.set_config(key, self._auto.ConfigValue(value=value))
            with policy_pack_config(self.config()) as policy_config:
                result = self._stack.up(on_output=print, show_secrets=False, policy_packs=[str(POLICY_PACK)],
                                        policy_pack_configs=[str(policy_config)])
        except Exception as exc:  # CommandError and friends: the engine's own message says what failed
            raise StackError(f"pulumi up of stack '{self._stack.name}' failed: {exc}") from None
        return _plain(result.outputs)


def _plain(outputs: Mapping) -> dict[str, str]:
    """Stack outputs as text, without the secret ones."""
    return {key: str(value.value) for key, value in outputs.items() if not value.secret}


@contextlib.contextmanager
def policy_pack_config(stack_config: Mapping[str, str]) -> Iterator[Path]:
    """The policy pack's config for an update of this stack, in a file only this user reads: a stack that
    publishes its ports on purpose (`exposePorts: true`) allows public ports, or its mandatory pack stops it."""
    allow = stack_config.get(EXPOSE_PORTS_KEY, "false").strip().lower() == "true"
    handle, name = tempfile.mkstemp(prefix="policy-config-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(handle, "w") as file:
            json.dump({PUBLIC_PORTS_POLICY: {ALLOW_PUBLIC_PORTS: allow}}, file)
        yield Path(name)
    finally:
        os.unlink(name)
