"""Ground-truth feedback: JSON lines `{"request_id": "…", "row": 0, "label": 1}` in `<log>/feedback/*.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

from services.monitoring.inference_log import REQUEST_ID, ROW

FEEDBACK_DIR = "feedback"


def read_labels(log_dir: Path, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], object]:
    """Ground-truth labels (`feedback/*.jsonl`) for the wanted (request id, row) keys; bad lines are skipped."""
    labels: dict[tuple[str, int], object] = {}
    feedback_dir = log_dir / FEEDBACK_DIR
    if not wanted or not feedback_dir.is_dir():
        return labels
    for path in sorted(feedback_dir.glob("*.jsonl")):
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        raw = json.loads(line)
                        key = (str(raw[REQUEST_ID]), int(raw.get(ROW, 0)))
                        label = raw["label"]
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue
                    if key in wanted:
                        labels[key] = label
        except OSError:
            continue
    return labels
