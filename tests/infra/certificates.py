"""Throwaway TLS material for tests, made with the openssl CLI at run time (no key is ever committed)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    certificate: str  # PEM of a self-signed certificate, so it is its own CA
    private_key: str  # PEM, unencrypted

    def as_secrets(self) -> dict[str, str]:
        """The stack config secrets that turn TLS at the edge on."""
        return {"tlsCertificate": self.certificate, "tlsPrivateKey": self.private_key}


@cache
def self_signed(*names: str) -> Certificate:
    """A one-day certificate for these DNS names and IP addresses (the first is its common name)."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI makes the tests' throwaway certificates"
    alt_names = ",".join(f"IP:{name}" if name.replace(".", "").isdigit() else f"DNS:{name}" for name in names)
    with tempfile.TemporaryDirectory() as scratch:
        key, cert = Path(scratch) / "key.pem", Path(scratch) / "cert.pem"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={alt_names}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
        return Certificate(certificate=cert.read_text(), private_key=key.read_text())
