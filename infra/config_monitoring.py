"""The monitoring policy of each model the stack serves, from the `monitoring:` section of its pipeline config.

The stack key `pipelineConfig` names the default model's file (relative to the repo root; default the demo's
pipelines/pipeline.yaml); each other `models` entry names its own (`pipelineConfig`, default the model's folder,
models/<name>/pipeline.yaml). The section is validated with the monitoring service's own model
(services/monitoring/policy.py), never the `pipelines` package, and reaches the model's job as one JSON env var,
on either target. The interval is the policy's too: the old `monitoringIntervalMinutes` key is refused, naming
where it went. infra/config_models.py calls `read_policy_file`, `read_monitoring_policy` and
`check_serves_that_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from config_reader import ConfigReader, StackConfigError

from services.contract import MODEL_CONFIG_FILE, MODELS_FOLDER
from services.monitoring.policy import SECTION, MonitoringPolicy, PolicyError, checked_policy

PIPELINE_CONFIG_KEY = "pipelineConfig"  # the stack key, and the field of a `models` entry
DEFAULT_PIPELINE_CONFIG = "pipelines/pipeline.yaml"
REPO_ROOT = Path(__file__).resolve().parent.parent
MONITORING_KEYS = frozenset({PIPELINE_CONFIG_KEY})
# Stack keys that moved into the pipeline config's monitoring section: the old key -> the policy's key.
MOVED_KEYS = {"monitoringIntervalMinutes": "interval_minutes"}


@dataclass(frozen=True)
class PolicySource:
    """The policy, and the file it came from as the stack file names it (for messages)."""

    policy: MonitoringPolicy
    file: str
    model_name: object  # the file's model_name, as written (None if it has none)
    stack_key: str = PIPELINE_CONFIG_KEY  # the stack key that names the file
    where: str = ""  # within that key, e.g. "models[1].pipelineConfig: " for an entry's file
    experiment: object = None  # the file's tracking.experiment, as written (None if unset): a team's is checked

    def fail(self, read: ConfigReader, key: str, problem: str) -> StackConfigError:
        """An error about one of the policy's keys, naming the file and the key (and the stack key naming it)."""
        return read.fail(self.stack_key, f"{self.where}{self.file}: {SECTION}.{key}: {problem}")


def moved_key_problems(keys: set[str], namespace: str) -> list[str]:
    """What to tell a stack file that still sets a key the policy now holds."""
    return [f"stack config {namespace}{old} is gone: the interval is the monitoring policy's now; set "
            f"{SECTION}.{new} in the model's pipeline config (the file {namespace}{PIPELINE_CONFIG_KEY} names, "
            f"default {DEFAULT_PIPELINE_CONFIG}) and remove {old} from the stack file"
            for old, new in MOVED_KEYS.items() if old in keys]


def model_config_file(model: str) -> str:
    """A team's model folder's config, as a stack file names it: the default of a `models` entry's pipelineConfig."""
    return f"{MODELS_FOLDER}/{model}/{MODEL_CONFIG_FILE}"


def read_monitoring_policy(read: ConfigReader) -> PolicySource:
    """The default model's policy, from the file the stack key `pipelineConfig` names."""
    return read_policy_file(read, read.string(PIPELINE_CONFIG_KEY, DEFAULT_PIPELINE_CONFIG))


def read_policy_file(read: ConfigReader, named: str, stack_key: str = PIPELINE_CONFIG_KEY,
                     where: str = "") -> PolicySource:
    """The policy in the pipeline config `named`; a missing or unreadable file or a bad value stops the program
    naming `stack_key` (and `where` in it) and the file."""
    def fail(problem: str) -> StackConfigError:
        return read.fail(stack_key, f"{where}{named}{problem}")

    path = Path(named).expanduser()
    path = path if path.is_absolute() else REPO_ROOT / path
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise fail(" not found (relative paths are from the repo root)") from None
    except OSError as exc:
        raise fail(f" cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise fail(f" is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise fail(" must be a mapping of keys to values")
    section = raw.get(SECTION)
    if not isinstance(section, dict | None):
        raise fail(f": {SECTION} must be a mapping of settings")
    tracking = raw.get("tracking")
    experiment = tracking.get("experiment") if isinstance(tracking, dict) else None
    try:
        return PolicySource(checked_policy(section or {}), named, raw.get("model_name"), stack_key, where, experiment)
    except PolicyError as exc:
        raise fail(f": {exc}") from None


def check_serves_that_model(read: ConfigReader, source: PolicySource, model_name: str,
                            named_by: str = "modelName") -> None:
    """The policy must be the model's own: a file naming another model is the wrong file."""
    if source.model_name is not None and source.model_name != model_name:
        raise read.fail(source.stack_key, f"{source.where}{source.file} is the config of model "
                                          f"{source.model_name!r}, but {named_by} is {model_name!r}: name that "
                                          "model's pipeline config")
