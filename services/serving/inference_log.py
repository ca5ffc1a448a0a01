"""Append-only inference log: one JSON line per predicted row, one file per worker process.

Each request's lines go out in one O_APPEND write before the response is sent, so concurrent workers
never interleave and a killed worker loses at most a torn last line (readers skip it). The lines hold
request data: files are created 0640 and the directory 0750 (owner and group only; the monitoring job runs
as the same user in the stack).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_MODE = 0o640
DIRECTORY_MODE = 0o750


class InferenceLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        self._host = socket.gethostname()

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{when:%Y%m%d}-{self._host}-{os.getpid()}.jsonl"

    def append(self, records: list[dict[str, Any]], when: datetime | None = None) -> Path:
        when = when or datetime.now(UTC)
        payload = "".join(json.dumps(record, separators=(",", ":"), default=str) + "\n" for record in records)
        path = self.path_for(when)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            view = memoryview(payload.encode())
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return path
