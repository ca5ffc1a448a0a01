"""TLS at the edge on Docker: with tlsCertificate set, the real front image terminates TLS on the serving
port with the stack's certificate, which a client verifies with its CA against the name the certificate
carries (`serving_tls_server_name`; not 127.0.0.1, the address it connects to); plain HTTP there gets no answer.

Only the front and the serving container it routes to run (the rest of the stack plays no part here).
The certificate is a throwaway one, made for this test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import httpx
import pytest

from pipelines.platform import request
from services.contract import TLS_SERVER_NAME_OUTPUT
from tests.infra.certificates import Certificate, self_signed
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return self_signed("serving.test")  # a DNS name only, as a real certificate has


@pytest.fixture(scope="module")
def tls_front(docker_client: docker.DockerClient, base_image: str, certificate: Certificate) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, secrets=certificate.as_secrets(),
                       services=("front", "serving")) as stack:
        yield stack


def test_https_with_the_ca_is_served_and_plain_http_is_refused(tls_front, certificate, tmp_path, monkeypatch):
    url, name = tls_front.declared.exports["serving_url"], tls_front.declared.exports[TLS_SERVER_NAME_OUTPUT]
    assert url.startswith("https://127.0.0.1:") and name == "serving.test"
    ca = tmp_path / "ca.pem"
    ca.write_text(certificate.certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # as a user's release CLI trusts the stack's CA
    # Through the front to the serving container, as the release's checks ask: its liveness, and its own answer
    # without a model.
    assert request("GET", f"{url}/livez", 10, server_name=name).status_code == 200
    answer = request("POST", f"{url}/predict", 10, server_name=name, json={"rows": []})
    assert answer.status_code == 503 and "no model deployed" in answer.text
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        request("GET", f"{url}/livez", 10)  # the certificate does not name 127.0.0.1
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        request("GET", f"{url}/livez", 10, server_name=name)  # the system's CAs do not vouch for it
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url.replace('https://', 'http://')}/livez", timeout=10)


def test_the_key_is_a_file_only_haproxy_reads_and_is_nowhere_else(tls_front, certificate):
    front = tls_front.container("front")
    path = dict(entry.split("=", 1) for entry in front.attrs["Config"]["Env"])["FRONT_TLS_CERT_FILE"]
    assert front.exec_run(["stat", "-c", "%a %u", path]).output.decode().split() == ["600", "10001"]
    key_body = certificate.private_key.strip().splitlines()[1]
    front.reload()
    assert key_body not in json.dumps(front.attrs) and key_body not in front.logs().decode(errors="replace")
    assert key_body not in json.dumps(tls_front.declared.exports)
