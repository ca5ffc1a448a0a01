"""The local front relays a request as the client sent it and the answer as the server gave it: a real
uvicorn front in front of a real server that echoes what reached it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.front import HEALTH_PATH, MAX_BODY_ENV, ROUTES_DIR_ENV
from pipelines.platform import free_port, url_ok
from pipelines.routes import Route, claim_default, model_route_file, write_route

pytestmark = pytest.mark.integration

# Answers every request with what reached it; /moved answers a redirect.
ECHO_SERVER = textwrap.dedent("""
    import json

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/moved":
            await send({"type": "http.response.start", "status": 307, "headers": [(b"location", b"/predict")]})
            await send({"type": "http.response.body", "body": b""})
            return
        echo = {"method": scope["method"], "raw_path": scope["raw_path"].decode("latin-1"),
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                "body": body.decode("latin-1")}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(echo).encode()})
""")


def _serve(command: list[str], probe: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", *command, "--log-level", "warning"],
                               env=env, cwd=cwd)
    for _ in range(300):
        if url_ok(probe):
            return process
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{probe} never answered")


@pytest.fixture(scope="module")
def front(tmp_path_factory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("front")
    (state / "echo.py").write_text(ECHO_SERVER)
    echo_port, front_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    echo = _serve(["echo:app", "--port", str(echo_port)], f"http://127.0.0.1:{echo_port}/", cwd=state)
    routes = state / "routes"
    write_route(model_route_file(routes, "echo"), Route(f"http://127.0.0.1:{echo_port}", "7", "echo:1"))
    claim_default(routes, "echo", always=False)
    front_url = f"http://127.0.0.1:{front_port}"
    relay = _serve(["--factory", "pipelines.front:create_app", "--port", str(front_port)], front_url + HEALTH_PATH,
                   env={**os.environ, ROUTES_DIR_ENV: str(routes), MAX_BODY_ENV: "1000"})
    try:
        yield front_url
    finally:
        for process in (relay, echo):
            process.terminate()
            process.wait(timeout=30)


def test_a_body_without_a_content_type_reaches_the_server_without_one(front):
    sent = httpx.post(f"{front}/predict", content=b'{"rows": []}', headers={"x-request-id": "abc"}, timeout=10)
    echoed = sent.json()
    assert echoed["body"] == '{"rows": []}' and echoed["method"] == "POST"
    assert echoed["headers"]["x-request-id"] == "abc"
    assert "content-type" not in echoed["headers"]  # aiohttp would have added application/octet-stream
    assert echoed["headers"]["user-agent"].startswith("python-httpx")  # the client's, not the front's
    assert echoed["headers"]["content-length"] == str(len(b'{"rows": []}'))


def test_the_path_goes_on_exactly_as_sent(front):
    # http.client sends the path as given (httpx would normalise it first).
    connection = http.client.HTTPConnection(httpx.URL(front).host, httpx.URL(front).port, timeout=10)
    connection.request("GET", "/predict/%7Eodd/../x?q=%2F")
    assert json.loads(connection.getresponse().read())["raw_path"] == "/predict/%7Eodd/../x"
    connection.request("GET", "/models/echo/predict/%7Eodd/../x?q=%2F")  # less its model's prefix only
    assert json.loads(connection.getresponse().read())["raw_path"] == "/predict/%7Eodd/../x"
    connection.close()


def test_a_redirect_goes_back_to_the_client(front):
    moved = httpx.post(f"{front}/moved", json={"rows": []}, timeout=10)
    assert moved.status_code == 307 and moved.headers["location"] == "/predict"


def test_a_body_over_the_limit_is_refused_by_the_front(front):
    refused = httpx.post(f"{front}/predict", content=b"x" * 1001, timeout=10)
    assert refused.status_code == 413 and "larger than 1000 bytes" in refused.json()["error"]


def test_the_front_says_which_version_it_routes_to(front):
    assert json.loads(httpx.get(front + HEALTH_PATH, timeout=10).text) == {
        "front": "up", "model_version": "7", "default_model": "echo", "models": {"echo": "7"}}
