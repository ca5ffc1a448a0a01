"""`GET /card`: the version's model card as its gate wrote it, copied into the bento when it was built.

An ASGI middleware added after the service's credential check, so with a serving token the card needs the same
credential as `/predict` (a mount would redirect `/card` to `/card/`). A bento of a version that no gate had
carded when it was built answers 404 saying how to get one. Standard library only.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

CARD_FILE = "model-card.md"  # in the bento's source root, beside `services/`
CARD_PATH = "/card"


def bento_card_file() -> Path:
    """Where the bento keeps the card: its source root, two folders above this file."""
    return Path(__file__).resolve().parents[2] / CARD_FILE


class CardEndpoint:
    """ASGI middleware answering `/card` with the card file (read once at start); every other path goes on."""

    def __init__(self, app: Any, card_file: Path) -> None:
        self.app = app
        self.card = card_file.read_bytes() if card_file.is_file() else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != CARD_PATH:
            await self.app(scope, receive, send)
        elif scope["method"] not in ("GET", "HEAD"):
            await _send(send, HTTPStatus.METHOD_NOT_ALLOWED, _json({"error": f"{CARD_PATH} answers GET only"}),
                        b"application/json", [(b"allow", b"GET, HEAD")])
        elif self.card is None:
            await _send(send, HTTPStatus.NOT_FOUND, _json({
                "error": "this bento carries no model card: its version had not been gated when it was built; "
                         "run `make validate`, then build and deploy it again"}), b"application/json")
        else:
            await _send(send, HTTPStatus.OK, b"" if scope["method"] == "HEAD" else self.card,
                        b"text/markdown; charset=utf-8", length=len(self.card))


def _json(body: dict[str, str]) -> bytes:
    return json.dumps(body).encode()


async def _send(send: Any, status: HTTPStatus, body: bytes, media_type: bytes,
                extra: list[tuple[bytes, bytes]] | None = None, length: int | None = None) -> None:
    size = len(body) if length is None else length  # HEAD: the length of the body GET would send
    headers = [(b"content-type", media_type), (b"content-length", str(size).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": int(status), "headers": headers})
    await send({"type": "http.response.body", "body": body})
