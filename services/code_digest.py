"""The fingerprint of a team's code folders: one sha256 over every file's relative path and bytes.

Standard library only: training computes it over the config's `code_paths` (pipelines/team_code.py) and the
serving side recomputes it over the copy MLflow logged with the model (services/serving/model_trust.py), so
both must be this one function.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path

# Exactly what MLflow leaves out when it logs `code_paths` (mlflow.utils.file_utils._copy_file_or_tree ignores
# "__pycache__"): a digest skipping more would pass a folder the logged copy then fails (a .pytest_cache).
IGNORED_PARTS = {"__pycache__"}


def ignored(path: Path, folder: Path) -> bool:
    """Whether a file of a code folder is left out of the digest (and so of the copy MLflow logs)."""
    return bool(IGNORED_PARTS & set(path.relative_to(folder).parts))


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


def forget_modules(folders: Iterable[Path]) -> None:
    """Drop the folders' packages from `sys.modules`, so the next import reads the copy first on `sys.path`:
    Python reuses an imported module of the same name (another model's copy, or the working copy training
    imported) whatever `sys.path` says."""
    names = {Path(folder).name for folder in folders}
    for module in [name for name in sys.modules if name.partition(".")[0] in names]:
        del sys.modules[module]
