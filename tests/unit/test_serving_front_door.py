"""What meets a request before the model: the credential first, then the body guard; WebSocket refused;
tokens compared in constant time and long enough, in the model server and the no-model server alike."""

from __future__ import annotations

import asyncio
import hmac
import json
import queue
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest

from services import access
from services.access import Grants, RequireCredential, read_credential, token_digest
from services.contract import MIN_TOKEN_CHARS, SMOKE_TOKEN_FILE_ENV
from services.serving import no_model_server
from services.serving.guard import RequestGuard, SmokeToken, serving_middlewares

TOKEN = "serving-token-0123456789"
LIMIT = 1000
FOUR_MIB = 4 * 1024 * 1024


class Model:
    """The innermost application: answers 200 and counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.calls.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def stack(model: Model, token: str | None = TOKEN):
    """The service's middlewares around `model`, applied as Starlette does: the first listed is outermost."""
    app = model
    for middleware, options in reversed(serving_middlewares(LIMIT, Grants.of(token) if token else None)):
        app = middleware(app, **options)
    return app


def call(app, scope: dict, body: bytes = b"") -> tuple[list[dict], int]:
    """Run one request; the messages sent back and how many body chunks the stack read."""
    reads = 0
    sent: list[dict] = []

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, reads


def post(headers: dict[str, str], body: bytes, path: str = "/predict") -> dict:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize("headers", [
    {"content-type": "application/json", "content-length": str(FOUR_MIB)},  # declared too large
    {"content-type": "application/json"},  # streamed too large
    {"content-type": "text/plain"},  # the wrong media type
])
def test_an_anonymous_request_is_a_401_before_its_body_is_read_or_judged(headers):
    model = Model()
    sent, reads = call(stack(model), post(headers, b"{" * FOUR_MIB), b"{" * FOUR_MIB)
    assert sent[0]["status"] == 401 and reads == 0 and model.calls == []


def test_with_the_token_the_body_guard_still_judges_the_body():
    model = Model()
    authorized = {"authorization": f"Bearer {TOKEN}"}
    assert call(stack(model), post({**authorized, "content-type": "text/plain"}, b"{}"), b"{}")[0][0]["status"] == 415
    assert call(stack(model), post(authorized, b"x" * (LIMIT + 1)), b"x" * (LIMIT + 1))[0][0]["status"] == 413
    assert call(stack(model), post(authorized, b'{"rows": []}'), b'{"rows": []}')[0][0]["status"] == 200
    assert model.calls == ["http"]


@pytest.mark.parametrize("token", [TOKEN, None])
@pytest.mark.parametrize("headers", [[], [(b"authorization", f"Bearer {TOKEN}".encode())]])
def test_a_websocket_is_closed_unaccepted_and_never_reaches_the_model(token, headers):
    model = Model()
    sent, _ = call(stack(model, token), {"type": "websocket", "path": "/predict", "headers": headers})
    assert [message["type"] for message in sent] == ["websocket.close"] and model.calls == []


@pytest.mark.parametrize("middleware", [
    lambda app: RequireCredential(app, TOKEN, open_paths=[], realm="ui"),
    lambda app: RequestGuard(app, max_body_bytes=LIMIT),
])
def test_the_servers_lifespan_passes_and_an_unknown_scope_is_an_error(middleware):
    model = Model()
    call(middleware(model), {"type": "lifespan"})
    assert model.calls == ["lifespan"]
    with pytest.raises(ValueError, match="unsupported ASGI scope type 'telepathy'"):
        call(middleware(model), {"type": "telepathy"})
    assert model.calls == ["lifespan"]


def test_a_short_token_file_is_refused_naming_the_file(tmp_path):
    short = tmp_path / "serving-token"
    short.write_text("x" * (MIN_TOKEN_CHARS - 1) + "\n")
    with pytest.raises(ValueError, match=rf"credential file {short} holds {MIN_TOKEN_CHARS - 1} characters; "
                                         rf"a token needs at least {MIN_TOKEN_CHARS}"):
        read_credential(short)
    short.write_text("x" * MIN_TOKEN_CHARS)
    assert read_credential(short) == "x" * MIN_TOKEN_CHARS
    smoke = tmp_path / "smoke-token"
    smoke.write_text("smoke")
    with pytest.raises(ValueError, match=rf"smoke token file {smoke} holds 5 characters"):
        SmokeToken.from_env({SMOKE_TOKEN_FILE_ENV: str(smoke)})


STARTED: queue.Queue[ThreadingHTTPServer] = queue.Queue()


class LoopbackServer(ThreadingHTTPServer):
    """The real server class, bound to loopback, handing itself to the test once listening."""

    def __init__(self, address, handler) -> None:
        super().__init__(("127.0.0.1", address[1]), handler)
        STARTED.put(self)


@pytest.fixture
def no_model_url(tmp_path, monkeypatch) -> Iterator[str]:
    """The no-model server as its `main` starts it (the token read from its file), on a free port."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    monkeypatch.setenv("SERVING_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("SERVING_PORT", "0")
    monkeypatch.setattr(no_model_server, "ThreadingHTTPServer", LoopbackServer)
    monkeypatch.setattr(no_model_server.signal, "signal", lambda *_: None)  # only the main thread may
    threading.Thread(target=no_model_server.main, daemon=True).start()
    server = STARTED.get(timeout=10)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_no_model_server_compares_the_token_in_constant_time(no_model_url, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    assert httpx.post(f"{no_model_url}/predict", timeout=5).status_code == 401
    wrong = httpx.post(f"{no_model_url}/predict", headers={"authorization": "Bearer " + "y" * len(TOKEN)}, timeout=5)
    assert wrong.status_code == 401
    right = httpx.post(f"{no_model_url}/predict", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert right.status_code == 503 and "no model deployed" in json.loads(right.text)["error"]
    assert httpx.get(f"{no_model_url}/livez", timeout=5).status_code == 200
    assert (b"y" * len(TOKEN), TOKEN.encode()) in compared and (TOKEN.encode(), TOKEN.encode()) in compared


def test_the_no_model_server_refuses_another_teams_token_with_403(no_model_url, monkeypatch):
    other = {"authorization": "Bearer another-teams-token-61d0"}
    monkeypatch.setattr(no_model_server.NoModelHandler, "grants",
                        Grants.of(TOKEN, refused_digests=[token_digest("another-teams-token-61d0")]))
    refused = httpx.post(f"{no_model_url}/predict", headers=other, timeout=5)
    assert refused.status_code == 403 and "another team's token" in refused.json()["error"]
    assert httpx.get(f"{no_model_url}/readyz", headers=other, timeout=5).status_code == 503  # probes stay open
