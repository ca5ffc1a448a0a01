"""Backup archives changed on purpose (by unit and integration tests): damage the checksum cannot catch."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from pipelines.backup_shelf import checksum_name


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def rewrite(archive: Path, changes: dict[str, bytes], *, manifest_too: bool = False) -> None:
    """The archive again with some members' bytes replaced, and a checksum file that matches it. With
    `manifest_too`, the manifest is made to match as well: an archive that passes every check."""
    files = {**members(archive), **changes}
    if manifest_too:
        (manifest_name,) = [name for name in files if name.endswith("/manifest.json")]
        root, manifest = manifest_name.removesuffix("/manifest.json"), json.loads(files[manifest_name])
        for name, data in changes.items():
            manifest["files"][name.removeprefix(f"{root}/")] = {"size": len(data),
                                                                "sha256": hashlib.sha256(data).hexdigest()}
        files[manifest_name] = json.dumps(manifest).encode()
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    match_checksum(archive)


def match_checksum(archive: Path) -> None:
    checksum_path(archive).write_text(f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n")


def root_of(archive: Path) -> str:
    """The archive's top folder (`<label>-<stamp>`), under which every member lies."""
    return next(iter(members(archive))).split("/")[0]


def checksum_path(archive: Path) -> Path:
    """The checksum file beside an archive on a folder shelf."""
    return archive.with_name(checksum_name(archive.name))
