"""TLS at the edge (optional, both targets): the certificate and its key, both Pulumi secrets.

On docker the serving front (HAProxy) terminates TLS with them; on kubernetes a TLS Secret holds them
for the Ingress (docs/kubernetes.md). Set each from its PEM file, e.g.
`pulumi config set --secret tlsPrivateKey < key.pem`. The checks below never quote a value.

On docker a release checks the front at 127.0.0.1, which a real certificate does not name: it verifies the
certificate against `tlsServerName` instead (default: the certificate's first DNS name that is no wildcard;
none for a certificate naming only addresses, 127.0.0.1 among them).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
from config_reader import ConfigReader, StackConfigError
from cryptography import x509
from pulumi.runtime.config import is_config_secret

TLS_KEYS = frozenset({"tlsCertificate", "tlsPrivateKey"})
SERVER_NAME_KEY = "tlsServerName"
EDGE_KEYS = TLS_KEYS | {SERVER_NAME_KEY}
RELEASE_CHECK_ADDRESS = ipaddress.ip_address("127.0.0.1")  # where a release on the docker host reaches the front
# A host name as tlsServerName takes it (lower case, no wildcard); empty is unset.
_DNS_NAME = re.compile(r"$|(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")
_PRIVATE_KEY = re.compile(r"-----BEGIN ((RSA|EC) )?PRIVATE KEY-----\s[A-Za-z0-9+/=\s]+"
                          r"-----END ((RSA|EC) )?PRIVATE KEY-----")


@dataclass(frozen=True)
class EdgeTls:
    certificate: pulumi.Output[str]  # PEM: the server certificate first, then any intermediates
    private_key: pulumi.Output[str]  # PEM, unencrypted (the server reads it unattended)
    server_name_setting: str | None = None  # tlsServerName as set; see server_name()
    full_key: str = SERVER_NAME_KEY  # its key with the project's namespace, for errors

    def pem_bundle(self) -> pulumi.Output[str]:
        """Certificate chain and key in one file, the form HAProxy's `crt` reads."""
        return pulumi.Output.all(self.certificate, self.private_key).apply(
            lambda parts: f"{parts[0].strip()}\n{parts[1].strip()}\n")

    def server_name(self) -> pulumi.Output[str]:
        """The name a client verifies the certificate against: tlsServerName, which the certificate must cover,
        or its first DNS name that is no wildcard. Not a secret: the server shows its certificate to anyone."""
        return pulumi.Output.unsecret(self.certificate.apply(self._name_in))

    def _name_in(self, pem: str) -> str:
        names = _dns_names(pem)
        if self.server_name_setting is None:
            plain = [name for name in names if not name.startswith("*.")]
            if not plain and RELEASE_CHECK_ADDRESS in _ip_addresses(pem):
                return ""  # a certificate for the address itself: clients verify it against the URL's 127.0.0.1
            if not plain:
                raise StackConfigError(f"stack config {self.full_key}: is required: the certificate names no DNS "
                                       f"host (names: {', '.join(names) or 'none'}); set the name clients use")
            return plain[0].lower()
        if not any(_covers(name.lower(), self.server_name_setting) for name in names):
            raise StackConfigError(f"stack config {self.full_key}: the certificate does not name "
                                   f"{self.server_name_setting} (its DNS names: {', '.join(names) or 'none'})")
        return self.server_name_setting


def _dns_names(pem: str) -> list[str]:
    """The DNS names of the chain's first certificate (the server's own), in its order."""
    return _alt_names(pem, x509.DNSName)


def _ip_addresses(pem: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return _alt_names(pem, x509.IPAddress)


def _alt_names(pem: str, kind: type[x509.GeneralName]) -> list:
    try:
        extension = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return extension.value.get_values_for_type(kind)


def _covers(pattern: str, name: str) -> bool:
    """Whether a certificate's DNS name covers `name` (a wildcard covers exactly one leftmost label)."""
    if pattern.startswith("*."):
        label, _, rest = name.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == name


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
    server_name = read.string(SERVER_NAME_KEY, "", _DNS_NAME) or None
    if not present:
        if server_name is not None:
            raise read.fail(SERVER_NAME_KEY, "names the certificate's host: it needs tlsCertificate and tlsPrivateKey")
        return None
    if missing := sorted(TLS_KEYS - present):
        raise read.fail(missing[0], f"is required with the other TLS key: pulumi config set --secret {missing[0]} "
                                    "< file.pem")
    for key in sorted(present):
        if not is_config_secret(read.config.full_key(key)):
            raise read.fail(key, f"must be a secret: pulumi config set --secret {key} < file.pem")
    return EdgeTls(certificate=_pem(read, "tlsCertificate", _CERTIFICATE, "certificate"),
                   private_key=_pem(read, "tlsPrivateKey", _PRIVATE_KEY, "private key"),
                   server_name_setting=server_name, full_key=read.config.full_key(SERVER_NAME_KEY))
