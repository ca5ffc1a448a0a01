"""What serves where: a rollout's `Deployment`, and on this machine the front, its two bento slots and the
release they serve.

Standard library and the platform's process and route files only, so `make status` can read it at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.platform import Process
from pipelines.routes import read_route

SLOTS = ("blue", "green")


@dataclass(frozen=True)
class Deployment:
    """What serves where after a rollout."""

    bento_tag: str
    model_version: str
    url: str
    started_at: str


@dataclass(frozen=True)
class LiveRelease:
    """The local release the front routes to, and the slot whose process serves it."""

    slot: str
    deployment: Deployment


def front_process(config: PipelineConfig) -> Process:
    return Process("front", config.platform.state_dir)


def slot_process(config: PipelineConfig, slot: str) -> Process:
    return Process(f"serving-{slot}", config.platform.state_dir)


def live_release(config: PipelineConfig) -> LiveRelease | None:
    """What serves locally now, if its server process is alive.

    The front's route is the truth: a release killed after switching the front but before recording the
    release (`save_live_release`) leaves the record naming the old slot, and the next deploy must not take
    the routed slot for the idle one. The record adds only when the release started."""
    route = read_route(route_file(config))
    if route is None:
        return None
    recorded = _recorded_release(config)
    if route.slot is None or (recorded is not None and recorded.slot == route.slot
                              and recorded.deployment.bento_tag == route.bento_tag):
        live = recorded  # the record agrees with the route (or the route is older than slot names in it)
    else:
        routed_at = datetime.fromtimestamp(route_file(config).stat().st_mtime, UTC).isoformat()
        live = LiveRelease(route.slot, Deployment(route.bento_tag, route.model_version,
                                                  config.platform.serving_url, routed_at))
    return live if live is not None and slot_process(config, live.slot).pid() is not None else None


def _recorded_release(config: PipelineConfig) -> LiveRelease | None:
    try:
        state = json.loads(release_file(config).read_text())
        return LiveRelease(state["slot"], Deployment(**state["deployment"]))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def save_live_release(config: PipelineConfig, live: LiveRelease) -> None:
    release_file(config).write_text(json.dumps({"slot": live.slot, "deployment": asdict(live.deployment)}, indent=2))


def release_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "serving.json"


def route_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "front-route.json"
