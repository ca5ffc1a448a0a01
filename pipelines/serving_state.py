"""What serves where: a rollout's `Deployment`, and on this machine the one front and, per model, its two bento
slots and the release they serve.

Each model's slots keep their pid files, logs and release record in its own folder, `<state_dir>/models/<name>/`,
and its route in its own file (`pipelines.routes`): a release of one model touches nothing of another's. The
functions below take the model from the config, or `model` for another model on the same platform.
Standard library and the platform's process and route files only, so `make status` can read it at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.platform import Process
from pipelines.routes import model_route_file, read_default, read_route, routes_dir, served_models
from services.contract import MODEL_ROUTE_PREFIX

SLOTS = ("blue", "green")
MODELS_STATE = "models"  # under the state dir: one folder per model served here


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


def model_state_dir(config: PipelineConfig, model: str | None = None) -> Path:
    return config.platform.state_dir / MODELS_STATE / (model or config.model_name)


def local_models(config: PipelineConfig) -> list[str]:
    """Every model with serving state on this platform (a folder of its own, or a route), by name."""
    folders = {path.name for path in (config.platform.state_dir / MODELS_STATE).glob("*") if path.is_dir()}
    return sorted(folders | set(served_models(routes_dir(config.platform.state_dir))))


def model_url(config: PipelineConfig, model: str | None = None) -> str:
    """The model's own URL on the local front: `<serving_url>/models/<name>` (then /predict, /readyz, ...)."""
    return f"{config.platform.serving_url}{MODEL_ROUTE_PREFIX}{model or config.model_name}"


def predict_url(config: PipelineConfig) -> str:
    """Where to POST rows for the model: `/predict` when it is the default model, else its own path."""
    default = read_default(routes_dir(config.platform.state_dir)) == config.model_name
    return f"{config.platform.serving_url if default else model_url(config)}/predict"


def slot_process(config: PipelineConfig, slot: str, model: str | None = None) -> Process:
    return Process(f"serving-{slot}", model_state_dir(config, model))


def live_release(config: PipelineConfig, model: str | None = None) -> LiveRelease | None:
    """What serves the model locally now, if its server process is alive.

    The front's route is the truth: a release killed after switching the front but before recording the
    release (`save_live_release`) leaves the record naming the old slot, and the next deploy must not take
    the routed slot for the idle one. The record adds only when the release started."""
    route = read_route(route_file(config, model))
    if route is None:
        return None
    recorded = _recorded_release(config, model)
    if route.slot is None or (recorded is not None and recorded.slot == route.slot
                              and recorded.deployment.bento_tag == route.bento_tag):
        live = recorded  # the record agrees with the route (or the route is older than slot names in it)
    else:
        routed_at = datetime.fromtimestamp(route_file(config, model).stat().st_mtime, UTC).isoformat()
        live = LiveRelease(route.slot, Deployment(route.bento_tag, route.model_version,
                                                  model_url(config, model), routed_at))
    return live if live is not None and slot_process(config, live.slot, model).pid() is not None else None


def _recorded_release(config: PipelineConfig, model: str | None) -> LiveRelease | None:
    try:
        state = json.loads(release_file(config, model).read_text())
        return LiveRelease(state["slot"], Deployment(**state["deployment"]))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def save_live_release(config: PipelineConfig, live: LiveRelease) -> None:
    path = release_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"slot": live.slot, "deployment": asdict(live.deployment)}, indent=2))


def release_file(config: PipelineConfig, model: str | None = None) -> Path:
    return model_state_dir(config, model) / "run" / "serving.json"


def route_file(config: PipelineConfig, model: str | None = None) -> Path:
    return model_route_file(routes_dir(config.platform.state_dir), model or config.model_name)
