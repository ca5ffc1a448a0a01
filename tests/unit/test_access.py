"""The access-control middleware every HTTP service of the stack runs behind."""

from __future__ import annotations

import asyncio
import base64

import pytest

from services.access import RequireCredential, read_credential

TOKEN = "s3cret-token-7c1d9e2a"


async def ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def status(path: str, headers: list[tuple[bytes, bytes]] | None = None, own_header: str | None = None) -> int:
    app = RequireCredential(ok_app, TOKEN, open_paths=["/livez", "/readyz"], realm="test", own_header=own_header)
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "headers": headers or []}, None, send))
    return sent[0]["status"]


def basic(password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"anyone:{password}".encode())


@pytest.mark.parametrize(("path", "headers", "expected"), [
    ("/predict", [], 401),
    ("/metrics", [], 401),
    ("/predict", [(b"authorization", b"Bearer wrong")], 401),
    ("/predict", [(b"authorization", b"Bearer " + TOKEN.encode())], 200),
    ("/predict", [(b"Authorization", basic(TOKEN))], 200),
    ("/predict", [(b"authorization", basic("wrong"))], 401),
    ("/predict", [(b"authorization", b"Basic !!not-base64")], 401),
    ("/livez", [], 200),
    ("/readyz", [], 200),
])
def test_only_health_probes_are_open(path, headers, expected):
    assert status(path, headers) == expected


def test_a_service_may_accept_its_own_header():
    assert status("/api/projects", [(b"evidently-secret", TOKEN.encode())], own_header="evidently-secret") == 200
    assert status("/api/projects", [(b"evidently-secret", TOKEN.encode())]) == 401


def test_credentials_come_from_files(tmp_path):
    assert read_credential(None) is None
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert read_credential(tmp_path / "token") == TOKEN
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_credential(tmp_path / "empty")
