"""Swap a stack's restored files in beside its live ones; run inside the MLflow image as the platform's user.

    python restore_files.py prepare|swap <artifacts dir> <backend dir> <MLflow's SQLite file name, or "">

`pipelines.backup_stack` passes this file's source to `python -c` in a one-off container that mounts the
stack's volumes, the restored files under /tmp/restore (artifacts/, extra/ SQLite files, store.sqlite).
prepare writes them beside the live ones (`<artifacts>/.restoring/`, `<backend>/<file>.restoring`) and
removes its own copies if anything fails; swap renames them in. Only the standard library: it runs in the
tracking image, not in this project's environment.
"""

import os
import shutil
import sqlite3
import sys
from pathlib import Path

RESTORING, REPLACED = ".restoring", ".replaced"
INCOMING = Path("/tmp/restore")


def sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's backup API: fails on a file that is no database, before anything live is touched."""
    live, copy = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()


def prepare(incoming: Path, artifacts: Path, backend: Path, store_name: str) -> None:
    """Write the restored files beside the live ones; on any failure remove what was written and exit 1."""
    side = artifacts / RESTORING
    try:
        shutil.rmtree(side, ignore_errors=True)
        if (incoming / "artifacts").is_dir():
            shutil.copytree(incoming / "artifacts", side)
        else:
            side.mkdir()
        files = {path.name: path for path in sorted((incoming / "extra").glob("*"))}
        if store_name:
            files[store_name] = incoming / "store.sqlite"
        for name, source in files.items():
            sqlite_copy(source, backend / f"{name}{RESTORING}")
    except Exception as exc:  # any failure: remove the copies, say what it was
        shutil.rmtree(side, ignore_errors=True)
        for leftover in backend.glob(f"*{RESTORING}"):
            leftover.unlink()
        sys.exit(f"{type(exc).__name__}: {exc}")


def swap(artifacts: Path, backend: Path) -> None:
    for new in sorted(backend.glob(f"*{RESTORING}")):
        live = backend / new.name.removesuffix(RESTORING)
        if live.exists():  # fold its write-ahead log in, so removing the log loses nothing
            db = sqlite3.connect(live)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
        for log in ("-wal", "-shm"):
            (backend / f"{live.name}{log}").unlink(missing_ok=True)
        os.replace(new, live)
    side, replaced = artifacts / RESTORING, artifacts / REPLACED
    shutil.rmtree(replaced, ignore_errors=True)
    replaced.mkdir()
    for entry in list(artifacts.iterdir()):  # the artifact store is the volume's root: its entries move
        if entry not in (side, replaced):
            entry.rename(replaced / entry.name)
    for entry in list(side.iterdir()):
        entry.rename(artifacts / entry.name)
    side.rmdir()
    shutil.rmtree(replaced)


if __name__ == "__main__":
    phase, artifacts_dir, backend_dir, store_file = sys.argv[1:5]
    if phase == "swap":
        swap(Path(artifacts_dir), Path(backend_dir))
    else:
        prepare(INCOMING, Path(artifacts_dir), Path(backend_dir), store_file)
