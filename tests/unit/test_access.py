"""The access-control middleware every HTTP service of the stack runs behind."""

from __future__ import annotations

import asyncio
import base64

import pytest

from services.access import Grants, RequireCredential, read_credential, serving_grants, token_digest

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


TEAM_TOKEN, OTHER_TEAMS_TOKEN = "team-a-token-2e6f91", "team-b-token-84c0d3"
TEAM_GRANTS = Grants.of(TOKEN, TEAM_TOKEN, refused_digests=[token_digest(OTHER_TEAMS_TOKEN)])


def answer(grants: Grants, headers: list[tuple[bytes, bytes]]) -> dict:
    app = RequireCredential(ok_app, grants, open_paths=["/livez"], realm="serving")
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "path": "/predict", "headers": headers}, None, send))
    return sent[0]


@pytest.mark.parametrize(("token", "expected"), [
    (TOKEN, 200), (TEAM_TOKEN, 200),  # the platform's serving token and the model's team's
    (OTHER_TEAMS_TOKEN, 403),  # known (its digest), without rights here
    ("an-unknown-token-5b1e", 401),
])
def test_a_teams_model_admits_its_team_and_the_platform_and_refuses_another_team(token, expected):
    start = answer(TEAM_GRANTS, [(b"authorization", b"Bearer " + token.encode())])
    assert start["status"] == expected
    assert any(name == b"www-authenticate" for name, _ in start["headers"]) == (expected == 401)


def test_grants_come_from_files_and_hold_refused_tokens_by_digest_only(tmp_path):
    (tmp_path / "serving").write_text(TOKEN + "\n")
    (tmp_path / "team").write_text(TEAM_TOKEN + "\n")
    (tmp_path / "refused").write_text(f"{token_digest(OTHER_TEAMS_TOKEN)}\n")
    env = {"SERVING_TOKEN_FILE": str(tmp_path / "serving"), "TEAM_SERVING_TOKEN_FILE": str(tmp_path / "team"),
           "REFUSED_TOKEN_DIGESTS_FILE": str(tmp_path / "refused")}
    grants = serving_grants(env)
    assert grants == TEAM_GRANTS and OTHER_TEAMS_TOKEN.encode() not in grants.admitted
    assert serving_grants({"SERVING_TOKEN_FILE": str(tmp_path / "serving")}) == Grants.of(TOKEN)
    assert serving_grants({}) is None  # no serving token: no access control, as before teams
    (tmp_path / "team").write_text("short\n")
    with pytest.raises(ValueError, match="holds 5 characters"):
        serving_grants(env)
