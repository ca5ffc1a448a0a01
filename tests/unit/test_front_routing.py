"""The local front routes by model: `/models/<name>/<path>` to that model's live server as `/<path>`, `/predict`
(and every other path) to the default model's, an unknown name to a 404 naming the models served.

The ASGI app is called as uvicorn calls it; its HTTP client is a recorder standing in for the bento servers
(tests/integration/test_front.py relays through a real one)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.front import HEALTH_PATH, Front
from pipelines.routes import Route, claim_default, model_route_file, read_default, served_models, write_route


class _Answer:
    status, raw_headers = 200, [(b"content-type", b"application/json")]

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return json.dumps({"reached": self.url}).encode()


class _Recorder:
    """Answers every relayed request with the URL it was sent to."""

    async def request(self, method: str, url: Any, **kwargs: Any) -> _Answer:
        return _Answer(str(url))


def _get(front: Front, raw_path: str, query: bytes = b"") -> tuple[int, dict[str, str], dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": raw_path, "raw_path": raw_path.encode(),
             "query_string": query, "headers": []}
    asyncio.run(front(scope, receive, send))
    headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    body = sent[1]["body"]
    return sent[0]["status"], headers, json.loads(body) if body else {}


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    routes = tmp_path / "routes"
    write_route(model_route_file(routes, "loans"), Route("http://127.0.0.1:4001", "3", "loans:a", "blue"))
    write_route(model_route_file(routes, "rentals"), Route("http://127.0.0.1:4002", "7", "rentals:b", "green"))
    write_route(model_route_file(routes, "retired"), None)  # stopped: no longer served
    claim_default(routes, "loans", always=False)
    return routes


@pytest.fixture
def front(routes: Path) -> Front:
    front = Front(routes, max_body_bytes=1000)
    front.client = _Recorder()  # type: ignore[assignment]
    return front


def test_a_model_path_goes_to_that_models_server_without_the_prefix(front):
    status, _, body = _get(front, "/models/rentals/predict", b"x=1")
    assert (status, body) == (200, {"reached": "http://127.0.0.1:4002/predict?x=1"})
    assert _get(front, "/models/loans/readyz")[2] == {"reached": "http://127.0.0.1:4001/readyz"}
    assert _get(front, "/models/rentals/docs.json")[2] == {"reached": "http://127.0.0.1:4002/docs.json"}
    assert _get(front, "/models/rentals/")[2] == {"reached": "http://127.0.0.1:4002/"}


def test_predict_and_every_other_path_go_to_the_default_model(front):
    assert _get(front, "/predict")[2] == {"reached": "http://127.0.0.1:4001/predict"}
    assert _get(front, "/livez")[2] == {"reached": "http://127.0.0.1:4001/livez"}


@pytest.mark.parametrize("path", ["/models/forecast/predict", "/models/retired/predict", "/models/../predict",
                                  "/models/", "/models"])
def test_an_unknown_model_answers_404_naming_the_models_served(front, path):
    status, _, body = _get(front, path)
    assert status == 404
    assert body["models"] == ["loans", "rentals"] and "is served here" in body["error"]


def test_a_bare_model_path_redirects_to_its_folder_so_its_docs_page_finds_docs_json(front):
    status, headers, _ = _get(front, "/models/rentals")
    assert (status, headers["location"]) == (308, "/models/rentals/")


def test_a_route_change_of_one_model_reaches_the_front_and_leaves_the_other(front, routes):
    _get(front, "/models/rentals/predict")  # both read once
    write_route(model_route_file(routes, "loans"), Route("http://127.0.0.1:4003", "4", "loans:c", "green"))
    assert _get(front, "/predict")[2] == {"reached": "http://127.0.0.1:4003/predict"}
    assert _get(front, "/models/rentals/predict")[2] == {"reached": "http://127.0.0.1:4002/predict"}


def test_nothing_routed_answers_503_as_before(tmp_path):
    front = Front(tmp_path / "routes", max_body_bytes=1000)
    front.client = _Recorder()  # type: ignore[assignment]
    status, _, body = _get(front, "/predict")
    assert status == 503 and "make deploy" in body["error"]


def test_the_fronts_health_names_the_default_and_each_models_version(front):
    status, _, body = _get(front, HEALTH_PATH)
    assert status == 200
    assert body == {"front": "up", "model_version": "3", "default_model": "loans",
                    "models": {"loans": "3", "rentals": "7"}}


def test_the_default_is_the_demos_model_else_the_first_deployed(tmp_path):
    routes = tmp_path / "routes"
    claim_default(routes, "rentals", always=False)  # the first deployed
    claim_default(routes, "forecast", always=False)  # a later one does not take it
    assert read_default(routes) == "rentals"
    claim_default(routes, "loans", always=True)  # the demo config's model does
    claim_default(routes, "rentals", always=False)
    assert read_default(routes) == "loans"
    assert sorted(path.name for path in routes.iterdir()) == ["_default"]  # no staging file left
    assert served_models(routes) == []
