"""Background processes of the embedded platform, with pid and log files under the state dir.

Each runs in its own session (process group) and is stopped as a group: SIGTERM, a grace, then SIGKILL.
Each carries a mark in its environment that its workers inherit, so a worker left serving after its
server was killed (kill -9 of `mlflow server` leaves its uvicorn worker on the port) is still known as
ours, whoever its parent is now: found, adopted into the pid file, and stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

KILL_WAIT_S = 5.0  # for the kernel to tear down what SIGKILL hit (its sockets with it)
# Set on each platform process to its pid file's path (less `.pid`) and inherited by its workers: how a
# worker whose server died (kill -9) is still known as ours, whoever its parent is now.
PROCESS_MARK_ENV = "PLATFORM_PROCESS"


@dataclass(frozen=True)
class Process:
    """A named background process whose pid and log live under `<state_dir>/run` and `<state_dir>/logs`."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def mark(self) -> str:
        """What every process of ours carries in its environment, workers included (they inherit it)."""
        return str(self.pid_file.absolute().with_suffix(""))

    def pid(self) -> int | None:
        """The pid of our live process: the one started, or else a worker of it that outlived it (a kill -9 of
        `mlflow server` leaves its uvicorn worker serving the port), which is then recorded as ours."""
        recorded = self._recorded_pid()
        if recorded is not None:
            return recorded
        survivors = sorted(self._members(), key=lambda proc: proc.info["create_time"] or 0.0)
        if not survivors:
            self.pid_file.unlink(missing_ok=True)
            return None
        adopted = survivors[0]  # the oldest: the top of what is left of the tree
        self._record(adopted.pid)
        self._note(f"adopted pid {adopted.pid} ({command_of(adopted)}): it outlived the process started")
        return adopted.pid

    def start(self, command: list[str], env: Mapping[str, str] | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self._note(f"start: {' '.join(command)}")
        with self.log_file.open("ab") as log:
            child = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {}), PROCESS_MARK_ENV: self.mark},
                start_new_session=True,  # its own process group: stopped as one, workers and all
            )
        self._record(child.pid)
        return child.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop our process groups (the server and its workers, or the workers it left); True if any ran.

        SIGTERM first (a server finishes the requests it is answering), SIGKILL for whatever is left after
        `timeout_s`; it returns once all are gone, so the port is free."""
        members = {proc.pid: proc for proc in self._members()}
        recorded = self._recorded_pid()
        if recorded is not None and recorded not in members:  # started before processes carried the mark
            with contextlib.suppress(psutil.NoSuchProcess):
                members[recorded] = psutil.Process(recorded)
        groups = {group for proc in members.values() if (group := _group(proc)) not in (None, os.getpgrp())}
        for group in groups:
            _signal_group(group, signal.SIGTERM)
        _wait_gone(list(members.values()), timeout_s)
        for group in groups:
            _signal_group(group, signal.SIGKILL)
        _wait_gone(list(members.values()), KILL_WAIT_S)
        self.pid_file.unlink(missing_ok=True)
        return bool(members)

    def _recorded_pid(self) -> int | None:
        """The pid in the pid file if that process still runs (not a later one that got the same pid)."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) and _start_time(pid) == started else None

    def _record(self, pid: int) -> None:
        # The start time tells our process from a later one that got the same pid (after a reboot, say).
        self.pid_file.write_text(f"{pid} {_start_time(pid)}")

    def _members(self) -> list[psutil.Process]:
        """Every live process that carries our mark, wherever its parent went."""
        return [proc for proc in psutil.process_iter(["environ", "create_time"], ad_value=None)
                if (proc.info["environ"] or {}).get(PROCESS_MARK_ENV) == self.mark
                and proc.pid != os.getpid() and _running(proc)]

    def _note(self, line: str) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n".encode())

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def alive(pid: int) -> bool:
    try:
        return _running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def _running(proc: psutil.Process) -> bool:
    # Reap it if it is our own child. A zombie is not alive either: it exited, and the process that started
    # it (a bench, a test session, an earlier `deploy` in the same process) has not reaped it yet.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(_running(proc) for proc in procs) and time.monotonic() < deadline:
        time.sleep(0.1)


def _group(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return None


def _start_time(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return "gone"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def command_of(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()[:4])
    except psutil.Error:
        return "?"
