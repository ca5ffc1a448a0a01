"""Several models on one local platform: each its own slots, release record and route; a release of one touches
nothing of another's, and `make down` stops them all.

Real slot processes (sleepers standing in for `bentoml serve`) and the real state files; only the servers'
start-up and HTTP checks are stubbed (tests/integration/test_models_side_by_side.py runs real ones)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from pipelines import local
from pipelines.config import DataConfig, PipelineConfig
from pipelines.platform import free_port
from pipelines.processes import Process, alive
from pipelines.routes import read_default, read_route, routes_dir
from pipelines.serving_state import (
    SLOTS,
    live_release,
    local_models,
    model_url,
    predict_url,
    route_file,
    slot_process,
)
from pipelines.status import platform_status

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
PORTS = (free_port(), free_port())


def _config(state, name: str) -> PipelineConfig:
    # Ports nothing listens on: the registry is down, so status shows the local state only.
    return PipelineConfig(model_name=name, data=DataConfig(target="y", numeric_features=["x"]),
                          platform={"state_dir": state, "mlflow_port": PORTS[0], "serving_port": PORTS[1]},
                          tracking={"uri": f"http://127.0.0.1:{PORTS[0]}"})


@pytest.fixture
def models(tmp_path, monkeypatch) -> Iterator[tuple[PipelineConfig, PipelineConfig]]:
    loans, rentals = _config(tmp_path, "loans"), _config(tmp_path, "rentals")

    def start(config, process, bento_tag, port):
        process.start(SLEEPER)
        return f"http://127.0.0.1:{port}"

    monkeypatch.setattr(local, "start_front", lambda config: config.platform.serving_url)
    monkeypatch.setattr(local, "_start", start)
    monkeypatch.setattr(local, "check_serving", lambda *args, **kwargs: None)
    monkeypatch.setattr(local, "_check_headers", lambda config: {})
    monkeypatch.setattr(local, "_is_default_model", lambda config: config.model_name == "loans")
    yield loans, rentals
    local.stop_serving(loans)


def _release(config: PipelineConfig, version: str) -> None:
    bento = SimpleNamespace(tag=f"{config.model_name}:v{version}", model_version=version)
    local.LocalTarget(config).roll_out(bento, [])


def test_a_release_of_one_model_leaves_the_others_server_and_route_alone(models):
    loans, rentals = models
    _release(rentals, "1")
    rentals_pid = slot_process(rentals, live_release(rentals).slot).pid()
    rentals_route = read_route(route_file(rentals))
    for version in ("1", "2"):
        _release(loans, version)
    assert slot_process(rentals, live_release(rentals).slot).pid() == rentals_pid
    assert read_route(route_file(rentals)) == rentals_route
    assert live_release(loans).deployment.model_version == "2"
    assert live_release(loans).deployment.url == model_url(loans) == f"{loans.platform.serving_url}/models/loans"
    assert slot_process(loans, "blue").pid_file != slot_process(rentals, "blue").pid_file
    assert local_models(loans) == ["loans", "rentals"]


def test_predict_goes_to_the_first_deployed_until_the_demos_model_serves(models):
    loans, rentals = models
    _release(rentals, "1")
    assert read_default(routes_dir(rentals.platform.state_dir)) == "rentals"
    assert predict_url(rentals) == f"{rentals.platform.serving_url}/predict"
    _release(loans, "1")
    assert read_default(routes_dir(rentals.platform.state_dir)) == "loans"
    assert predict_url(rentals) == f"{model_url(rentals)}/predict"


def test_down_stops_every_models_servers(models):
    loans, rentals = models
    _release(rentals, "1")
    _release(loans, "1")
    pids = [slot_process(config, slot).pid() for config in models for slot in SLOTS]
    assert local.stop_serving(rentals)
    assert not any(alive(pid) for pid in pids if pid)
    assert live_release(loans) is None and live_release(rentals) is None
    assert read_default(routes_dir(loans.platform.state_dir)) is None


def test_status_has_one_block_per_model_served_here(models):
    loans, rentals = models
    _release(rentals, "1")
    found = platform_status(loans)  # the demo's config: it still lists the other model
    assert list(found.models) == ["loans", "rentals"]
    assert found.models["loans"] == {"local": "not served here"}
    assert found.models["rentals"]["local model"].startswith("v1 (rentals:v1)")
    assert found.models["rentals"]["local"].startswith(f"{model_url(rentals)} NOT READY (blue server pid")


def test_the_first_release_after_the_upgrade_stops_the_single_model_front_and_its_slots(tmp_path, monkeypatch):
    config = _config(tmp_path, "loans")
    legacy = [Process(name, tmp_path) for name in ("front", "serving-blue")]
    for process in legacy:
        process.start(SLEEPER)
    (tmp_path / "run" / "front-route.json").write_text("{}")

    class OldFront(BaseHTTPRequestHandler):  # its health names one version and no models
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"front": "up", "model_version": "3"}')

    server = ThreadingHTTPServer(("127.0.0.1", config.platform.serving_port), OldFront)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(local, "serve_once", lambda *args, **kwargs: None)  # the new front's start
    try:
        local.start_front(config)
    finally:
        server.shutdown()
        server.server_close()
    assert [process.pid() for process in legacy] == [None, None]
    assert not (tmp_path / "run" / "front-route.json").exists()
