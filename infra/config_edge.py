"""TLS at the edge (optional, both targets): the certificate and its key, both Pulumi secrets.

On docker the serving front (HAProxy) terminates TLS with them; on kubernetes a TLS Secret holds them
for the Ingress (docs/kubernetes.md). Set each from its PEM file, e.g.
`pulumi config set --secret tlsPrivateKey < key.pem`. The checks below never quote a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from config_reader import ConfigReader, StackConfigError
from pulumi.runtime.config import is_config_secret

TLS_KEYS = frozenset({"tlsCertificate", "tlsPrivateKey"})
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_PRIVATE_KEY = re.compile(r"-----BEGIN ((RSA|EC) )?PRIVATE KEY-----\s[A-Za-z0-9+/=\s]+"
                          r"-----END ((RSA|EC) )?PRIVATE KEY-----")


@dataclass(frozen=True)
class EdgeTls:
    certificate: pulumi.Output[str]  # PEM: the server certificate first, then any intermediates
    private_key: pulumi.Output[str]  # PEM, unencrypted (the server reads it unattended)

    def pem_bundle(self) -> pulumi.Output[str]:
        """Certificate chain and key in one file, the form HAProxy's `crt` reads."""
        return pulumi.Output.all(self.certificate, self.private_key).apply(
            lambda parts: f"{parts[0].strip()}\n{parts[1].strip()}\n")


def _pem(read: ConfigReader, key: str, shape: re.Pattern[str], what: str) -> pulumi.Output[str]:
    value = read.config.get_secret(key)
    assert value is not None  # the caller checked the key is set
    full_key = read.config.full_key(key)

    def checked(text: str) -> str:
        if not shape.search(text):
            raise StackConfigError(f"stack config {full_key}: must hold a PEM {what} (the value is a secret, not "
                                   f"shown): pulumi config set --secret {key} < file.pem")
        return text

    return value.apply(checked)


def read_edge_tls(read: ConfigReader) -> EdgeTls | None:
    """Both keys or neither; a key set only in clear text is refused, since the private key is a secret."""
    present = {key for key in TLS_KEYS if read.config.get(key) is not None}
    if not present:
        return None
    if missing := sorted(TLS_KEYS - present):
        raise read.fail(missing[0], f"is required with the other TLS key: pulumi config set --secret {missing[0]} "
                                    "< file.pem")
    for key in sorted(present):
        if not is_config_secret(read.config.full_key(key)):
            raise read.fail(key, f"must be a secret: pulumi config set --secret {key} < file.pem")
    return EdgeTls(certificate=_pem(read, "tlsCertificate", _CERTIFICATE, "certificate"),
                   private_key=_pem(read, "tlsPrivateKey", _PRIVATE_KEY, "private key"))
