"""The front's routing header, under mocks: it reaches a candidate or a canary only on a request carrying the
stack's smoke token, which the front knows only by its digest, from a file only HAProxy's user reads (issue 18,
item 9; tests/integration/test_front_haproxy.py runs the real front config)."""

from __future__ import annotations

import hashlib

from pulumi.runtime import rpc

from services.contract import CANARY_ROUTE_HEADER, SMOKE_TOKEN_HEADER
from tests.infra.program import REPO_ROOT, run_program
from tests.infra.test_stack_program import env_of, secret_uploads

SMOKE_TOKEN = "smk-tok-3b9f-6e8d21"
WITH_CANDIDATE = {"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
                  "candidateImage": "mlops-serving:v8-a", "candidateVersion": "8"}
HAPROXY_CFG = (REPO_ROOT / "services" / "front" / "haproxy.cfg").read_text()


def test_the_front_knows_the_smoke_token_by_its_digest_from_a_file_only_haproxy_reads():
    stack = run_program(WITH_CANDIDATE, {"smokeToken": SMOKE_TOKEN})
    front = stack.container("front")
    (upload,) = secret_uploads(front)
    assert env_of(front)["FRONT_SMOKE_TOKEN_FILE"] == upload["file"]
    assert upload["content"] == hashlib.sha256(SMOKE_TOKEN.encode()).hexdigest().upper() + "\n"
    assert (upload["permissions"], upload["owner"], upload["group"]) == ("0600", "10001", "10001")
    assert front.plain["user"] == "10001:10001" and rpc.is_rpc_secret(front.inputs["uploads"])
    assert SMOKE_TOKEN not in repr(front.plain) + repr(stack.exports)


def test_the_front_config_drops_the_routing_header_of_any_request_without_the_token():
    gate = (".if defined(FRONT_SMOKE_TOKEN_FILE)\n"
            f"    acl release_check req.fhdr({SMOKE_TOKEN_HEADER}),sha2(256),hex -m str"
            ' -f "${FRONT_SMOKE_TOKEN_FILE}"\n'
            f"    http-request del-header {CANARY_ROUTE_HEADER} unless release_check\n"
            ".else\n"
            f"    http-request del-header {CANARY_ROUTE_HEADER}\n"
            ".endif\n")
    assert gate in HAPROXY_CFG
    # The gate comes before every rule that reads the header.
    assert HAPROXY_CFG.index(gate) < HAPROXY_CFG.index(f"req.hdr({CANARY_ROUTE_HEADER})")
    assert "FRONT_SMOKE_TOKEN_FILE" not in env_of(run_program().container("front"))  # no token: never honoured
