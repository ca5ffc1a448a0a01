"""Which pipeline config a command reads: `--config`, `PIPELINE_CONFIG`, a team's model, or the demo's.

Each team keeps one config per model in its own folder, `models/<name>/pipeline.yaml`, beside its feature code;
`make <target> MODEL=<name>` sets `PIPELINE_MODEL` and picks that file. Without either, the demo's
`pipelines/pipeline.yaml` is read, as always.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipelines.config_model import REPO_ROOT
from pipelines.errors import CannotRun
from services.contract import is_dns_label

DEFAULT_CONFIG_PATH = REPO_ROOT / "pipelines" / "pipeline.yaml"
MODELS_DIR = REPO_ROOT / "models"
CONFIG_FILE = "pipeline.yaml"  # each model folder's config
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


def chosen_config_path(explicit: str | Path | None = None, env: Mapping[str, str] = os.environ,
                       models_dir: Path = MODELS_DIR) -> Path:
    """The config file to read: the explicit path, else $PIPELINE_CONFIG or $PIPELINE_MODEL's (not both), else
    the demo's."""
    if explicit:
        return Path(explicit)
    config_file, model = env.get(CONFIG_ENV), env.get(MODEL_ENV)
    if config_file and model:
        raise ConfigError(f"both {CONFIG_ENV}={config_file} and MODEL={model} are set: give one of them")
    if model:
        return model_config_path(model, models_dir)
    return Path(config_file) if config_file else DEFAULT_CONFIG_PATH
