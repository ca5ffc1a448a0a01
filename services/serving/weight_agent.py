"""HAProxy's agent check for a canary serving container: every connection gets this server's weight.

The front (services/front/haproxy.cfg) asks each canary server every second on AGENT_PORT and sets its
weight to the reply, a percentage of the configured weight: the canary's share of the traffic. The
share is stack config (`canaryPercent`), fixed for the container's life. Standard library only.
"""

from __future__ import annotations

import os
import socketserver

from services.contract import CANARY_WEIGHT_ENV

AGENT_PORT = 3001


class _Reply(socketserver.BaseRequestHandler):
    reply = b""

    def handle(self) -> None:
        self.request.sendall(self.reply)


def main() -> None:
    _Reply.reply = f"{int(os.environ[CANARY_WEIGHT_ENV])}%\n".encode()
    with socketserver.ThreadingTCPServer(("0.0.0.0", AGENT_PORT), _Reply) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
