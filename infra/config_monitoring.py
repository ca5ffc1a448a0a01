"""The monitoring policy of the model the stack serves, from the `monitoring:` section of its pipeline config.

The stack key `pipelineConfig` names that file (relative to the repo root; default the demo's
pipelines/pipeline.yaml). The section is validated with the monitoring service's own model
(services/monitoring/policy.py), never the `pipelines` package, and reaches the job as one JSON env var, on
either target. The interval is the policy's too: the old `monitoringIntervalMinutes` key is refused, naming
where it went. infra/config.py calls `read_monitoring_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from config_reader import ConfigReader, StackConfigError

from services.monitoring.policy import SECTION, MonitoringPolicy, PolicyError, checked_policy

PIPELINE_CONFIG_KEY = "pipelineConfig"
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

    def fail(self, read: ConfigReader, key: str, problem: str) -> StackConfigError:
        """An error about one of the policy's keys, naming the file and the key (and the stack key naming it)."""
        return read.fail(PIPELINE_CONFIG_KEY, f"{self.file}: {SECTION}.{key}: {problem}")


def moved_key_problems(keys: set[str], namespace: str) -> list[str]:
    """What to tell a stack file that still sets a key the policy now holds."""
    return [f"stack config {namespace}{old} is gone: the interval is the monitoring policy's now; set "
            f"{SECTION}.{new} in the model's pipeline config (the file {namespace}{PIPELINE_CONFIG_KEY} names, "
            f"default {DEFAULT_PIPELINE_CONFIG}) and remove {old} from the stack file"
            for old, new in MOVED_KEYS.items() if old in keys]


def read_monitoring_policy(read: ConfigReader) -> PolicySource:
    """The served model's policy; a missing or unreadable file or a bad value stops the program naming it."""
    named = read.string(PIPELINE_CONFIG_KEY, DEFAULT_PIPELINE_CONFIG)
    path = Path(named).expanduser()
    path = path if path.is_absolute() else REPO_ROOT / path
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named} not found (relative paths are from the repo root)") from None
    except OSError as exc:
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named} must be a mapping of keys to values")
    section = raw.get(SECTION)
    if not isinstance(section, dict | None):
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named}: {SECTION} must be a mapping of settings")
    try:
        return PolicySource(checked_policy(section or {}), named, raw.get("model_name"))
    except PolicyError as exc:
        raise read.fail(PIPELINE_CONFIG_KEY, f"{named}: {exc}") from None


def check_serves_that_model(read: ConfigReader, source: PolicySource, model_name: str) -> None:
    """The policy must be the served model's own: a file naming another model is the wrong file."""
    if source.model_name is not None and source.model_name != model_name:
        raise read.fail(PIPELINE_CONFIG_KEY, f"{source.file} is the config of model {source.model_name!r}, but "
                                             f"modelName is {model_name!r}: name that model's pipeline config")
