"""The stack's front in a real HAProxy (tests/integration/front_haproxy.py): a user's request never reaches a
release's candidate or canary through the routing header, only a release's own checks, which carry the stack's
smoke token (issue 18, item 9); and a release checks its candidate through a front terminating TLS with a
certificate for a DNS name, verifying it (item 7)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.deploy import DeployError
from pipelines.stack import StackTarget
from pipelines.stack_models import StackModel
from services.contract import (
    CANARY_ROUTE_HEADER,
    CANARY_ROUTE_VALUE,
    CANDIDATE_ROUTE_VALUE,
    SMOKE_TOKEN_HEADER,
    TLS_SERVER_NAME_OUTPUT,
)
from tests.infra.certificates import self_signed
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


def test_a_smoke_token_holding_a_comma_still_routes_the_release_check(backends, tmp_path):
    """The stack config takes any one-line token; HAProxy's req.hdr would split this one at its comma."""
    token = "smoke,token-with-a-comma-77"
    with running_front(tmp_path, backends, {"FRONT_SMOKE_TOKEN_FILE": str(digest_file(tmp_path, token))}) as port:
        assert answered_by(port, {CANARY_ROUTE_HEADER: CANDIDATE_ROUTE_VALUE, SMOKE_TOKEN_HEADER: token}) == "candidate"


def test_the_front_routes_each_model_to_its_own_servers_and_predict_to_the_default_model(backends, tmp_path):
    """Issue 21: `/models/<name>/<path>` reaches that model's servers as `/<path>` (its release check its candidate),
    `/predict` and `/models/<default>/` the default model's; a name the stack does not serve is a 404 naming it."""
    env = {"FRONT_SMOKE_TOKEN_FILE": str(digest_file(tmp_path, SMOKE_TOKEN))}
    with stand_ins({"bikes": "3", "bikes-candidate": "4"}) as bikes:
        models = {"bike-rentals": {"release": bikes["bikes"], "candidate": bikes["bikes-candidate"]}}
        with running_front(tmp_path, backends, env, models) as port:
            def path_of(path: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
                answer = httpx.post(f"http://127.0.0.1:{port}{path}", json={"rows": [{}]}, headers=headers or {},
                                    timeout=10)
                assert answer.status_code == 200, (path, answer.text)
                return answer.json()["server"], answer.json()["path"]

            assert path_of("/models/bike-rentals/predict") == ("bikes", "/predict")
            assert path_of("/models/loan-default/predict") == ("champion", "/predict")
            assert path_of("/predict") == ("champion", "/predict")
            assert path_of("/models/bike-rentals/readyz?x=1") == ("bikes", "/readyz?x=1")
            check = {CANARY_ROUTE_HEADER: CANDIDATE_ROUTE_VALUE, SMOKE_TOKEN_HEADER: SMOKE_TOKEN}
            assert path_of("/models/bike-rentals/predict", check) == ("bikes-candidate", "/predict")
            assert path_of("/predict", check) == ("candidate", "/predict")  # the default model's own candidate
            assert path_of("/models/bike-rentals/predict", {CANARY_ROUTE_HEADER: CANDIDATE_ROUTE_VALUE})[0] == "bikes"
            unknown = httpx.get(f"http://127.0.0.1:{port}/models/forecast/predict", timeout=10)
            assert unknown.status_code == 404
            assert unknown.json() == {"error": "no model named 'forecast' is served here"}
            docs = httpx.get(f"http://127.0.0.1:{port}/models/bike-rentals", timeout=10)
            assert docs.status_code == 302 and docs.headers["location"] == "/models/bike-rentals/"


def test_a_front_without_a_smoke_token_never_honours_the_routing_header(backends, tmp_path):
    with running_front(tmp_path, backends, {}) as port:
        for route in (CANDIDATE_ROUTE_VALUE, CANARY_ROUTE_VALUE):
            assert answered_by(port, {CANARY_ROUTE_HEADER: route, SMOKE_TOKEN_HEADER: SMOKE_TOKEN}) == "champion"


class FrontStack:
    """The `StackApplier` seam (the Pulumi engine): the stack's outputs and secrets, as a stack with this
    front would have them; it records what the release applied."""

    def __init__(self, outputs: Mapping[str, str]) -> None:
        self.outputs, self.applied = dict(outputs), []

    def config(self) -> Mapping[str, str]:
        return {}

    def secret(self, key: str) -> str | None:
        return {"smokeToken": SMOKE_TOKEN}.get(key)

    def apply(self, changes: Mapping[str, str]) -> Mapping[str, str]:
        self.applied.append(dict(changes))
        return self.outputs


def test_a_release_checks_its_candidate_through_a_tls_front_verifying_the_name_its_certificate_carries(
        backends, tmp_path, monkeypatch):
    """The certificate names serving.test only (no IP address): the checks connect to 127.0.0.1, send that name
    (SNI and Host) and verify the certificate against it, with the stack's CA as a user's release CLI has it."""
    certificate = self_signed("serving.test")
    bundle, ca = tmp_path / "front-tls.pem", tmp_path / "ca.pem"
    bundle.write_text(f"{certificate.certificate.strip()}\n{certificate.private_key.strip()}\n")
    ca.write_text(certificate.certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    env = {"FRONT_TLS_CERT_FILE": str(bundle), "FRONT_SMOKE_TOKEN_FILE": str(digest_file(tmp_path, SMOKE_TOKEN))}
    config = load_config(DEFAULT_CONFIG_PATH)
    config = config.model_copy(update={"platform": config.platform.model_copy(update={"startup_timeout_s": 3.0})})
    candidate = SimpleNamespace(model_version=VERSIONS["candidate"])  # all a check reads of the bento
    serving = {"servingImage": "mlops-serving:v7-a", "modelVersion": VERSIONS["champion"]}
    default_model = StackModel(config.model_name, None)  # a stack serving one model
    with running_front(tmp_path, backends, env) as port:
        url = f"https://127.0.0.1:{port}"
        stack = FrontStack({"serving_url": url, TLS_SERVER_NAME_OUTPUT: "serving.test"})
        StackTarget(config, stack)._check_candidate(default_model, candidate, [{}, {}], "mlops-serving:v9-a", serving)
        assert stack.applied == [{**serving, "candidateImage": "mlops-serving:v9-a", "candidateVersion": "9"}]
        # Verification is on: without the name, the certificate does not vouch for 127.0.0.1, and the release
        # removes the candidate again.
        unnamed = FrontStack({"serving_url": url})
        with pytest.raises(DeployError, match="not ready after"):
            StackTarget(config, unnamed)._check_candidate(default_model, candidate, [{}], "mlops-serving:v9-a", serving)
        assert unnamed.applied[-1] == {**serving, "candidateImage": "", "candidateVersion": "none"}
