"""Which pipeline config a command reads: `--config`, `PIPELINE_CONFIG`, a team's model, or the demo's.

Each team keeps one config per model in its own folder, `models/<name>/pipeline.yaml`, beside its feature code;
`make <target> MODEL=<name>` sets `PIPELINE_MODEL` and picks that file. Without either, the project's first
model (`first_model` in its `.copier-answers.yml`, asked by `copier copy`) is read, and in the template repo,
which has no answers file, the demo's `pipelines/pipeline.yaml`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipelines.config_model import REPO_ROOT
from pipelines.errors import CannotRun
from pipelines.project import ANSWERS_FILE, FIRST_MODEL_KEY, AnswersError, first_model
from services.contract import MODEL_CONFIG_FILE, MODELS_FOLDER, is_dns_label

DEFAULT_CONFIG_PATH = REPO_ROOT / "pipelines" / "pipeline.yaml"
MODELS_DIR = REPO_ROOT / MODELS_FOLDER
CONFIG_FILE = MODEL_CONFIG_FILE  # each model folder's config
CONFIG_ENV = "PIPELINE_CONFIG"
MODEL_ENV = "PIPELINE_MODEL"  # what `make ... MODEL=<name>` sets


class ConfigError(CannotRun, ValueError):
    """The pipeline config is missing, unreadable or has a bad key or value."""


def known_models(models_dir: Path = MODELS_DIR) -> list[str]:
    """The model folders that hold a config, by name."""
    return sorted(path.parent.name for path in models_dir.glob(f"*/{CONFIG_FILE}"))


def model_config_path(model: str, models_dir: Path = MODELS_DIR) -> Path:
    """`models/<model>/pipeline.yaml`; an unknown model is refused naming the models there are."""
    path = models_dir / model / CONFIG_FILE
    if is_dns_label(model) and path.is_file():
        return path
    known = ", ".join(known_models(models_dir)) or "none yet"
    raise ConfigError(f"MODEL={model}: there is no {models_dir.name}/{model}/{CONFIG_FILE}; "
                      f"the models in {models_dir}: {known}")


def default_config_path(models_dir: Path = MODELS_DIR) -> Path:
    """The config read without MODEL= or PIPELINE_CONFIG: the project's first model's, else the demo's.

    The answers file sits beside `models_dir`, at the project root."""
    try:
        model = first_model(models_dir.parent)
    except AnswersError as error:
        raise ConfigError(str(error)) from error
    if model is None:
        return DEFAULT_CONFIG_PATH
    path = models_dir / model / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{ANSWERS_FILE}: {FIRST_MODEL_KEY} is {model!r}, but there is no "
                          f"{models_dir.name}/{model}/{CONFIG_FILE}: write that model's config there "
                          f"(docs/forking.md), or pass MODEL=<name>")
    return path


def chosen_config_path(explicit: str | Path | None = None, env: Mapping[str, str] = os.environ,
                       models_dir: Path = MODELS_DIR) -> Path:
    """The config file to read: the explicit path, else $PIPELINE_CONFIG or $PIPELINE_MODEL's (not both), else
    the project's default (`default_config_path`)."""
    if explicit:
        return Path(explicit)
    config_file, model = env.get(CONFIG_ENV), env.get(MODEL_ENV)
    if config_file and model:
        raise ConfigError(f"both {CONFIG_ENV}={config_file} and MODEL={model} are set: give one of them")
    if model:
        return model_config_path(model, models_dir)
    return Path(config_file) if config_file else default_config_path(models_dir)
