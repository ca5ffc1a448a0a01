"""Swap a stack's restored files in beside its live ones; run inside the MLflow image as the platform's user.

    python restore_files.py check|prepare|swap|revert|finish <artifacts dir> <backend dir> <MLflow's SQLite file, or "">

`pipelines.backup_stack` passes this file's source to `python -c` in a one-off container that mounts the
stack's volumes, the restored files under /tmp/restore (artifacts/, extra/ SQLite files, store.sqlite).
prepare writes them beside the live ones (`<artifacts>/.restoring/`, `<backend>/<file>.restoring`) and
removes its own copies if anything fails; swap renames them in and keeps the live ones aside
(`<artifacts>/.replaced/`, `<backend>/<file>.replaced`, a `<file>.added` mark where there was none) until
finish removes them once MLflow serves the restored state; revert puts the live ones back, from wherever a
swap stopped. What an unfinished restore kept aside may be the only copy of the live state: prepare and swap
refuse to start while any of it is there. Only the standard library: it runs in the tracking image, not in
this project's environment. check only refuses (exit 1) while such leftovers are there.
"""

import shutil
import sqlite3
import sys
from pathlib import Path

RESTORING, REPLACED, ADDED = ".restoring", ".replaced", ".added"
REPLACING = ".replacing"  # the artifact store's `.replaced` while the live entries move into it
INCOMING = Path("/tmp/restore")


def sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's backup API: fails on a file that is no database, before anything live is touched."""
    live, copy = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        live.backup(copy)
    finally:
        copy.close()
        live.close()


def kept_aside(artifacts: Path, backend: Path) -> list[Path]:
    """What a swap keeps aside until its restore finishes: the live state, if that restore never finished."""
    return sorted([*(artifacts / name for name in (REPLACING, REPLACED) if (artifacts / name).exists()),
                   *backend.glob(f"*{REPLACED}"), *backend.glob(f"*{ADDED}")])


def refuse_unfinished(artifacts: Path, backend: Path) -> None:
    if leftovers := kept_aside(artifacts, backend):
        sys.exit(f"an earlier restore did not finish: {', '.join(map(str, leftovers))} may hold the only copy of "
                 "the state from before it, so nothing was touched. Check the live state: if it is right, delete "
                 "those; if not, move each back over its live name (an `.added` mark: delete the live file it "
                 "names); then restore again")


def prepare(incoming: Path, artifacts: Path, backend: Path, store_name: str) -> None:
    """Write the restored files beside the live ones; on any failure remove what was written and exit 1."""
    refuse_unfinished(artifacts, backend)
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
        remove_restoring(artifacts, backend)
        sys.exit(f"{type(exc).__name__}: {exc}")


def remove_restoring(artifacts: Path, backend: Path) -> None:
    shutil.rmtree(artifacts / RESTORING, ignore_errors=True)
    for leftover in backend.glob(f"*{RESTORING}"):
        leftover.unlink()


def remove_database(path: Path) -> None:
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        (path.parent / name).unlink(missing_ok=True)


def swap(artifacts: Path, backend: Path) -> None:
    """Each live file goes aside before its restored one takes its name, so `revert` can undo any prefix."""
    refuse_unfinished(artifacts, backend)
    for new in sorted(backend.glob(f"*{RESTORING}")):
        live = backend / new.name.removesuffix(RESTORING)
        if live.exists():  # fold its write-ahead log in, so removing the log loses nothing
            db = sqlite3.connect(live)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            for log in ("-wal", "-shm"):
                (backend / f"{live.name}{log}").unlink(missing_ok=True)
            live.rename(backend / f"{live.name}{REPLACED}")
        else:
            (backend / f"{live.name}{ADDED}").touch()
        new.rename(live)
    side, replacing = artifacts / RESTORING, artifacts / REPLACING
    if not side.is_dir() and not any(artifacts.iterdir()):  # no artifact files either side (they are in S3)
        return
    replacing.mkdir()
    for entry in list(artifacts.iterdir()):  # the artifact store is the volume's root: its entries move
        if entry not in (side, replacing):
            entry.rename(replacing / entry.name)
    replacing.rename(artifacts / REPLACED)  # every live entry is aside: from here on the root's are restored ones
    for entry in list(side.iterdir()):
        entry.rename(artifacts / entry.name)
    side.rmdir()


def revert(artifacts: Path, backend: Path) -> None:
    """Put the live files back from wherever a swap stopped (MLflow stopped), and remove the restored ones."""
    for aside in sorted([*backend.glob(f"*{REPLACED}"), *backend.glob(f"*{ADDED}")]):
        live = backend / aside.name.removesuffix(aside.suffix)
        remove_database(live)  # the restored one, and what MLflow may have written to it
        if aside.suffix == REPLACED:
            aside.rename(live)
        else:
            aside.unlink()
    replacing, replaced = artifacts / REPLACING, artifacts / REPLACED
    if replaced.is_dir():
        for entry in list(artifacts.iterdir()):
            if entry.name not in (RESTORING, REPLACED):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    for aside in (replacing, replaced):
        if aside.is_dir():
            for entry in list(aside.iterdir()):
                entry.rename(artifacts / entry.name)
            aside.rmdir()
    remove_restoring(artifacts, backend)


def finish(artifacts: Path, backend: Path) -> None:
    """The restored state serves: what the swap kept aside goes."""
    shutil.rmtree(artifacts / REPLACED, ignore_errors=True)
    for aside in [*backend.glob(f"*{REPLACED}"), *backend.glob(f"*{ADDED}")]:
        aside.unlink()


if __name__ == "__main__":
    phase, artifacts_dir, backend_dir, store_file = sys.argv[1:5]
    if phase == "prepare":
        prepare(INCOMING, Path(artifacts_dir), Path(backend_dir), store_file)
    else:
        step = {"check": refuse_unfinished, "swap": swap, "revert": revert, "finish": finish}[phase]
        step(Path(artifacts_dir), Path(backend_dir))
