"""Background processes: a server that exited counts as stopped even when another process started it."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from pipelines.platform import _alive

# A parent that starts a child which exits at once, and never reaps it: the child stays a zombie.
UNREAPING_PARENT = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'pass']); "
                    "print(child.pid, flush=True); time.sleep(60)")


def test_a_server_that_exited_unreaped_by_the_process_that_started_it_is_not_alive():
    parent = subprocess.Popen([sys.executable, "-c", UNREAPING_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert not _alive(child)  # else a deploy would wait its whole stop timeout for it
        assert _alive(parent.pid)
    finally:
        parent.kill()
        parent.wait()
