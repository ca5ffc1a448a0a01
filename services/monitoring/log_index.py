"""What earlier runs learned about each inference-log file, so a run reads only the bytes it still needs.

Log files are append-only (docs/contracts.md), so a file's first N bytes never change. For each file the index
keeps how far earlier runs read it (the end of its last complete line) and, per model version, the newest
timestamp among the rows in those bytes. A run may skip that prefix when the window excludes every row in it,
i.e. when each version's newest row there was judged already (at or before the version's last `window_end`).
Otherwise it reads the file from the start, as without an index: rows that were read but not judged yet
(a window with too few rows) are read again, so the index never changes which rows a window holds.

The index is a cache of facts about files, not a record of decisions: losing it costs one full read (bounded
by the retention), and a file that was replaced or truncated (other inode, other first bytes, shorter) is read
whole. It lives in the job's writable state (the log itself is mounted read only in the stack).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

HEAD_BYTES = 4096  # the first bytes of a file, hashed to notice a file replaced under the same name and inode
FORMAT = 1


@dataclass
class FileEntry:
    inode: int
    device: int
    head_len: int
    head: str  # sha256 of the first `head_len` bytes
    offset: int  # bytes of complete lines read so far
    lines: int  # lines in those bytes (for line numbers in problems)
    latest: dict[str, str] = field(default_factory=dict)  # model version -> newest row timestamp (ISO)

    def newest(self) -> dict[str, datetime]:
        return {version: datetime.fromisoformat(stamp) for version, stamp in self.latest.items()}


def head_digest(path: Path, length: int) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


class LogIndex:
    """Per log file name, a `FileEntry`; for one model (rows of other models are never judged by this job)."""

    def __init__(self, model_name: str, entries: dict[str, FileEntry] | None = None) -> None:
        self.model_name = model_name
        self.entries = entries or {}

    @classmethod
    def load(cls, path: Path, model_name: str) -> LogIndex:
        """The saved index, or an empty one when there is none, it is unreadable or it is another model's."""
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT or raw.get("model_name") != model_name:
                return cls(model_name)
            return cls(model_name, {name: FileEntry(**entry) for name, entry in raw["files"].items()})
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return cls(model_name)

    def save(self, path: Path) -> None:
        """Atomically: a reader (another run) never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        data = {"format": FORMAT, "model_name": self.model_name,
                "files": {name: asdict(entry) for name, entry in sorted(self.entries.items())}}
        partial.write_text(json.dumps(data))
        partial.replace(path)

    def known(self, path: Path, stat: os.stat_result) -> FileEntry | None:
        """The entry for this file if it is still the file the entry describes, grown or not."""
        entry = self.entries.get(path.name)
        if entry is None or (entry.inode, entry.device) != (stat.st_ino, stat.st_dev) or stat.st_size < entry.offset:
            return None
        try:
            return entry if head_digest(path, entry.head_len) == entry.head else None
        except OSError:
            return None

    def remember(
        self, path: Path, stat: os.stat_result, *, offset: int, lines: int, latest: dict[str, datetime]
    ) -> None:
        head_len = min(HEAD_BYTES, offset)
        self.entries[path.name] = FileEntry(
            inode=stat.st_ino,
            device=stat.st_dev,
            head_len=head_len,
            head=head_digest(path, head_len),
            offset=offset,
            lines=lines,
            latest={version: stamp.isoformat() for version, stamp in latest.items()},
        )

    def keep_only(self, names: set[str]) -> None:
        """Forget files that are gone or past the retention."""
        self.entries = {name: entry for name, entry in self.entries.items() if name in names}
