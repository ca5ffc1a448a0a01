"""Ground-truth feedback: JSON lines in `<log>/feedback/*.jsonl`,
`{"request_id": "…", "row": 0, "label": 1, "groups": {"applicant_group": "b"}}`.

`groups` is optional: the values of the version's `data.sensitive_features` for that row, which serving never
sees (they are not features), sent by whoever also knows the truth, for the live fairness figures (fairness.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.monitoring.inference_log import REQUEST_ID, ROW

FEEDBACK_DIR = "feedback"


@dataclass(frozen=True)
class Feedback:
    label: object
    groups: dict[str, object] = field(default_factory=dict)  # sensitive column -> the row's value


def read_feedback(log_dir: Path, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], Feedback]:
    """The feedback (`feedback/*.jsonl`) for the wanted (request id, row) keys; bad lines are skipped, and a
    `groups` that is not an object of scalars is left out (the label still counts)."""
    found: dict[tuple[str, int], Feedback] = {}
    feedback_dir = log_dir / FEEDBACK_DIR
    if not wanted or not feedback_dir.is_dir():
        return found
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
                        found[key] = Feedback(label, _groups(raw.get("groups")))
        except OSError:
            continue
    return found


def _groups(raw: object) -> dict[str, object]:
    if not isinstance(raw, dict):
        return {}
    return {str(column): value for column, value in raw.items() if isinstance(value, str | int | float | bool)}
