"""Retention: `pipelines gc` retires the versions outside the config's `lifecycle` (pipelines.retire), then
deletes what monitoring left behind past its retention (pipelines.retention), measuring storage before and after:
in this machine's state dir, or on a Docker stack's volumes (pipelines.volume_files).

A version stays while it is among the newest `keep_last` or younger than `keep_days`; one an alias names or
that serves stays whatever its age; one retired already is done. With neither limit set nothing is outside.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipelines.config import PipelineConfig
from pipelines.config_model import LifecycleConfig
from pipelines.registry import RETIRED_TAG, aliases_of, connect
from pipelines.retention import Swept, sweep_monitoring
from pipelines.retire import retire, roles
from pipelines.status import stack_versions
from pipelines.storage import Usage, storage
from pipelines.volume_files import Trees, check_stack_registry, stack_trees


def outside(created: dict[str, datetime], limits: LifecycleConfig, now: datetime) -> list[str]:
    """The versions (number -> creation time) neither among the newest `keep_last` nor younger than `keep_days`."""
    if limits.keep_last is None and limits.keep_days is None:
        return []
    newest = sorted(created, key=int, reverse=True)
    kept = set(newest[:limits.keep_last]) if limits.keep_last is not None else set()
    if limits.keep_days is not None:
        kept |= {version for version, at in created.items() if now - at < timedelta(days=limits.keep_days)}
    return [version for version in sorted(created, key=int) if version not in kept]


@dataclass
class Collection:
    retired: list[str] = field(default_factory=list)  # retired now (or, on a dry run, that would be)
    kept: dict[str, str] = field(default_factory=dict)  # version outside the limits -> the role that keeps it
    freed_bytes: dict[str, int] = field(default_factory=dict)  # kind -> bytes freed
    removed: dict[str, int] = field(default_factory=dict)  # kind -> items removed
    swept: dict[str, Swept] = field(default_factory=dict)  # monitoring output and logs: kind -> what went
    before: dict[str, Usage] = field(default_factory=dict)  # storage per kind (pipelines.storage)
    after: dict[str, Usage] = field(default_factory=dict)  # the same after gc; empty on a dry run


def collect(config: PipelineConfig, *, dry_run: bool, stack_prefix: str | None = None) -> Collection:
    """`stack_prefix`: the monitoring output swept and counted is that Docker stack's, on its volumes (judged by the
    stack's own registry, which the config must point at)."""
    if stack_prefix:
        check_stack_registry(stack_prefix, config.model_name, connect(config), config.tracking.display_uri)
    with stack_trees(stack_prefix, config.model_name) if stack_prefix else contextlib.nullcontext() as trees:
        return _collect(config, dry_run=dry_run, trees=trees)


def _collect(config: PipelineConfig, *, dry_run: bool, trees: Trees | None) -> Collection:
    client = connect(config)
    versions = {v.version: v for v in client.search_model_versions(f"name='{config.model_name}'")}
    created = {number: datetime.fromtimestamp(v.creation_timestamp / 1000, UTC) for number, v in versions.items()
               if not v.tags.get(RETIRED_TAG)}
    aliases, on_stacks = aliases_of(client, config.model_name), stack_versions(config.model_name)
    limits = config.lifecycle
    done = Collection(before=storage(config, trees))
    for version in outside(created, limits, datetime.now(UTC)):
        still = roles(config, version, aliases, on_stacks)
        if still:
            done.kept[version] = ", ".join(still)
            continue
        done.retired.append(version)
        if not dry_run:
            retirement = retire(config, version, f"gc: outside lifecycle keep_last={limits.keep_last} "
                                                 f"keep_days={limits.keep_days}")
            for kind, items in retirement.removed.items():
                done.removed[kind] = done.removed.get(kind, 0) + len(items)
            for kind, size in retirement.freed_bytes.items():
                done.freed_bytes[kind] = done.freed_bytes.get(kind, 0) + size
    done.swept = sweep_monitoring(config, client, datetime.now(UTC), dry_run=dry_run, trees=trees)
    if not dry_run:
        done.after = storage(config, trees)
    return done
