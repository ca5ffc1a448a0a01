"""What a project set once when it was made from the template: its copier answers file.

`copier copy` writes `.copier-answers.yml` at the project root (the template repo itself has none); the
answers a command reads from it are read here only.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ANSWERS_FILE = ".copier-answers.yml"
FIRST_MODEL_KEY = "first_model"  # the copier question: the model `make` reads without MODEL=


class AnswersError(ValueError):
    """The answers file cannot be read or holds a bad value."""


def answers(root: Path) -> dict[str, object]:
    """The project's answers; none for the template repo itself."""
    path = root / ANSWERS_FILE
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise AnswersError(f"{path}: cannot be read as YAML ({error})") from error
    if not isinstance(loaded, dict):
        raise AnswersError(f"{path}: expected a mapping of answers, got {type(loaded).__name__}")
    return loaded


def first_model(root: Path) -> str | None:
    """The model folder the project's commands read by default; None keeps the demo's config."""
    value = answers(root).get(FIRST_MODEL_KEY) or None
    if value is not None and not isinstance(value, str):
        raise AnswersError(f"{root / ANSWERS_FILE}: {FIRST_MODEL_KEY} must be a model's folder name, got {value!r}")
    return value
