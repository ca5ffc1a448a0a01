"""Files put on a stack's volumes for the gc test, through the same helper container gc uses
(pipelines.volume_files.stack_trees): owned by the platform's user, with the modification times a test needs."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from pathlib import PurePosixPath

from pipelines.backup_docker import run_in
from pipelines.volume_files import ContainerTree, Tree

APP_UID = 10001


def seed(tree: Tree, files: Mapping[str, tuple[str, float]]) -> None:
    """Write `name -> (text, mtime)` under the tree's root, with their folders (owned by the platform's user, so
    the helper may delete in them as it may in folders the job made)."""
    assert isinstance(tree, ContainerTree)
    run_in(tree.container, ["mkdir", "-p", tree.root])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = {str(parent) for name in files for parent in PurePosixPath(name).parents} - {"."}
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, APP_UID, APP_UID
            tar.addfile(info)
        for name, (text, mtime) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), mtime, 0o644, APP_UID, APP_UID
            tar.addfile(info, io.BytesIO(data))
    assert tree.container.put_archive(tree.root, buffer.getvalue())


def names(tree: Tree, pattern: str = "**/*") -> set[str]:
    return {entry.name for entry in tree.files(pattern)}
