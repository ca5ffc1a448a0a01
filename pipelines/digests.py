"""Digests the platform prints and compares: a file's, read in chunks (memory stays flat for any size), and the
short form a message shows."""

from __future__ import annotations

import hashlib
from pathlib import Path

SHORT_DIGEST = 12  # enough characters to tell two digests apart in a message


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file's bytes. md5 is only ever an S3 ETag to compare with, never a proof."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.new(algorithm, usedforsecurity=algorithm != "md5")) \
            .hexdigest()


def short(digest: str) -> str:
    return digest[:SHORT_DIGEST]
