"""The local front's route files: per model, which bento server, in which slot, the front sends requests to.

One file per model, `<state_dir>/run/routes/<model>.json`, written only by that model's releases (a release of
one model never rewrites another's), and `_default` naming the model `/predict` goes to. A route file is the
truth of what serves locally: a release writes it the moment the front switches, so a release killed right
after still leaves the route naming the slot that serves. Standard library only: the front reads them on every
change, and `make status` and a deploy read them without importing the front's HTTP stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# Not a `.json` file, and `_` is never in a model's name (a DNS label): no model's route can be taken for it.
DEFAULT_FILE = "_default"


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


def routes_dir(state_dir: Path) -> Path:
    return state_dir / "run" / "routes"


def model_route_file(routes: Path, model: str) -> Path:
    return routes / f"{model}.json"


def served_models(routes: Path) -> list[str]:
    """The models whose route names a server, by name."""
    return sorted(path.stem for path in routes.glob("*.json") if read_route(path) is not None)


def read_default(routes: Path) -> str | None:
    """The model `/predict` goes to, if one is named."""
    try:
        return (routes / DEFAULT_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def claim_default(routes: Path, model: str, *, always: bool) -> None:
    """Make `model` the one `/predict` goes to: `always` (the demo config's model), or while none is named (the
    first model deployed). Atomic either way: the front never reads half a name."""
    path = routes / DEFAULT_FILE
    if not always and read_default(routes) is not None:
        return
    routes.mkdir(parents=True, exist_ok=True)
    staging = routes / f"{DEFAULT_FILE}.{model}.tmp"
    staging.write_text(model)
    if always:
        os.replace(staging, path)
        return
    try:
        os.link(staging, path)  # fails if another release named one meanwhile: the first one stands
    except FileExistsError:
        pass
    finally:
        staging.unlink()
