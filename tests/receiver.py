"""A real HTTP server on 127.0.0.1 that records the JSON POSTs it gets: the drift alert's receiver in tests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers each POST with the next status of `answers` (the last one from then on), after `delay_s`."""

    def __init__(self, path: str) -> None:
        self.answers: list[int] = [200]
        self.delay_s = 0.0
        self.received: list[tuple[dict[str, str], dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                receiver.received.append((dict(self.headers), json.loads(self.rfile.read(length))))
                time.sleep(receiver.delay_s)
                status = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass  # the server's own log would print the path

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"


@contextlib.contextmanager
def receiving(path: str) -> Iterator[Receiver]:
    made = Receiver(path)
    thread = threading.Thread(target=made.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()
