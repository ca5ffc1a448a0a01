"""The fingerprint of a team's code folders: one sha256 over every file's relative path and bytes.

Standard library only: training computes it over the config's `code_paths` (pipelines/team_code.py) and the
serving side recomputes it over the copy MLflow logged with the model (services/serving/model_trust.py), so
both must be this one function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

# Files that are not code and change without the code changing.
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


def ignored(path: Path, folder: Path) -> bool:
    """Whether a file of a code folder is left out of the digest."""
    return bool(IGNORED_PARTS & set(path.relative_to(folder).parts)) or path.suffix in IGNORED_SUFFIXES


def code_files(folder: Path) -> list[Path]:
    """Every file of a code folder that is part of the code, sorted by relative path."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and not ignored(path, folder))


def code_sha256(folders: Iterable[Path]) -> str:
    """One digest over the folders' names, files' relative paths and bytes; "" for no folders."""
    folders = list(folders)
    if not folders:
        return ""
    digest = hashlib.sha256()
    for folder in sorted(folders, key=lambda path: path.name):
        digest.update(f"folder {folder.name}\n".encode())
        for path in code_files(folder):
            data = path.read_bytes()
            digest.update(f"file {path.relative_to(folder).as_posix()} {len(data)}\n".encode())
            digest.update(data)
    return digest.hexdigest()
