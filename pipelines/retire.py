"""Retirement: a version that will never serve again is tagged retired and what it left behind is removed.

Refused for a version an alias names or that serves (locally through the front, or in a container of a
Docker stack on this host, a canary included). Otherwise: the version is tagged `retired` (the MLflow UI
shows it on the version page), its bentos and BentoML models leave the local store, its release images
leave Docker (when a daemon answers), the audit trail and the model card say so.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.actor import actor
from pipelines.audit import AuditTrail
from pipelines.bento import use_store
from pipelines.config import PipelineConfig
from pipelines.errors import CannotRun
from pipelines.model_card import append_fact
from pipelines.registry import RETIRED_TAG, ResolvedVersion, aliases_of, connect, resolve
from pipelines.routes import read_route
from pipelines.serving_state import route_file
from pipelines.status import stack_versions
from services.contract import RELEASE_VERSION_LABEL


class RetireRefused(CannotRun):
    """The version still has a role: an alias names it or it serves."""


@dataclass
class Retirement:
    version: str
    reason: str
    removed: dict[str, list[str]] = field(default_factory=dict)  # kind -> what was removed
    freed_bytes: dict[str, int] = field(default_factory=dict)  # kind -> bytes freed
    notes: list[str] = field(default_factory=list)
    audit_url: str = ""


def roles(config: PipelineConfig, version: str, aliases: dict[str, str], stack_served: set[str]) -> list[str]:
    """What the version still is: `@alias`es naming it, where it serves. Empty when it may retire."""
    found = [f"@{alias}" for alias, named in sorted(aliases.items()) if named == version]
    route = read_route(route_file(config))
    if route is not None and route.model_version == version:
        found.append("served locally (the front routes to it)")
    if version in stack_served:
        found.append("served (or a canary) on a Docker stack on this host")
    return found


def retire(config: PipelineConfig, version: str, reason: str) -> Retirement:
    if not reason.strip():
        raise RetireRefused("--reason must say why the version retires (it is recorded in the audit and the card)")
    client = connect(config)
    model = resolve(client, config.model_name, version=version)
    still = roles(config, version, aliases_of(client, config.model_name), stack_versions(config.model_name))
    if still:
        raise RetireRefused(f"{config.model_name} v{version} cannot retire: it is {', '.join(still)}; "
                            "release or roll back to another version first")
    if model.retired:
        raise RetireRefused(f"{config.model_name} v{version} was retired already: {model.retired}")
    who = actor()["who"]
    client.set_model_version_tag(model.name, version, RETIRED_TAG,
                                 f"{datetime.now(UTC).isoformat(timespec='seconds')} by {who}: {reason.strip()}")
    done = Retirement(version, reason.strip())
    _remove_bentos(config, model, done)
    _remove_images(model, done)
    try:
        written = AuditTrail.of(config, client).write("retire", version, "retired", reason=reason.strip(), **{
            f"removed_{kind}": ", ".join(items) for kind, items in done.removed.items()})
    except Exception as exc:  # whatever stops it: a retirement without its record is undone, to be run again
        client.delete_model_version_tag(model.name, version, RETIRED_TAG)
        removed = "; ".join(f"{kind} {', '.join(items)}" for kind, items in done.removed.items()) or "nothing"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise RetireRefused(f"{config.model_name} v{version} is not retired: its audit record could not be written "
                            f"({first_line}); it removed {removed}; run it again") from None
    append_fact(client, model, f"retired by {who}: {reason.strip()}")
    done.audit_url = written.url
    return done


def stored_prefix(model: ResolvedVersion) -> str:
    """How the version's BentoML models, bentos and release images begin their tag (`pipelines.bento.build`)."""
    return f"v{model.version}-{model.run_id[:8]}"


def _remove_bentos(config: PipelineConfig, model: ResolvedVersion, done: Retirement) -> None:
    use_store(config)
    import bentoml

    prefix = stored_prefix(model)
    for kind, store in (("bentos", bentoml.bentos), ("bentoml models", bentoml.models)):
        try:
            items = store.list(model.name)
        except bentoml.exceptions.NotFound:  # this store never held the model (a fresh checkout): nothing to remove
            continue
        for item in items:
            if str(item.tag.version).startswith(prefix):
                done.freed_bytes[kind] = done.freed_bytes.get(kind, 0) + _size(Path(item.path))
                store.delete(str(item.tag))
                done.removed.setdefault(kind, []).append(str(item.tag))


def _remove_images(model: ResolvedVersion, done: Retirement) -> None:
    if shutil.which("docker") is None:
        done.notes.append("release images: no docker command here, none removed")
        return
    listed = subprocess.run(["docker", "images", "--filter", f"label={RELEASE_VERSION_LABEL}={model.version}",
                             "--format", "{{.Repository}}:{{.Tag}}\t{{.Size}}"], capture_output=True, text=True)
    if listed.returncode != 0:
        done.notes.append(f"release images: the Docker daemon did not answer ({listed.stderr.strip()[:200]}), "
                          "none removed")
        return
    for line in listed.stdout.splitlines():
        image, _, size = line.partition("\t")
        if image.split(":", 1)[-1].startswith(stored_prefix(model)):
            removed = subprocess.run(["docker", "rmi", image], capture_output=True, text=True)
            if removed.returncode == 0:
                done.removed.setdefault("release images", []).append(f"{image} ({size})")
            else:
                done.notes.append(f"release image {image} not removed: {removed.stderr.strip()[:200]}")


def _size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.exists() else 0
