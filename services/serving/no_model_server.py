"""What the serving container answers before any model is deployed.

The runtime image starts here when no bento sits at the bento path: the container is alive
(`/livez` 200) but not ready (`/readyz` 503), and `/predict` says plainly that no model is
deployed, instead of the container crash-looping. With a serving token configured, everything but
the health probes needs a credential the model server would admit (access.serving_grants). Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.access import Grants, presented_credential, refusal_message, serving_grants
from services.contract import SERVING_OPEN_PATHS

NO_MODEL = "no model deployed yet: run `make train deploy` to release one"


class NoModelHandler(BaseHTTPRequestHandler):
    server_version = "no-model"
    grants: Grants | None = None  # who is admitted; None: no access control

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == "/livez":
            self._send_json(HTTPStatus.OK, {"status": "alive", "model_deployed": False})
        elif self.path == "/readyz":
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "not ready", "error": NO_MODEL})
        elif self.path == "/metrics":
            self._send(HTTPStatus.OK, b"# TYPE serving_model_deployed gauge\nserving_model_deployed 0\n",
                       "text/plain; version=0.0.4")
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path == "/predict":
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": NO_MODEL})
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def _authorized(self) -> bool:
        if self.grants is None or self.path in SERVING_OPEN_PATHS:
            return True
        headers = [(name.lower().encode(), value.encode("latin-1")) for name, value in self.headers.items()]
        refusal = self.grants.refusal(presented_credential(headers))
        if refusal is not None:
            self._send_json(refusal, {"error": refusal_message(refusal)})
        return refusal is None

    def _send_json(self, status: HTTPStatus, body: dict[str, object]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: HTTPStatus, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(json.dumps({"event": "request", "line": format % args}) + "\n")


def main() -> None:
    port = int(os.environ.get("SERVING_PORT", "3000"))
    NoModelHandler.grants = serving_grants()
    server = ThreadingHTTPServer(("0.0.0.0", port), NoModelHandler)
    # As PID 1 Python gets no default SIGTERM handler: without this `docker stop` waits for SIGKILL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write(json.dumps({"event": "started", "port": port, "state": NO_MODEL}) + "\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
