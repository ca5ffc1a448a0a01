"""Reading `make status` in tests: one block per model, so a row is looked up in its model's block."""

from __future__ import annotations


def model_row(status: str, model_name: str, label: str) -> str:
    """The first line with `label` (e.g. "@champion") after the header of `model_name`'s block."""
    lines = status.splitlines()
    start = next(i for i, line in enumerate(lines) if f"Model {model_name}" in line)
    return next(line for line in lines[start:] if label in line)
