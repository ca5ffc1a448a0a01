"""Typed, validated reads of the stack config; every error is a `StackConfigError` naming the full key.

`StackConfigError` is a `pulumi.RunError`, so `pulumi up` prints the message without a Python traceback.
infra/config.py reads the shared keys with it, config_kubernetes.py and config_edge.py their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import pulumi

T = TypeVar("T")
# Image references: a conservative subset that every daemon accepts.
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
IMAGE_REF_OR_EMPTY = re.compile(rf"^$|{IMAGE_REF.pattern}")


class StackConfigError(pulumi.RunError):
    """A stack config value is missing or invalid; the message names the key."""


class ConfigReader:
    """Typed access to the project's config namespace; every error names the full key."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config

    def fail(self, key: str, problem: str) -> StackConfigError:
        return StackConfigError(f"stack config {self.config.full_key(key)}: {problem}")

    def string(self, key: str, default: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.config.get(key)
        if value is None:
            return default
        value = value.strip()
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def choice(self, key: str, default: T, choices: Sequence[T]) -> T:
        value = self.string(key, str(default))
        for choice in choices:
            if value == choice:
                return choice
        raise self.fail(key, f"must be one of {', '.join(map(str, choices))} (got {value!r})")

    def boolean(self, key: str, default: bool) -> bool:
        value = self.string(key, str(default).lower()).lower()
        if value not in ("true", "false"):
            raise self.fail(key, f"must be true or false (got {value!r})")
        return value == "true"

    def number(self, key: str, default: T, kind: Callable[[str], T], low: float, high: float) -> T:
        raw = self.config.get(key)
        if raw is None:
            return default
        try:
            value = kind(raw.strip())
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise self.fail(key, f"must be {what} (got {raw!r})") from None
        if not low <= value <= high:  # type: ignore[operator]
            raise self.fail(key, f"must be between {low:g} and {high:g} (got {value})")
        return value

    def port(self, key: str, default: int) -> int:
        return self.number(key, default, int, 1, 65535)

    def memory_mb(self, key: str, default: int) -> int:
        # None of the services starts in less than 64 MiB; 64 GiB is a typo guard, not a hardware claim.
        return self.number(key, default, int, 64, 65536)

    def secret(self, key: str, needed_because: str, min_length: int = 1) -> pulumi.Output[str]:
        """A secret is read only as a Pulumi secret, so it stays encrypted in state and masked in logs."""
        value = self.optional_secret(key, min_length)
        if value is None:
            raise self.fail(key, f"is required {needed_because}: pulumi config set --secret {key} <value>")
        return value

    def optional_secret(self, key: str, min_length: int = 1) -> pulumi.Output[str] | None:
        value = self.config.get_secret(key)
        if value is None:
            return None
        full_key = self.config.full_key(key)

        def one_line(text: str) -> str:
            if not text.strip() or "\n" in text:
                raise StackConfigError(f"stack config {full_key}: must be one non-empty line")
            if len(text) < min_length:
                raise StackConfigError(f"stack config {full_key}: must be at least {min_length} characters "
                                       "(e.g. `openssl rand -hex 24`)")
            return text

        return value.apply(one_line)
