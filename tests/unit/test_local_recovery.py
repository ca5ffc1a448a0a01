"""The local target after a crash (kill -9) between pointing the front at the new slot and recording the
release: the front's route is the truth, so the next deploy never stops the slot that serves.

Real slot processes (sleepers standing in for `bentoml serve`) and the real route and release files;
only the servers' start-up and HTTP checks are stubbed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from pipelines import local
from pipelines.config import DataConfig, PipelineConfig
from pipelines.processes import alive
from pipelines.routes import Route, read_route, write_route
from pipelines.serving_state import (
    SLOTS,
    Deployment,
    LiveRelease,
    live_release,
    model_url,
    release_file,
    route_file,
    save_live_release,
    slot_process,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
FRONT_URL = "http://127.0.0.1:9"


class Killed(BaseException):
    """kill -9 of the deploy: nothing after it runs, no handler sees it."""


@pytest.fixture
def config(tmp_path) -> Iterator[PipelineConfig]:
    config = PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]),
                            platform={"state_dir": tmp_path})
    yield config
    for slot in SLOTS:
        slot_process(config, slot).stop(timeout_s=1)


@pytest.fixture
def started(config, monkeypatch) -> list[tuple[str, dict[str, int | None]]]:
    """Each bento start: the slot it started in, and the pid of each slot's server at that moment."""
    starts: list[tuple[str, dict[str, int | None]]] = []

    def start(config, process, bento_tag, port):
        pids = {slot: slot_process(config, slot).pid() for slot in SLOTS}
        starts.append((process.name.removeprefix("serving-"), pids))
        process.start(SLEEPER)
        return f"http://127.0.0.1:{port}"

    monkeypatch.setattr(local, "start_front", lambda config: FRONT_URL)
    monkeypatch.setattr(local, "_start", start)
    monkeypatch.setattr(local, "check_serving", lambda *args, **kwargs: None)
    monkeypatch.setattr(local, "_check_headers", lambda config: {})
    return starts


def _bento(version: str) -> SimpleNamespace:
    return SimpleNamespace(tag=f"m:v{version}", model_version=version)


def _crash_after_routing(monkeypatch) -> None:
    real = local.write_route

    def write_then_die(path, route):
        real(path, route)
        raise Killed

    monkeypatch.setattr(local, "write_route", write_then_die)


def test_the_next_deploy_keeps_the_slot_the_front_routes_to_when_the_release_was_not_recorded(
        config, started, monkeypatch):
    local.LocalTarget(config).roll_out(_bento("1"), [])
    with monkeypatch.context() as crash:
        _crash_after_routing(crash)
        with pytest.raises(Killed):
            local.LocalTarget(config).roll_out(_bento("2"), [])
    recorded = json.loads(release_file(config).read_text())
    assert recorded["slot"] == "blue" and recorded["deployment"]["model_version"] == "1"  # the crash's state
    routed_pid = slot_process(config, "green").pid()

    live = live_release(config)
    assert (live.slot, live.deployment.model_version) == ("green", "2")  # what the front serves

    local.LocalTarget(config).roll_out(_bento("3"), [])
    slot, running = started[-1]
    assert (slot, running["green"]) == ("blue", routed_pid)  # v3 beside the routed v2, never in its place
    assert read_route(route_file(config)).bento_tag == "m:v3"
    assert not alive(routed_pid)  # stopped only once the front had moved on
    assert live_release(config).slot == "blue"


def _running(config: PipelineConfig, slot: str) -> None:
    slot_process(config, slot).start(SLEEPER)


def _record(config: PipelineConfig, slot: str, version: str) -> None:
    save_live_release(config, LiveRelease(slot, Deployment(f"m:v{version}", version, FRONT_URL, "then")))


def _route(config: PipelineConfig, slot: str | None, version: str) -> None:
    write_route(route_file(config), Route("http://127.0.0.1:1", version, f"m:v{version}", slot))


def test_the_recorded_release_stands_when_the_route_agrees(config):
    _running(config, "blue")
    _record(config, "blue", "4")
    _route(config, "blue", "4")
    assert live_release(config) == LiveRelease("blue", Deployment("m:v4", "4", FRONT_URL, "then"))


def test_a_route_that_names_another_slot_wins_over_the_record(config):
    for slot in SLOTS:
        _running(config, slot)
    _record(config, "blue", "4")
    _route(config, "green", "5")
    live = live_release(config)
    assert (live.slot, live.deployment.bento_tag, live.deployment.model_version) == ("green", "m:v5", "5")
    assert live.deployment.url == model_url(config)


def test_a_route_written_before_routes_named_their_slot_falls_back_to_the_record(config):
    _running(config, "green")
    _record(config, "green", "4")
    _route(config, None, "4")
    assert live_release(config).slot == "green"


def test_nothing_is_live_when_the_routed_slot_is_not_running_or_nothing_is_routed(config):
    _running(config, "blue")
    _record(config, "blue", "4")
    _route(config, "green", "5")
    assert live_release(config) is None  # the front routes to a dead server: nothing serves
    write_route(route_file(config), None)
    assert live_release(config) is None
