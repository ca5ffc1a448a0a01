"""A bench process's own memory, read from /proc/self/status (Linux).

VmHWM rather than getrusage's ru_maxrss where /proc has it: ru_maxrss survives fork and exec on Linux, so a
child would report its parent's peak if that was higher.
"""

from __future__ import annotations

import resource
from pathlib import Path

STATUS = Path("/proc/self/status")


def _status_mib(field: str) -> float | None:
    for line in (STATUS.read_text().splitlines() if STATUS.exists() else []):
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def peak_rss_mib() -> float:
    """This process's resident-memory high-water mark."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident memory now (0 where /proc is missing: the peak is then the whole process's)."""
    return _status_mib("VmRSS") or 0.0
