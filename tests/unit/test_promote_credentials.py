"""Which credentials reach which registry in a promotion (pipelines.promote_credentials), without a server."""

from __future__ import annotations

import os

import pytest

from pipelines.promote_credentials import CREDENTIAL_ENVS, CredentialError, Registry, only, registry

STAGING, PROD = "http://staging-mlflow:5000", "http://prod-mlflow:5000"
# The env of promote.yml: prod's own login (the configured registry, MLFLOW_TRACKING_URI) and staging's.
CI_ENV = {"MLFLOW_TRACKING_USERNAME": "prod-ci", "MLFLOW_TRACKING_PASSWORD": "prod-secret-0001",
          "MLFLOW_TRACKING_TOKEN": "prod-token-00000001",
          "PROMOTE_FROM_USERNAME": "staging-reader", "PROMOTE_FROM_PASSWORD": "staging-secret-01"}
PROD_LOGIN = {"MLFLOW_TRACKING_USERNAME": "prod-ci", "MLFLOW_TRACKING_PASSWORD": "prod-secret-0001",
              "MLFLOW_TRACKING_TOKEN": "prod-token-00000001"}
STAGING_LOGIN = {"MLFLOW_TRACKING_USERNAME": "staging-reader", "MLFLOW_TRACKING_PASSWORD": "staging-secret-01"}


@pytest.mark.parametrize(("role", "uri", "env", "expected"), [
    # promote.yml: the source has its own login, the target (the configured registry) the env's.
    ("from", STAGING, CI_ENV, STAGING_LOGIN),
    ("to", PROD, CI_ENV, PROD_LOGIN),
    # A source with no login of its own gets none, never the configured registry's.
    ("from", STAGING, PROD_LOGIN, {}),
    # A target other than the configured registry gets none of the env's either.
    ("to", "http://elsewhere:5000", PROD_LOGIN, {}),
    # Its own, from PROMOTE_TO_*: the env's login stays out.
    ("to", PROD, {**PROD_LOGIN, "PROMOTE_TO_USERNAME": "prod-admin", "PROMOTE_TO_PASSWORD": "admin-secret-01"},
     {"MLFLOW_TRACKING_USERNAME": "prod-admin", "MLFLOW_TRACKING_PASSWORD": "admin-secret-01"}),
    ("to", PROD, {"PROMOTE_TO_TOKEN": "prod-token-00000002"}, {"MLFLOW_TRACKING_TOKEN": "prod-token-00000002"}),
    # In its URI (percent-encoded): moved out of the URI, the env's login stays out.
    ("from", "http://staging-reader:p%40ss-word-01@staging-mlflow:5000", PROD_LOGIN,
     {"MLFLOW_TRACKING_USERNAME": "staging-reader", "MLFLOW_TRACKING_PASSWORD": "p@ss-word-01"}),
    # The configured registry may be the source: then the env's login is the source's.
    ("from", PROD, PROD_LOGIN, PROD_LOGIN),
])
def test_each_registry_gets_its_own_credentials_or_none(role, uri, env, expected):
    side = registry(role, uri, configured_uri=PROD + "/", env=env)
    assert dict(side.credentials) == expected
    assert side.uri in (STAGING, PROD, "http://elsewhere:5000") and "@" not in side.uri


@pytest.mark.parametrize(("uri", "env", "names"), [
    ("http://u:p@staging-mlflow:5000", {"PROMOTE_FROM_USERNAME": "v", "PROMOTE_FROM_PASSWORD": "q"},
     "both in its URI and in PROMOTE_FROM_*"),
    (STAGING, {"PROMOTE_FROM_USERNAME": "staging-reader"},
     "half a login (PROMOTE_FROM_USERNAME / PROMOTE_FROM_PASSWORD)"),
    ("http://staging-reader@staging-mlflow:5000", {}, "half a login (its URI's user:password@)"),
])
def test_credentials_given_twice_or_by_half_are_a_clear_error(uri, env, names):
    with pytest.raises(CredentialError, match="source registry http://staging-mlflow:5000") as raised:
        registry("from", uri, configured_uri=PROD, env=env)
    assert names in str(raised.value) and "p@" not in str(raised.value)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """The env of promote.yml, every other MLflow credential var set too, and a home without a credentials file."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in CREDENTIAL_ENVS:
        monkeypatch.setenv(name, f"ambient-{name}")
    return tmp_path


def test_while_talking_to_one_side_the_env_holds_only_its_credentials(clean_env):
    before = {name: os.environ[name] for name in CREDENTIAL_ENVS}
    with only(Registry("from", STAGING, STAGING_LOGIN)):
        assert {name: os.environ.get(name) for name in CREDENTIAL_ENVS} == {
            name: STAGING_LOGIN.get(name) for name in CREDENTIAL_ENVS}
    with pytest.raises(RuntimeError), only(Registry("to", "http://elsewhere:5000")):
        assert not any(name in os.environ for name in CREDENTIAL_ENVS)
        raise RuntimeError("the promotion failed halfway")
    assert {name: os.environ[name] for name in CREDENTIAL_ENVS} == before


def test_a_credentials_file_never_logs_in_to_a_side_without_its_own_login(clean_env):
    (clean_env / ".mlflow").mkdir()
    (clean_env / ".mlflow" / "credentials").write_text(
        "[mlflow]\nmlflow_tracking_username = monitoring\nmlflow_tracking_password = monitoring-secret\n")
    refusal = (r"~/.mlflow/credentials would log in to the source registry http://staging-mlflow:5000 as "
               r"'monitoring'.*PROMOTE_FROM_USERNAME")
    with pytest.raises(CredentialError, match=refusal), only(Registry("from", STAGING)):
        pass
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ambient-MLFLOW_TRACKING_USERNAME"  # restored
    with only(Registry("from", STAGING, STAGING_LOGIN)):  # a login of its own: the file is not read
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "staging-reader"
