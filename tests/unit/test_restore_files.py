"""The stack restore's file swap (pipelines/restore_files.py), on plain directories standing in for the volumes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from pipelines import restore_files
from pipelines.restore_files import REPLACED, RESTORING, finish, kept_aside, prepare, revert, swap


def database(path: Path, value: str, *, wal: bool = False) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS t (v TEXT)")
        db.execute("DELETE FROM t")
        db.execute("INSERT INTO t VALUES (?)", (value,))


def value_of(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT v FROM t").fetchone()[0]


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(restored files, live artifact volume, live backend volume): each with its own contents."""
    incoming, artifacts, backend = tmp_path / "restore", tmp_path / "artifacts", tmp_path / "backend"
    (incoming / "artifacts" / "1").mkdir(parents=True)
    (incoming / "artifacts" / "1" / "model.pkl").write_text("restored model")
    (incoming / "extra").mkdir()
    database(incoming / "extra" / "basic_auth.db", "restored users")
    database(incoming / "store.sqlite", "restored runs")
    (artifacts / "2").mkdir(parents=True)
    (artifacts / "2" / "model.pkl").write_text("live model")
    backend.mkdir()
    database(backend / "basic_auth.db", "live users")
    database(backend / "mlflow.db", "live runs", wal=True)
    return incoming, artifacts, backend


def live_state(artifacts: Path, backend: Path) -> dict[str, str]:
    files = {str(p.relative_to(artifacts)): p.read_text() for p in sorted(artifacts.rglob("*")) if p.is_file()}
    return files | {name: value_of(backend / name) for name in ("basic_auth.db", "mlflow.db")}


def test_prepare_writes_beside_the_live_files_swap_puts_them_in_place_and_finish_drops_the_old(volumes):
    incoming, artifacts, backend = volumes
    before = live_state(artifacts, backend)
    prepare(incoming, artifacts, backend, "mlflow.db")
    assert live_state(artifacts, backend) == {**before, f"{RESTORING}/1/model.pkl": "restored model"}
    swap(artifacts, backend)
    assert kept_aside(artifacts, backend) == [artifacts / REPLACED, backend / f"basic_auth.db{REPLACED}",
                                              backend / f"mlflow.db{REPLACED}"]  # until MLflow serves the new
    finish(artifacts, backend)
    assert live_state(artifacts, backend) == {"1/model.pkl": "restored model", "basic_auth.db": "restored users",
                                              "mlflow.db": "restored runs"}
    assert sorted(p.name for p in backend.iterdir()) == ["basic_auth.db", "mlflow.db"]  # no WAL, no leftovers
    assert sorted(p.name for p in artifacts.iterdir()) == ["1"]


def test_a_restored_file_that_is_no_database_fails_prepare_and_leaves_nothing_behind(volumes):
    incoming, artifacts, backend = volumes
    (incoming / "store.sqlite").write_bytes(b"not a database" * 100)
    before = live_state(artifacts, backend)
    with pytest.raises(SystemExit, match="DatabaseError"):
        prepare(incoming, artifacts, backend, "mlflow.db")
    assert live_state(artifacts, backend) == before
    assert not list(backend.glob(f"*{RESTORING}")) and not (artifacts / RESTORING).exists()


class Crash(Exception):
    """The swap's process dying at one of its renames."""


SWAP_RENAMES = 8  # of the volumes below: 2 per replaced file, 1 per added one, 3 for the artifacts


@pytest.mark.parametrize("renames_done", range(SWAP_RENAMES + 1))
def test_revert_puts_the_live_state_back_wherever_the_swap_stopped(volumes, monkeypatch, renames_done):
    """MLflow unhealthy on the restored state, or the swap dying after any of its renames: revert undoes it,
    including a file the live state did not have (an `.added` one) and what MLflow wrote to the restored one."""
    incoming, artifacts, backend = volumes
    database(incoming / "extra" / "new.db", "restored only")
    before = live_state(artifacts, backend)
    prepare(incoming, artifacts, backend, "mlflow.db")
    original, done = Path.rename, 0

    def crashing(self: Path, target: Path) -> Path:
        nonlocal done
        if done == renames_done:
            raise Crash
        done += 1
        return original(self, target)

    monkeypatch.setattr(Path, "rename", crashing)
    crashed = False
    try:
        swap(artifacts, backend)
    except Crash:
        crashed = True
    monkeypatch.undo()
    assert crashed == (renames_done < SWAP_RENAMES)  # every rename is a crash point, the last case a whole swap
    if not crashed:  # MLflow started on the restored state, then was found unhealthy
        database(backend / "mlflow.db", "written by MLflow after the swap", wal=True)
    revert(artifacts, backend)
    assert live_state(artifacts, backend) == before
    assert sorted(p.name for p in backend.iterdir()) == ["basic_auth.db", "mlflow.db"]
    assert sorted(p.name for p in artifacts.iterdir()) == ["2"]


@pytest.mark.parametrize("phase", [restore_files.refuse_unfinished, prepare, swap])
def test_a_restore_refuses_to_start_while_an_unfinished_one_kept_the_live_files_aside(volumes, phase):
    """A swap that died after moving the live artifacts aside: `.replaced` holds their only copy."""
    incoming, artifacts, backend = volumes
    (artifacts / REPLACED).mkdir()
    (artifacts / "2").rename(artifacts / REPLACED / "2")
    arguments = (incoming, artifacts, backend, "mlflow.db") if phase is prepare else (artifacts, backend)
    with pytest.raises(SystemExit, match=rf"earlier restore did not finish: {artifacts / REPLACED} may hold"):
        phase(*arguments)
    assert (artifacts / REPLACED / "2" / "model.pkl").read_text() == "live model"
    assert not (artifacts / RESTORING).exists()
