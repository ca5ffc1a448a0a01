"""The service's guards outside the typed schema: the ASGI body guard, the request id and the smoke token."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import pytest

from services.contract import SMOKE_TOKEN_FILE_ENV
from services.serving.guard import (
    MAX_REQUEST_ID_CHARS,
    Refusal,
    RequestGuard,
    SmokeToken,
    check_request_id,
)

LIMIT = 1000
GOOD = json.dumps({"rows": [{"age": 41, "region": "east"}]}).encode()


class App:
    """The wrapped application: records the body it receives and answers 200."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    async def __call__(self, scope, receive, send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(chunks: list[bytes], method: str = "POST", path: str = "/predict",
         headers: dict[str, str] | None = None, limit: int = LIMIT) -> tuple[int, dict, App]:
    app = App()
    headers = {"content-type": "application/json"} if headers is None else headers
    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(RequestGuard(app, max_body_bytes=limit)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], (json.loads(body) if sent[0]["status"] != 200 else {}), app


def test_a_valid_body_reaches_the_service_unchanged_even_in_chunks():
    status, _, app = call([GOOD[:10], GOOD[10:]])
    assert status == 200 and app.body == GOOD


@pytest.mark.parametrize(
    ("chunks", "headers"),
    [
        ([b"{" + b" " * LIMIT + b"}"], None),  # one chunk over the limit
        ([b"{" + b" " * 600, b" " * 600 + b"}"], None),  # streamed (chunked) over the limit
        ([GOOD], {"content-type": "application/json", "content-length": str(LIMIT + 1)}),  # declared
    ],
)
def test_an_oversized_body_is_a_413_and_never_reaches_the_service(chunks, headers):
    status, body, app = call(chunks, headers=headers)
    assert status == 413 and "larger than 1000 bytes" in body["error"] and app.body is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/vnd.bentoml+pickle"])
def test_a_body_that_is_not_json_by_media_type_is_a_415(content_type):
    status, body, app = call([GOOD], headers={"content-type": content_type})
    assert status == 415 and app.body is None and "application/json" in body["error"]


def test_json_with_a_charset_or_no_content_type_is_fine():
    assert call([GOOD], headers={"content-type": "application/json; charset=utf-8"})[0] == 200
    assert call([GOOD], headers={})[0] == 200


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b'{"rows": [{"age": 1, "age": 2}]}', "duplicate key 'age'"),
        (b'{"rows": [], "rows": [{"age": 1}]}', "duplicate key 'rows'"),
        (b"{not json", "not valid JSON"),
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b'{"rows": [{"age": ' + b"9" * 5000 + b"}]}", "not valid JSON"),  # more digits than Python converts
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"rows": "\xff\xfe"}', "not valid JSON"),  # not UTF-8
    ],
)
def test_a_body_that_is_not_one_clean_json_document_is_a_400(payload, says):
    status, body, app = call([payload], limit=1_000_000)
    assert status == 400 and says in body["error"] and app.body is None


def test_other_routes_and_methods_only_get_the_size_limit():
    assert call([b"anything"], path="/other", headers={"content-type": "text/plain"})[0] == 200
    assert call([b""], method="GET", path="/readyz")[0] == 200
    assert call([b"x" * (LIMIT + 1)], path="/other")[0] == 413


def test_request_id():
    assert check_request_id(None) is None
    assert check_request_id("smoke-3f2a") == "smoke-3f2a"
    assert check_request_id("x" * MAX_REQUEST_ID_CHARS)
    for bad in ["x" * (MAX_REQUEST_ID_CHARS + 1), "", "a b", "caf\u00e9", "tab\there"]:
        with pytest.raises(Refusal) as refused:
            check_request_id(bad)
        assert refused.value.status == HTTPStatus.BAD_REQUEST and "x-request-id" in refused.value.message


def test_without_a_configured_token_nothing_is_smoke_and_any_token_is_a_403(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for environ in [{}, {SMOKE_TOKEN_FILE_ENV: ""}, {SMOKE_TOKEN_FILE_ENV: str(empty)},
                    {SMOKE_TOKEN_FILE_ENV: str(tmp_path / "absent")}]:
        token = SmokeToken.from_env(environ)
        assert not token.configured and token.marks(None) is False
        with pytest.raises(Refusal) as refused:
            token.marks("guess")
        assert refused.value.status == HTTPStatus.FORBIDDEN


def test_the_right_token_marks_smoke_and_a_wrong_one_is_a_403(tmp_path):
    (tmp_path / "token").write_text("s3cret-smoke-token\n")
    token = SmokeToken.from_env({SMOKE_TOKEN_FILE_ENV: str(tmp_path / "token")})
    assert token.configured and token.marks("s3cret-smoke-token") is True and token.marks(None) is False
    for wrong in ["s3cret", "s3cret-smoke-token ", "", "s3cret-smoke-tokenX"]:
        with pytest.raises(Refusal) as refused:
            token.marks(wrong)
        assert refused.value.status == HTTPStatus.FORBIDDEN
