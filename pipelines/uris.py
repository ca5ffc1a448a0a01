"""Tracking URIs: the login a URI carries, kept out of what is printed and recorded."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote, urlsplit, urlunsplit


def redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{_host_port(parts.hostname, parts.port)}"))


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """The URI without `user:password@`, and the user and password it carried (None when it had none)."""
    parts = urlsplit(uri)
    if parts.username is None:
        return uri, None, None
    bare = urlunsplit(parts._replace(netloc=_host_port(parts.hostname, parts.port)))
    return bare, unquote(parts.username), unquote(parts.password) if parts.password is not None else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: where it points is not this config's to know


def _host_port(host: str | None, port: int | None) -> str:
    return f"{host or ''}" + (f":{port}" if port else "")
