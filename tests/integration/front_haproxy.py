"""The stack's real front config (services/front/haproxy.cfg) in a real HAProxy on loopback, in front of tiny
HTTP servers standing in for the serving containers: the front's own rules, without Docker.

Only what needs Docker changes: its `bind :3000` binds a free loopback port, and its backends' server templates
(found through Docker's DNS) become one server each, here. Everything up to the backends is the file as the
front image holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from pipelines.platform import free_port
from services.contract import front_users_backend
from services.front.model_routes import models_map

REPO_ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = REPO_ROOT / "services" / "front" / "haproxy.cfg"


@dataclass(frozen=True)
class Backend:
    name: str  # which stand-in answered: "champion", "canary", "candidate"
    model_version: str
    port: int


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Answer(BaseHTTPRequestHandler):
        """Answers every request with who it is and the headers that reached it; /predict like a model server."""

        def do_GET(self) -> None:
            self._answer({})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            self._answer({"predictions": [0] * len(body.get("rows", []))})

        def _answer(self, extra: dict) -> None:
            payload = json.dumps({"server": backend.name, "model_version": backend.model_version, "path": self.path,
                                  "headers": {k.lower(): v for k, v in self.headers.items()}, **extra}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:  # quiet: the test reads answers, not logs
            pass

    return Answer


@contextlib.contextmanager
def stand_ins(versions: Mapping[str, str]) -> Iterator[dict[str, Backend]]:
    """One HTTP server per name (champion, canary, candidate), each answering as that model version."""
    servers, backends = [], {}
    for name, version in versions.items():
        backend = Backend(name, version, free_port())
        server = ThreadingHTTPServer(("127.0.0.1", backend.port), _handler(backend))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        backends[name] = backend
    try:
        yield backends
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def front_config(port: int, backends: Mapping[str, Backend], models: Mapping[str, Mapping[str, Backend]]) -> str:
    """haproxy.cfg up to its backends, bound to `port`, with one stand-in server per backend; `models`: the
    stand-ins of every model but the default (role -> backend), in the backends services/front/model_routes.py
    names."""
    head = HAPROXY_CFG.read_text().split("\nbackend ", 1)[0]
    assert "    bind :3000" in head
    head = head.replace("    bind :3000", f"    bind 127.0.0.1:{port}")
    # The real default-server resolves through Docker's DNS; the stand-ins are addresses already.
    head = "\n".join(line for line in head.splitlines() if not line.strip().startswith("default-server"))
    champion = backends["champion"].port
    servers = {"ready": champion, "canary": backends["canary"].port, "candidate": backends["candidate"].port,
               "alive": champion}
    for model, roles in models.items():
        users = front_users_backend(model)
        servers |= {users: roles["release"].port, **{users.removesuffix("ready") + role: roles[role].port
                                                     for role in ("canary", "candidate") if role in roles}}
    tail = "".join(f"\nbackend {name}\n    server {name} 127.0.0.1:{server}\n" for name, server in servers.items())
    return f"{head}\n{tail}"


@contextlib.contextmanager
def running_front(scratch: Path, backends: Mapping[str, Backend], env: Mapping[str, str],
                  models: Mapping[str, Mapping[str, Backend]] | None = None, default_model: str = "loan-default",
                  ) -> Iterator[int]:
    """A real HAProxy with that config and these variables (FRONT_TLS_CERT_FILE, FRONT_SMOKE_TOKEN_FILE), routing
    `/models/<name>/` by the map infra/front.py uploads, to `default_model` and `models`; its port."""
    haproxy = shutil.which("haproxy")
    assert haproxy, "the front tests need HAProxy (apt-get install haproxy), as the front image has"
    port = free_port()
    config = scratch / "haproxy.cfg"
    config.write_text(front_config(port, backends, models or {}))
    routes = scratch / "models.map"
    routes.write_text(models_map(default_model, list(models or {})))
    full_env = {**os.environ, "FRONT_MODELS_MAP": str(routes), **env}
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], env=full_env, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    process = subprocess.Popen([haproxy, "-db", "-f", str(config)], env=full_env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, tls="FRONT_TLS_CERT_FILE" in env, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for(port: int, *, tls: bool, process: subprocess.Popen) -> None:
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/-/front"
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=False, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")
