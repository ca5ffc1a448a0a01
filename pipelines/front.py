"""The local front: the one serving URL of the embedded platform, in front of each model's live bento server.

`/models/<name>/<path>` goes to that model's server as `/<path>` (predict, the probes, the OpenAPI docs);
`/predict` and every other path go to the default model's (`pipelines.routes.read_default`), as with one
model. A name that no route names answers 404 with the models served.
A release starts the new `bentoml serve` beside the old one, checks it, then points the front at it by
rewriting its model's route file (`<state_dir>/run/routes/<name>.json`, `pipelines.routes`); the front reads
a file again whenever it changes, so the next request goes to the new server. The old server is then
stopped gracefully and finishes what it was answering. A request that finds its server gone (connection
refused, or a kept-alive connection closed under it) is sent again to whatever the route names now,
so a switch loses no request. Only the standard library, aiohttp and uvicorn (both already installed
for BentoML): the embedded default needs nothing but Python. aiohttp rather than httpx relays: it costs
a fraction of httpx's CPU per request, and every request pays the front. The stack uses HAProxy
instead (`services/front/`).

Run as `python -m uvicorn --factory pipelines.front:create_app`, with FRONT_ROUTES_DIR set.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from pipelines.routes import DEFAULT_FILE, Route, model_route_file, read_default, read_route, served_models
from services.contract import MODEL_ROUTE_PREFIX, is_dns_label

ROUTES_DIR_ENV = "FRONT_ROUTES_DIR"
MAX_BODY_ENV = "FRONT_MAX_BODY_BYTES"
HEALTH_PATH = "/-/front"  # the front's own liveness; every other path goes to the model server
RETRY_WINDOW_S = 15.0  # how long a request may wait for a live server during a switch or a restart
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the front sets itself are not relayed.
# `expect` too: uvicorn already answered the client's 100-continue, and the body is here.
_NOT_RELAYED = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer",
                b"proxy-connection", b"host", b"content-length", b"expect"}
# What aiohttp would add on its own; the front sends the client's headers only (a body without a
# Content-Type must reach the server without one, not as application/octet-stream).
_NOT_ADDED = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
# The server never got the request: sending it again (to the current route) cannot do anything twice.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ServerDisconnectedError)


class _Watched:
    """One file, read again only when it changed (one stat per request)."""

    def __init__(self, path: Path, read: Callable[[Path], Any]) -> None:
        self.path, self._read = path, read
        self._seen: tuple[int, int] | None = None
        self._value: Any = None

    def current(self) -> Any:
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            seen = None
        if seen != self._seen:
            self._seen, self._value = seen, self._read(self.path)
        return self._value


class _Routes:
    """Each model's route file and the default model's name, each read again only when it changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._default = _Watched(directory / DEFAULT_FILE, lambda path: read_default(path.parent))
        self._models: dict[str, _Watched] = {}

    def of(self, model: str) -> Route | None:
        watched = self._models.get(model)
        if watched is None:
            path = model_route_file(self.directory, model)
            if not is_dns_label(model) or not path.exists():
                return None  # remembered only once it exists: unknown names never fill the cache
            watched = self._models[model] = _Watched(path, read_route)
        return watched.current()

    def default_model(self) -> str | None:
        return self._default.current()

    def served(self) -> list[str]:
        return served_models(self.directory)


class Front:
    """The ASGI app: relays each request to the live server, again if that server went away meanwhile."""

    def __init__(self, routes_dir: Path, max_body_bytes: int) -> None:
        self.routes = _Routes(routes_dir)
        self.max_body_bytes = max_body_bytes
        self.client: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == HEALTH_PATH:
            await _answer(send, 200, self._health())
            return
        path = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        if path.startswith(MODEL_ROUTE_PREFIX) or path == MODEL_ROUTE_PREFIX.rstrip("/"):
            model, slash, rest = path.removeprefix(MODEL_ROUTE_PREFIX).partition("/")
            if self.routes.of(model) is None:
                await _answer(send, 404, {"error": f"no model named {model!r} is served here",
                                          "models": self.routes.served()})
                return
            if not slash:  # `/models/<name>`: its docs page loads `./docs.json`, which needs the slash
                await _redirect(send, f"{MODEL_ROUTE_PREFIX}{model}/")
                return
            lookup, path = (lambda: self.routes.of(model)), f"/{rest}"
        else:
            lookup = self._default_route
        body = await self._read_body(receive)
        if body is None:
            await _answer(send, 413, {"error": f"request body larger than {self.max_body_bytes} bytes"})
            return
        await self._relay(scope, path, lookup, body, send)

    def _default_route(self) -> Route | None:
        model = self.routes.default_model()
        return self.routes.of(model) if model else None

    def _health(self) -> dict[str, Any]:
        route = self._default_route()
        models = {model: found.model_version for model in self.routes.served() if (found := self.routes.of(model))}
        return {"front": "up", "model_version": route.model_version if route else None,
                "default_model": self.routes.default_model(), "models": models}

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No read timeout of its own: the server behind answers or fails by its own limits (and
                # a request waiting for a free connection just waits). Relayed as they are: the answer
                # (no decompression, no redirect followed, no cookie kept) and the client's headers.
                self.client = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                    connector=aiohttp.TCPConnector(limit=256), auto_decompress=False,
                    skip_auto_headers=_NOT_ADDED, cookie_jar=aiohttp.DummyCookieJar())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _relay(self, scope: dict[str, Any], path: str, lookup: Callable[[], Route | None], body: bytes,
                     send: Any) -> None:
        """Send the request to `path` on the server `lookup` names (asked again before each try)."""
        assert self.client is not None, "lifespan startup creates the client"
        target = path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        # aiohttp writes header values as UTF-8: valid UTF-8 from the client goes on byte for byte.
        headers = [(name.decode("latin-1"), value.decode("utf-8", "replace"))
                   for name, value in scope["headers"] if name.lower() not in _NOT_RELAYED]
        deadline = time.monotonic() + RETRY_WINDOW_S
        while True:
            route = lookup()
            if route is None:
                await _answer(send, 503, {"error": "no model is being served yet: run `make deploy`"})
                return
            try:
                response = await self.client.request(
                    scope["method"], yarl.URL(route.url + target, encoded=True),  # the path exactly as sent
                    headers=headers, data=body, allow_redirects=False)
                break
            except _NOT_SENT as exc:
                # The server never answered this request: it is stopping or gone. Try the route again.
                if time.monotonic() > deadline:
                    await _answer(send, 502, {"error": f"the model server at {route.url} does not answer: {exc}"})
                    return
                await asyncio.sleep(0.05)
            except aiohttp.ClientError as exc:  # e.g. a reset mid-request: it may have been acted on
                await _answer(send, 502, {"error": f"the model server at {route.url} failed this request: {exc}"})
                return
        try:
            async with response:
                content = await response.read()
        except aiohttp.ClientError as exc:  # it answered, then broke off: not safe to send again
            await _answer(send, 502, {"error": f"the model server at {route.url} broke off its answer: {exc}"})
            return
        relayed = [(name, value) for name, value in response.raw_headers if name.lower() not in _NOT_RELAYED]
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [*relayed, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def _redirect(send: Any, location: str) -> None:
    await send({"type": "http.response.start", "status": 308,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def create_app() -> Front:
    return Front(Path(os.environ[ROUTES_DIR_ENV]), int(os.environ[MAX_BODY_ENV]))
