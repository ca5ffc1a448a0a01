"""How the job shows it is alive and what it did: JSON log lines and a heartbeat file."""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.contract import JsonLogFormatter

LOGGER_NAME = "services.monitoring"


def job_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line; fields land as top-level JSON keys (services.contract.JsonLogFormatter)."""
    job_logger().log(level, event, extra={"fields": fields})


def json_handler(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(JsonLogFormatter())
    return handler


def touch_heartbeat(path: Path, **state: Any) -> None:
    """Rewrite the heartbeat atomically: a reader never sees half a file, and its mtime is the beat."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), **state}, default=str))
    partial.replace(path)


def read_heartbeat(path: Path) -> dict[str, Any]:
    """What the last beat said ({} when there is none or it cannot be read)."""
    try:
        beat = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return beat if isinstance(beat, dict) else {}


def heartbeat_age_s(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
