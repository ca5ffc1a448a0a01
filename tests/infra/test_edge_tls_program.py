"""TLS at the edge on the docker target, under mocks: the front gets the certificate as a secret file and
binds TLS on it (tests/stack/test_edge_tls_stack.py runs it; the kubernetes Ingress is in
test_kubernetes_program.py, the config errors in test_stack_program.py)."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime import rpc

from tests.infra.certificates import self_signed
from tests.infra.program import REPO_ROOT, run_program
from tests.infra.test_stack_program import EDGE_TLS, env_of, secret_uploads


def test_with_tls_the_front_terminates_it_with_the_certificate_as_a_secret_file():
    certificate = EDGE_TLS
    stack = run_program({}, certificate.as_secrets())
    front = stack.container("front")
    (upload,) = secret_uploads(front)
    assert env_of(front)["FRONT_TLS_CERT_FILE"] == upload["file"]
    assert upload["content"] == f"{certificate.certificate.strip()}\n{certificate.private_key.strip()}\n"
    assert (upload["permissions"], upload["owner"], upload["group"]) == ("0600", "10001", "10001")
    assert front.plain["user"] == "10001:10001"  # HAProxy runs as the file's owner, the only one who reads it
    assert rpc.is_rpc_secret(front.inputs["uploads"])
    assert certificate.private_key.strip() not in repr(front.plain["envs"]) + repr(stack.exports)
    assert "https://127.0.0.1:3000/-/front" in front.plain["healthcheck"]["tests"][-1]
    assert stack.exports["serving_url"] == "https://127.0.0.1:3000"
    # ...whose certificate names serving.test, not 127.0.0.1: a release's checks verify it against that name.
    assert stack.exports["serving_tls_server_name"] == "serving.test"
    assert "serving_tls_server_name" not in stack.secret_exports | run_program().exports.keys()
    # services/front/haproxy.cfg binds with TLS on that file when the variable is set, in clear otherwise.
    config = (REPO_ROOT / "services" / "front" / "haproxy.cfg").read_text()
    assert ('.if defined(FRONT_TLS_CERT_FILE)\n    bind :3000 ssl crt "${FRONT_TLS_CERT_FILE}"\n'
            '.else\n    bind :3000\n.endif\n') in config
    assert "FRONT_TLS_CERT_FILE" not in env_of(run_program().container("front"))


def test_the_tls_server_name_is_one_the_certificate_carries():
    wildcard = self_signed("*.ml.example.com", "10.0.0.7", "serving.example.com")
    assert run_program({}, wildcard.as_secrets()).exports["serving_tls_server_name"] == "serving.example.com"
    named = run_program({"tlsServerName": "serving.ml.example.com"}, wildcard.as_secrets())
    assert named.exports["serving_tls_server_name"] == "serving.ml.example.com"  # under its wildcard
    # A certificate for the address itself (IP SANs only) is verified against the URL's own 127.0.0.1.
    assert run_program({}, self_signed("127.0.0.1").as_secrets()).exports["serving_tls_server_name"] == ""


@pytest.mark.parametrize(
    ("config", "certificate", "message"),
    [
        ({"tlsServerName": "other.example.com"}, ("*.ml.example.com",),
         "mlops-platform:tlsServerName: the certificate does not name other.example.com"),
        ({"tlsServerName": "a.b.ml.example.com"}, ("*.ml.example.com",),
         "mlops-platform:tlsServerName: the certificate does not name a.b.ml.example.com"),
        ({}, ("10.0.0.7",), "mlops-platform:tlsServerName: is required: the certificate names no DNS host"),
        ({}, ("*.ml.example.com",), "mlops-platform:tlsServerName: is required"),
        ({"tlsServerName": "Serving Example"}, ("serving.test",), "mlops-platform:tlsServerName: 'Serving Example'"),
        ({"tlsServerName": "serving.test"}, None, "mlops-platform:tlsServerName: names the certificate's host: it "
                                                  "needs tlsCertificate"),
    ],
)
def test_a_tls_server_name_the_certificate_does_not_carry_fails_naming_the_key(config, certificate, message):
    secrets = self_signed(*certificate).as_secrets() if certificate else {}
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, secrets)
    assert message in str(raised.value)
