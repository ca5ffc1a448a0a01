"""What serves where: a rollout's `Deployment`, and on this machine the front, its two bento slots and the
release they serve.

Standard library and the platform's process files only, so `make status` can read it at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.platform import Process

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
    """What serves locally now, if its server process is alive (None for a state file it cannot read)."""
    try:
        state = json.loads(release_file(config).read_text())
        live = LiveRelease(state["slot"], Deployment(**state["deployment"]))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return live if slot_process(config, live.slot).pid() is not None else None


def save_live_release(config: PipelineConfig, live: LiveRelease) -> None:
    release_file(config).write_text(json.dumps({"slot": live.slot, "deployment": asdict(live.deployment)}, indent=2))


def release_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "serving.json"


def route_file(config: PipelineConfig) -> Path:
    return config.platform.state_dir / "run" / "front-route.json"
