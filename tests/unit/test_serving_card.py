"""`GET /card`: the card the bento carries, behind the serving credential like `/predict`; a clear 404 without one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from services.access import Grants
from services.serving.card import CARD_FILE, CardEndpoint, bento_card_file
from services.serving.guard import serving_middlewares

TOKEN = "serving-token-0123456789"
CARD = "# Model card: credit-risk v3\n\n| group | rate |\n|---|---|\n| é | 0.5 |\n"


class Model:
    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the model"})


def served(card: Path, token: str | None = None):
    app = CardEndpoint(Model(), card)  # innermost after the service's own middlewares, as service.py adds it
    for middleware, options in reversed(serving_middlewares(1000, Grants.of(token) if token else None)):
        app = middleware(app, **options)
    return app


def get(app, method: str = "GET", headers: dict[str, str] | None = None, path: str = "/card") -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serving") as client:
            return await client.request(method, path, headers=headers)
    return asyncio.run(call())


def card_file(tmp_path: Path) -> Path:
    path = tmp_path / CARD_FILE
    path.write_text(CARD, encoding="utf-8")
    return path


def test_the_card_is_served_as_markdown(tmp_path):
    response = get(served(card_file(tmp_path)))
    assert response.status_code == 200 and response.text == CARD
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    head = get(served(card_file(tmp_path)), "HEAD")
    assert head.status_code == 200 and head.content == b""


def test_the_card_needs_the_serving_credential_when_there_is_one(tmp_path):
    app = served(card_file(tmp_path), TOKEN)
    assert get(app).status_code == 401
    assert get(app, headers={"authorization": f"Bearer {TOKEN}"}).text == CARD


def test_a_bento_without_a_card_says_how_to_get_one(tmp_path):
    response = get(served(tmp_path / CARD_FILE))
    assert response.status_code == 404 and "make validate" in response.json()["error"]


def test_only_reading_is_answered(tmp_path):
    response = get(served(card_file(tmp_path)), "DELETE")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"


def test_other_paths_go_on_to_the_model(tmp_path):
    assert get(served(card_file(tmp_path)), path="/livez").text == "the model"
    assert get(served(card_file(tmp_path)), path="/card/").text == "the model"


def test_the_bento_keeps_the_card_in_its_source_root():
    # services/serving/card.py inside the bento's src/: the card is src/model-card.md, where the build writes it.
    assert bento_card_file() == Path(__file__).resolve().parents[2] / CARD_FILE
