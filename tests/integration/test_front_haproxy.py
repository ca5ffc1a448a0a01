"""The stack's front in a real HAProxy (tests/integration/front_haproxy.py): a user's request never reaches a
release's candidate or canary through the routing header, only a release's own checks, which carry the stack's
smoke token (issue 18, item 9)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.contract import CANARY_ROUTE_HEADER, CANARY_ROUTE_VALUE, CANDIDATE_ROUTE_VALUE, SMOKE_TOKEN_HEADER
from tests.integration.front_haproxy import Backend, running_front, stand_ins

pytestmark = pytest.mark.integration

SMOKE_TOKEN = "smoke-token-for-the-front-5d1c"
VERSIONS = {"champion": "7", "canary": "8", "candidate": "9"}


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Backend]]:
    with stand_ins(VERSIONS) as running:
        yield running


def digest_file(scratch: Path, token: str) -> Path:
    """The file infra/front.py uploads: the token's SHA-256, upper-case hex."""
    path = scratch / "front-smoke-token.sha256"
    path.write_text(hashlib.sha256(token.encode()).hexdigest().upper() + "\n")
    return path


def answered_by(port: int, headers: dict[str, str]) -> str:
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"rows": [{}]}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if body["server"] == "champion":  # the header that picked nothing does not reach the server either
        assert CANARY_ROUTE_HEADER not in body["headers"]
    return body["server"]


def test_the_routing_header_picks_the_candidate_or_canary_only_with_the_smoke_token(backends, tmp_path):
    env = {"FRONT_SMOKE_TOKEN_FILE": str(digest_file(tmp_path, SMOKE_TOKEN))}
    with running_front(tmp_path, backends, env) as port:
        for route in (CANDIDATE_ROUTE_VALUE, CANARY_ROUTE_VALUE):
            header = {CANARY_ROUTE_HEADER: route}
            assert answered_by(port, header) == "champion"  # anyone's request: where users' go
            assert answered_by(port, {**header, SMOKE_TOKEN_HEADER: "a-guessed-token-0000"}) == "champion"
            assert answered_by(port, {**header, SMOKE_TOKEN_HEADER: SMOKE_TOKEN.upper()}) == "champion"
            assert answered_by(port, {**header, SMOKE_TOKEN_HEADER: SMOKE_TOKEN}) == route  # a release's check
        assert answered_by(port, {SMOKE_TOKEN_HEADER: SMOKE_TOKEN}) == "champion"  # the token alone picks nothing


def test_a_front_without_a_smoke_token_never_honours_the_routing_header(backends, tmp_path):
    with running_front(tmp_path, backends, {}) as port:
        for route in (CANDIDATE_ROUTE_VALUE, CANARY_ROUTE_VALUE):
            assert answered_by(port, {CANARY_ROUTE_HEADER: route, SMOKE_TOKEN_HEADER: SMOKE_TOKEN}) == "champion"
