"""The local front's route file: which bento server, in which slot, the front sends requests to.

It is the truth of what serves locally: a release writes it the moment the front switches, so a release
killed right after still leaves the route naming the slot that serves. Standard library only: the front
reads it on every change, and `make status` and a deploy read it without importing the front's HTTP stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Route:
    """Where the front sends requests: the live bento server."""

    url: str
    model_version: str
    bento_tag: str
    slot: str | None = None  # the slot whose server this is; None in a route written before routes named it


def write_route(path: Path, route: Route | None) -> None:
    """Point the front at `route` (None: nothing serves). Atomic: the front never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(asdict(route) if route else None))
    os.replace(staging, path)


def read_route(path: Path) -> Route | None:
    """The route in `path`; None when nothing is routed, or the file is missing or not a route."""
    try:
        data = json.loads(path.read_text())
        return Route(**data) if data else None
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None
