"""Background processes: a server that exited counts as stopped even when another process started it; a
worker that outlived its server is still ours (adopted, stopped with its group); nothing else is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from pipelines.platform import PlatformError, free_port, serve_once, url_ok
from pipelines.processes import Process, alive

# A parent that starts a child which exits at once, and never reaps it: the child stays a zombie.
UNREAPING_PARENT = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'pass']); "
                    "print(child.pid, flush=True); time.sleep(60)")


def test_a_server_that_exited_unreaped_by_the_process_that_started_it_is_notalive():
    parent = subprocess.Popen([sys.executable, "-c", UNREAPING_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert not alive(child)  # else a deploy would wait its whole stop timeout for it
        assert alive(parent.pid)
    finally:
        parent.kill()
        parent.wait()


# A server that starts a worker and records the worker's pid: the shape of `mlflow server` and its uvicorn.
SERVER_WITH_WORKER = ("import subprocess, sys, time; "
                      "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                      "open(sys.argv[1], 'w').write(str(worker.pid)); time.sleep(120)")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
DEAF_TO_SIGTERM = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(120)"]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; whatever of them is left is stopped."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop(timeout_s=1)


def _started(processes: list[Process], process: Process, command: list[str]) -> int:
    processes.append(process)
    return process.start(command)


def _wait_for(condition, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s}s"
        time.sleep(0.05)


def test_a_worker_that_outlived_its_server_is_adopted_then_stopped(tmp_path, processes):
    server = Process("mlflow", tmp_path)
    worker_file = tmp_path / "worker.pid"
    leader = _started(processes, server, [sys.executable, "-c", SERVER_WITH_WORKER, str(worker_file)])
    _wait_for(lambda: worker_file.exists() and worker_file.read_text(), "worker")
    worker = int(worker_file.read_text())

    os.kill(leader, signal.SIGKILL)
    _wait_for(lambda: not alive(leader), "exit of the killed server")
    assert server.pid() == worker  # adopted: the pid file names it now
    assert server.pid_file.read_text().split()[0] == str(worker)
    assert "adopted pid" in server.log_tail()

    assert server.stop(timeout_s=5)
    assert not alive(worker)
    assert server.pid() is None and not server.pid_file.exists()
    assert not server.stop()


def test_processes_of_another_name_or_state_dir_are_not_taken_for_ours(tmp_path, processes):
    ours = Process("front", tmp_path / "a")
    same_name_elsewhere = Process("front", tmp_path / "b")
    other_name_here = Process("serving-blue", tmp_path / "a")
    leader = _started(processes, ours, SLEEPER)
    others = [_started(processes, process, SLEEPER) for process in (same_name_elsewhere, other_name_here)]

    os.kill(leader, signal.SIGKILL)
    _wait_for(lambda: not alive(leader), "exit of the killed process")
    assert ours.pid() is None  # nothing of it survived, and the others are not its workers
    assert not ours.stop()
    assert [same_name_elsewhere.pid(), other_name_here.pid()] == others
    assert all(alive(pid) for pid in others)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path, processes):
    deaf = Process("monitoring-ui", tmp_path)
    pid = _started(processes, deaf, DEAF_TO_SIGTERM)
    _wait_for(lambda: "ready" in deaf.log_tail(), "SIGTERM handler")
    started = time.monotonic()
    assert deaf.stop(timeout_s=0.5)
    assert not alive(pid) and time.monotonic() - started < 5


def test_a_server_started_before_processes_carried_the_mark_is_still_stopped(tmp_path):
    unmarked = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        legacy = Process("mlflow", tmp_path)
        legacy.pid_file.parent.mkdir(parents=True)
        legacy.pid_file.write_text(f"{unmarked.pid} {psutil.Process(unmarked.pid).create_time():.2f}")
        assert legacy.pid() == unmarked.pid
        assert legacy.stop(timeout_s=5)
        assert unmarked.poll() is not None
    finally:
        unmarked.kill()
        unmarked.wait()


def _http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def _serve(process: Process, port: int) -> None:
    serve_once(process, _http_server(port), host="127.0.0.1", port=port, port_setting="platform.test_port",
               probe=f"http://127.0.0.1:{port}/", timeout_s=30, what="test server")


def test_serve_once_restarts_a_process_of_ours_that_does_not_answer(tmp_path, processes):
    server, port = Process("front", tmp_path), free_port()
    hung = _started(processes, server, SLEEPER)  # ours, alive, answering nothing
    _serve(server, port)
    assert not alive(hung)
    serving = server.pid()
    assert serving not in (None, hung) and url_ok(f"http://127.0.0.1:{port}/")
    _serve(server, port)  # ours and answering: kept
    assert server.pid() == serving


def test_serve_once_names_the_program_that_holds_the_port(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        taken = rf"port 127.0.0.1:{port} is taken by another program \(pid {os.getpid()}: .*\); stop it or set"
        with pytest.raises(PlatformError, match=taken + " platform.test_port"):
            _serve(Process("front", tmp_path), port)
