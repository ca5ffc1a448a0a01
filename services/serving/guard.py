"""What the service refuses before, or besides, the typed request schema. Standard library (and the contract) only.

- `RequestGuard`, an ASGI middleware: a body over `max_body_bytes` is a 413 (declared or streamed),
  a `/predict` body that is not `application/json` is a 415, and one that is not JSON or repeats a key
  in an object (which parsers resolve differently: the client's intent is unknown) is a 400.
- `check_request_id`: a client's `x-request-id` is at most `MAX_REQUEST_ID_CHARS` printable ASCII
  characters, else a 400; it travels into logs, the inference log and the response header.
- `SmokeToken`: deploy smoke requests prove themselves with the token in the file named by
  `SMOKE_TOKEN_FILE`; a request carrying the smoke header with any other value is a 403.
- `serving_middlewares`: the order they run in. The credential check comes first, so an anonymous request
  is a 401 before its body is read or its media type judged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from services.access import Grants, RequireCredential, credential_matches, long_enough, refuse_non_http
from services.contract import SERVING_OPEN_PATHS, SMOKE_TOKEN_FILE_ENV

MAX_REQUEST_ID_CHARS = 128
JSON_MEDIA_TYPE = "application/json"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Refusal(Exception):
    """A request the service answers with a 4xx: the status and what was wrong."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_request_id(value: str | None) -> str | None:
    """The client's request id (None when it sent none); a `Refusal` when too long or not printable ASCII."""
    if value is None:
        return None
    if not value or len(value) > MAX_REQUEST_ID_CHARS or not all(" " < char <= "~" for char in value):
        raise Refusal(HTTPStatus.BAD_REQUEST, f"header x-request-id must be 1 to {MAX_REQUEST_ID_CHARS} printable "
                                              f"ASCII characters without spaces (got {len(value)} characters)")
    return value


class SmokeToken:
    """The deploy's smoke token; without one (no file named, or an empty file) nothing is smoke."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] | None = None) -> SmokeToken:
        name = (os.environ if environ is None else environ).get(SMOKE_TOKEN_FILE_ENV, "")
        if not name:
            return cls(None)
        try:
            token = Path(name).read_text().strip()
        except FileNotFoundError:
            return cls(None)
        return cls(long_enough(token, f"smoke token file {name}") if token else None)

    @property
    def configured(self) -> bool:
        return self._token is not None

    def marks(self, presented: str | None) -> bool:
        """True for the right token, False when none is presented; a `Refusal` (403) for any other value."""
        if presented is None:
            return False
        if self._token is None or not credential_matches(presented, self._token):
            raise Refusal(HTTPStatus.FORBIDDEN, "wrong smoke token")
        return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    unique = dict(pairs)
    if len(unique) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Refusal(HTTPStatus.BAD_REQUEST, f"duplicate key {key[:80]!r} in a JSON object of the body")
            seen.add(key)
    return unique


def check_json_body(body: bytes) -> None:
    """A `Refusal` unless the body is one JSON document with no key repeated inside an object."""
    if not body.strip():
        raise Refusal(HTTPStatus.BAD_REQUEST, 'empty body: send {"rows": [...]}')
    try:
        json.loads(body, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise Refusal(HTTPStatus.BAD_REQUEST, "the body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer of more digits than Python converts
        raise Refusal(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {str(exc)[:200]}") from None


class RequestGuard:
    """ASGI middleware: bounds every request body; checks the media type and JSON of the `json_paths`."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_body_bytes: int,
                 json_paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_paths = json_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket's messages would pass unbounded
            await refuse_non_http(scope, receive, send, self.app)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        try:
            if scope.get("path") in self.json_paths:
                media_type = headers.get("content-type", JSON_MEDIA_TYPE).split(";")[0].strip().lower()
                if media_type != JSON_MEDIA_TYPE:
                    raise Refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                  f"content-type {media_type!r} is not supported: send {JSON_MEDIA_TYPE}")
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise self._too_large()
            body = await self._read_body(receive)
            if body is None:  # the client went away
                return
            if scope.get("path") in self.json_paths:
                check_json_body(body)
        except Refusal as refusal:
            await _answer(send, refusal)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> Refusal:
        return Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       f"the request body is larger than {self.max_body_bytes} bytes (serving.max_body_bytes)")


def serving_middlewares(max_body_bytes: int, grants: Grants | None) -> list[tuple[type, dict[str, Any]]]:
    """The service's ASGI middlewares, outermost first (as BentoML and Starlette apply them)."""
    guard: tuple[type, dict[str, Any]] = (RequestGuard, {"max_body_bytes": max_body_bytes})
    if grants is None:
        return [guard]
    return [(RequireCredential, {"credential": grants, "open_paths": SERVING_OPEN_PATHS, "realm": "serving"}), guard]


async def _answer(send: Send, refusal: Refusal) -> None:
    payload = json.dumps({"error": refusal.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if refusal.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": int(refusal.status), "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
