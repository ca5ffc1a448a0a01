"""MLflow's basic auth on a real server started with the stack's env for it (services/contract.py): a route its
permission map does not cover is refused, anonymously (401) and to a user who is not an admin (403).

MLflow 3.17 serves such a route to any logged-in user when MLFLOW_BASIC_AUTH_FAIL_CLOSED is false: the control
server, started that way, shows the route and the flag are the ones that decide.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.auth_servers import AuthMLflow, start_auth_mlflow
from tests.integration.conftest import AuthServers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Routes of MLflow 3.17's Flask app that its auth app maps to no permission check (found by walking its url_map
# with the auth app's own `_find_validator`).
UNMAPPED = ("/api/2.0/mlflow/unified-traces", "/ajax-api/2.0/mlflow/get-online-trace-details")
READER = ("reader", "reader-password-0001")


@pytest.fixture(scope="module")
def fail_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthMLflow]:
    """The control: the same server, with MLflow's fail-closed net turned off."""
    server = start_auth_mlflow("open", tmp_path_factory.mktemp("auth-open"), {"MLFLOW_BASIC_AUTH_FAIL_CLOSED": "false"})
    try:
        server.create_user(*READER)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def platform_mlflow(auth_mlflow_servers: AuthServers) -> AuthMLflow:
    """An MLflow with the stack's auth env, and a user who is not an admin."""
    server = auth_mlflow_servers.prod
    server.create_user(*READER)
    return server


def status(server: AuthMLflow, path: str, auth: tuple[str, str] | None = None) -> int:
    return httpx.get(f"{server.url}{path}", auth=auth, timeout=30).status_code


@pytest.mark.parametrize("path", [*UNMAPPED, "/graphql"])
def test_an_anonymous_request_to_a_route_without_a_permission_check_is_refused(platform_mlflow, path):
    assert status(platform_mlflow, path) == 401


@pytest.mark.parametrize("path", UNMAPPED)
def test_a_user_who_is_not_an_admin_is_refused_a_route_without_a_permission_check(platform_mlflow, fail_open, path):
    assert status(platform_mlflow, path, READER) == 403
    assert status(platform_mlflow, path, platform_mlflow.admin) not in (401, 403)  # the route is there: admins pass
    assert status(fail_open, path, READER) not in (401, 403)  # what the stack's env closes
