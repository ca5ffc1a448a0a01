"""Which credentials reach which registry in `pipelines promote`: each side its own, or none.

MLflow's client takes its credentials from the process env (MLFLOW_TRACKING_USERNAME, _PASSWORD, _TOKEN, ...)
at every request, whatever server it talks to, and fills a missing username or password from
~/.mlflow/credentials. A promotion talks to two registries from one process, so while it talks to one
side the env holds that side's credentials and no others, and is as before afterwards.

A side's credentials are, in this order:
1. its own: PROMOTE_FROM_USERNAME / PROMOTE_FROM_PASSWORD / PROMOTE_FROM_TOKEN for the source (PROMOTE_TO_*
   for the target), or a `user:password@` in its URI; not both;
2. else, for the side that is the configured registry (MLFLOW_TRACKING_URI, or the config's tracking.uri),
   the MLFLOW_TRACKING_* credentials of the env: they are that registry's (`make deploy` uses them next);
3. else none.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from pipelines.config import TRACKING_PASSWORD_ENV, TRACKING_USERNAME_ENV
from pipelines.errors import CannotRun
from pipelines.uris import split_credentials

TRACKING_TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
# Every env var MLflow's client (3.17) turns into credentials for whichever server it talks to.
CREDENTIAL_ENVS = (TRACKING_USERNAME_ENV, TRACKING_PASSWORD_ENV, TRACKING_TOKEN_ENV, "MLFLOW_TRACKING_AUTH",
                   "MLFLOW_TRACKING_AWS_SIGV4", "MLFLOW_TRACKING_CLIENT_CERT_PATH")
OWN_CREDENTIALS = {"USERNAME": TRACKING_USERNAME_ENV, "PASSWORD": TRACKING_PASSWORD_ENV, "TOKEN": TRACKING_TOKEN_ENV}
ROLES = {"from": "source", "to": "target"}


class CredentialError(CannotRun):
    """A registry's credentials are given twice, or half, or would come from a file meant for another."""


@dataclass(frozen=True)
class Registry:
    """One side of a promotion: its URI without credentials, and the MLFLOW_TRACKING_* env it is reached with."""

    role: str  # "from" or "to"
    uri: str
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return f"{ROLES[self.role]} registry {self.uri}"


def registry(role: str, uri: str, configured_uri: str, env: Mapping[str, str] = os.environ) -> Registry:
    """The side `role` ("from" or "to") at `uri`, with the credentials that are its own (module doc)."""
    bare, username, password = split_credentials(uri)
    prefix = f"PROMOTE_{role.upper()}_"
    own = {name: env[prefix + suffix] for suffix, name in OWN_CREDENTIALS.items() if env.get(prefix + suffix)}
    where = f"the {ROLES[role]} registry {bare}"
    if username is not None and own:
        raise CredentialError(f"credentials for {where} are both in its URI and in {prefix}*: give them once")
    if username is not None:
        own = {TRACKING_USERNAME_ENV: username, **({TRACKING_PASSWORD_ENV: password} if password else {})}
        given = "its URI's user:password@"
    else:
        given = f"{prefix}USERNAME / {prefix}PASSWORD"
    if (TRACKING_USERNAME_ENV in own) != (TRACKING_PASSWORD_ENV in own):
        raise CredentialError(f"{where} has half a login ({given}): give both a username and a password")
    if not own and split_credentials(configured_uri)[0].rstrip("/") == bare.rstrip("/"):
        own = {name: env[name] for name in CREDENTIAL_ENVS if env.get(name)}
    return Registry(role, bare, own)


@contextlib.contextmanager
def only(side: Registry) -> Iterator[None]:
    """The env holds `side`'s credentials and no other registry's; as it was afterwards."""
    saved = {name: os.environ.get(name) for name in CREDENTIAL_ENVS}
    try:
        for name in CREDENTIAL_ENVS:
            os.environ.pop(name, None)
        os.environ.update(side.credentials)
        _refuse_credentials_file(side)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _refuse_credentials_file(side: Registry) -> None:
    """MLflow would send ~/.mlflow/credentials' user to any server that has no username or password here."""
    from mlflow.utils.credentials import read_mlflow_creds

    found = read_mlflow_creds()
    own = (side.credentials.get(TRACKING_USERNAME_ENV), side.credentials.get(TRACKING_PASSWORD_ENV))
    if (found.username, found.password) != own:
        prefix = f"PROMOTE_{side.role.upper()}_"
        raise CredentialError(
            f"~/.mlflow/credentials would log in to the {side.name} as '{found.username}', a login that is not "
            f"this registry's own here: give it its own ({prefix}USERNAME / {prefix}PASSWORD, or user:password@ "
            "in its URI), or move that file aside while promoting")
