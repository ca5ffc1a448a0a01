"""Access control for the platform's HTTP services: one ASGI middleware, standard library only.

With a credential configured (read from a file, never from env or the command line), every request
needs it except the health probes a container engine calls unauthenticated. Accepted forms:
`Authorization: Bearer <credential>` (API clients, the deploy step) and HTTP Basic with the credential
as password (a person in a browser; any user name). Without a credential the app is served as is,
which the stack allows only on loopback (infra/config.py refuses `exposePorts` without `authEnabled`).
None of the services speaks WebSocket: such a connection is closed before it is accepted, whatever it
carries; only the server's own lifespan scope passes (a server start is no client's request).
Credentials are compared in constant time (`credential_matches`) and are at least `MIN_TOKEN_CHARS` long.
A service may admit several credentials and answer 403 to credentials it knows but does not admit (`Grants`: a
team's token at another team's model), which it holds by their SHA-256 only, so it never holds them in clear.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from services.contract import (
    MIN_TOKEN_CHARS,
    REFUSED_TOKENS_FILE_ENV,
    SERVING_TOKEN_FILE_ENV,
    TEAM_TOKEN_FILE_ENV,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def read_credential(path: str | Path | None) -> str | None:
    """The credential in `path` (one line), None when no path is given; an empty or short one is an error."""
    if not path:
        return None
    credential = Path(path).read_text().strip()
    if not credential:
        raise ValueError(f"credential file {path} is empty")
    return long_enough(credential, f"credential file {path}")


def long_enough(credential: str, source: str) -> str:
    """The credential, unless it is shorter than `MIN_TOKEN_CHARS` (a ValueError naming `source`)."""
    if len(credential) < MIN_TOKEN_CHARS:
        raise ValueError(f"{source} holds {len(credential)} characters; a token needs at least {MIN_TOKEN_CHARS} "
                         "(e.g. `openssl rand -hex 24`)")
    return credential


def credential_matches(presented: str | None, credential: bytes) -> bool:
    """Whether `presented` is the credential, in time that does not depend on where they differ."""
    return presented is not None and hmac.compare_digest(presented.encode("utf-8", "replace"), credential)


def token_digest(token: str) -> str:
    """A credential's SHA-256 in lower-case hex: what a service holds of a credential it refuses."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Grants:
    """The credentials a service admits, and the digests (`token_digest`) of those it knows and refuses."""

    admitted: tuple[bytes, ...]
    refused_digests: frozenset[str] = frozenset()

    @classmethod
    def of(cls, credential: str, *others: str | None, refused_digests: Iterable[str] = ()) -> Grants:
        admitted = (credential, *(other for other in others if other))
        return cls(tuple(c.encode() for c in admitted), frozenset(refused_digests))

    def refusal(self, presented: str | None) -> HTTPStatus | None:
        """None when `presented` is admitted; 403 for a refused one, 401 for anything else (or nothing)."""
        if presented is None:
            return HTTPStatus.UNAUTHORIZED
        if sum(credential_matches(presented, credential) for credential in self.admitted):  # each one compared
            return None
        return HTTPStatus.FORBIDDEN if token_digest(presented) in self.refused_digests else HTTPStatus.UNAUTHORIZED


def read_grants(credential_file: str | None, other_files: Sequence[str | None] = (),
                refused_file: str | None = None) -> Grants | None:
    """The grants these files give (None without `credential_file`: no access control); the refused file holds one
    digest a line."""
    credential = read_credential(credential_file)
    if credential is None:
        return None
    refused = Path(refused_file).read_text().split() if refused_file else []
    return Grants.of(credential, *(read_credential(path) for path in other_files), refused_digests=refused)


def serving_grants(environ: MutableMapping[str, str] | None = None) -> Grants | None:
    """Whom a serving container admits (the serving token, its model's team's token) and refuses with 403 (the
    other teams' tokens), from the files its env names; None without a serving token (no access control)."""
    env = os.environ if environ is None else environ
    return read_grants(env.get(SERVING_TOKEN_FILE_ENV), [env.get(TEAM_TOKEN_FILE_ENV)],
                       env.get(REFUSED_TOKENS_FILE_ENV))


async def refuse_non_http(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
    """Pass the server's lifespan scope to `app`, close a WebSocket unaccepted (403); any other scope is an error."""
    if scope["type"] == "lifespan":
        await app(scope, receive, send)
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "WebSocket is not served here"})
    else:  # the ASGI spec asks an application to raise on a scope type it does not know
        raise ValueError(f"unsupported ASGI scope type {scope['type']!r}")


def presented_credential(headers: Iterable[tuple[bytes, bytes]], own_header: bytes | None = None) -> str | None:
    """The credential a request carries: Authorization as Bearer or as Basic's password, or `own_header`."""
    for name, value in headers:
        if own_header is not None and name.lower() == own_header:
            return value.decode("latin-1").strip()
        if name.lower() != b"authorization":
            continue
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(token.strip(), validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


class RequireCredential:
    """Answer 401 to any HTTP request without the credential (or one of `credential`'s grants), 403 to one the grants
    refuse, except on `open_paths`."""

    def __init__(
        self, app: ASGIApp, credential: str | Grants, open_paths: Iterable[str], realm: str,
        own_header: str | None = None
    ) -> None:
        self.app = app
        self.grants = Grants.of(credential) if isinstance(credential, str) else credential
        self.open_paths = frozenset(open_paths)
        self.realm = realm
        self.own_header = own_header.lower().encode() if own_header else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await refuse_non_http(scope, receive, send, self.app)
            return
        refusal = None if scope["path"] in self.open_paths else self.grants.refusal(
            presented_credential(scope.get("headers") or [], self.own_header))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": refusal_message(refusal)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refusal == HTTPStatus.UNAUTHORIZED:
            headers.append((b"www-authenticate", f'Basic realm="{self.realm}", charset="UTF-8"'.encode()))
        await send({"type": "http.response.start", "status": int(refusal), "headers": headers})
        await send({"type": "http.response.body", "body": body})


def refusal_message(refusal: HTTPStatus) -> str:
    if refusal == HTTPStatus.FORBIDDEN:
        return "this credential is known but has no rights here: another team's token (send this model's team's token)"
    return "authentication required: send `Authorization: Bearer <token>`"
