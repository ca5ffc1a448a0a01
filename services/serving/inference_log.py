"""Append-only inference log: one JSON line per predicted row, one file per worker process.

Each request's lines go out in one O_APPEND write before the response is sent, so concurrent workers
never interleave and a killed worker loses at most a torn last line (readers skip it). The day's file stays
open between requests: an open and a close per request cost more than the write, and on network storage (the
Kubernetes target's shared volume) a close waits for the server. It is opened again when the day changes or
when the file was removed or replaced meanwhile, so no line goes to a file nobody can read. The lines hold
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
        self._open: tuple[Path, int, int] | None = None  # the file being written: path, descriptor, inode

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{when:%Y%m%d}-{self._host}-{os.getpid()}.jsonl"

    def append(self, records: list[dict[str, Any]], when: datetime | None = None) -> Path:
        when = when or datetime.now(UTC)
        payload = "".join(json.dumps(record, separators=(",", ":"), default=str) + "\n" for record in records)
        path = self.path_for(when)
        fd = self._descriptor(path)
        view = memoryview(payload.encode())
        while view:
            view = view[os.write(fd, view):]
        return path

    def _descriptor(self, path: Path) -> int:
        if self._open is not None:
            open_path, fd, inode = self._open
            try:
                still_there = open_path == path and os.stat(path).st_ino == inode
            except FileNotFoundError:
                still_there = False
            if still_there:
                return fd
            self._open = None
            os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        self._open = (path, fd, os.fstat(fd).st_ino)
        return fd
