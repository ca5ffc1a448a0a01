"""Real MLflow servers with basic auth on, for the integration tests, and a proxy recording who logs in to one.

Each server is `mlflow server --app-name basic-auth` on a free loopback port with its own state dir, its own
admin user (named after the server, so one server's login is unknown to another: a leaked login is a 401)
and the env the stack gives an auth-enabled MLflow (services/contract.py).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from pipelines import platform
from pipelines.processes import Process

# Hop-by-hop headers, and those httpx has already applied to the body it hands over (decoded, whole).
NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass(frozen=True)
class AuthMLflow:
    name: str
    url: str
    admin: tuple[str, str]
    state_dir: Path

    def create_user(self, username: str, password: str) -> None:
        response = httpx.post(f"{self.url}/api/2.0/mlflow/users/create", auth=self.admin, timeout=30,
                              json={"username": username, "password": password})
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        Process("mlflow", self.state_dir).stop()


def start_auth_mlflow(name: str, state_dir: Path, env: Mapping[str, str] | None = None) -> AuthMLflow:
    """An auth-enabled MLflow server named `name`, admin `<name>-admin`, started with `env` on top."""
    port = platform.free_port()
    url, admin = f"http://127.0.0.1:{port}", (f"{name}-admin", secrets.token_hex(16))
    (state_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    auth_config = state_dir / "basic_auth.ini"
    auth_config.touch(mode=0o600)
    auth_config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{state_dir / 'basic_auth.db'}\n"
        f"admin_username = {admin[0]}\nadmin_password = {admin[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    platform.serve_once(
        Process("mlflow", state_dir),
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow.db'}",
         "--serve-artifacts", "--artifacts-destination", str(state_dir / "artifacts"), "--workers", "1"],
        host="127.0.0.1", port=port, port_setting="(a test server's port)", probe=f"{url}/health",
        timeout_s=180, what=f"auth-enabled MLflow '{name}' on {url}",
        env={"MLFLOW_AUTH_CONFIG_PATH": str(auth_config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
    )
    return AuthMLflow(name, url, admin, state_dir)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    login: str | None  # "user:password" of a Basic authorization, the raw header of any other, None without
    status: int


@dataclass
class RecordingProxy:
    """A reverse proxy on a free loopback port in front of `upstream`: forwards everything, records each request."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def logins(self) -> set[str | None]:
        """The logins of every request but the open health probe."""
        return {request.login for request in self.seen if request.path != "/health"}

    @contextlib.contextmanager
    def running(self) -> Iterator[RecordingProxy]:
        client = httpx.Client(base_url=self.upstream, timeout=120)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, client))
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            client.close()


def _login(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("basic "):
        return base64.b64decode(authorization[6:]).decode()
    return authorization


def _handler(proxy: RecordingProxy, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self) -> None:
            response = client.request(
                self.command, self.path, content=self._body(),
                headers={k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED})
            proxy.seen.append(Seen(self.command, self.path.split("?")[0], _login(self.headers.get("authorization")),
                                   response.status_code))
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in NOT_FORWARDED:
                    self.send_header(key, value)
            self.send_header("content-length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("content-length") or 0))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        def log_message(self, format: str, *args: object) -> None:  # the record is `proxy.seen`
            pass

    return Forward
