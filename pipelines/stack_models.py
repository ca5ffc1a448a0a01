"""Which models a stack serves, as its config says (`models`, `modelName`; infra/config_models.py reads the same
keys for the program), and one model's view of the stack: its release keys, outputs, URL and front backend.

The stack's default model keeps the single-model keys (servingImage, ...), the outputs (model_version, ...) and
`/predict`; every other declared model has `<key>.<name>`, `<output>.<name>` and `/models/<name>/`. A model the
stack declaring its models does not take another: that would replace the model it serves by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.deploy import DeployError
from services.contract import (
    DEFAULT_MODEL_NAME,
    DEFAULT_NAME_PREFIX,
    MODEL_ROUTE_PREFIX,
    MODELS_KEY,
    front_users_backend,
    inference_log_dir,
    model_key,
)


@dataclass(frozen=True)
class StackModel:
    """One model on one stack; `suffix` None for the stack's default model."""

    name: str
    suffix: str | None

    def key(self, key: str) -> str:
        """The stack config key (or output) `key` of this model."""
        return model_key(key, self.suffix)

    def keys(self, changes: Mapping[str, str]) -> dict[str, str]:
        """`changes` (by the single-model keys) as this model's keys."""
        return {self.key(key): value for key, value in changes.items()}

    def url(self, serving_url: str) -> str:
        """Where the front serves this model: the default model at its root (`/predict`), another at its route."""
        return serving_url if self.suffix is None else f"{serving_url}{MODEL_ROUTE_PREFIX}{self.name}"

    def url_in(self, outputs: Mapping[str, str]) -> str:
        """Where this model answers on the stack: its own `serving_url.<name>` output where the stack has one (the
        kubernetes target: the model's Service), else its route on the front."""
        return outputs.get(self.key("serving_url")) or self.url(outputs["serving_url"])

    @property
    def front_backend(self) -> str:
        return front_users_backend(self.suffix)

    @property
    def inference_log(self) -> str:
        """Where this model's servers write the inference log, on the stack's volume."""
        return inference_log_dir(self.suffix)


def declared_models(stack_config: Mapping[str, str]) -> list[str]:
    """The names in the stack's `models` (its config as text: Pulumi hands a list over as JSON); [] without one."""
    raw = stack_config.get(MODELS_KEY)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
        return [str(entry["name"]) for entry in entries]
    except (ValueError, TypeError, KeyError):
        raise DeployError(f"stack config {MODELS_KEY} is not a list of models with names (got {raw[:200]!r}); "
                          "`pulumi preview` says what is wrong with it") from None


def stack_models(stack_config: Mapping[str, str]) -> list[StackModel]:
    """Every model the stack serves, its default model first."""
    declared = declared_models(stack_config)
    default = stack_config.get("modelName") or (declared[0] if declared else DEFAULT_MODEL_NAME)
    return [StackModel(default, None), *(StackModel(name, name) for name in declared if name != default)]


def stack_model(stack_config: Mapping[str, str], model_name: str) -> StackModel:
    """`model_name` on this stack; `DeployError` when the stack declares its models and this is none of them. A
    stack without `models` serves one model, whichever its releases bring (as before models were declared)."""
    if not declared_models(stack_config):
        return StackModel(model_name, None)
    models = stack_models(stack_config)
    for model in models:
        if model.name == model_name:
            return model
    prefix = stack_config.get("namePrefix", DEFAULT_NAME_PREFIX)
    raise DeployError(
        f"stack '{prefix}' does not serve model {model_name!r} (it serves {', '.join(m.name for m in models)}): "
        f"releasing it there would replace one of them. Add `- name: {model_name}` to the stack file's "
        f"{MODELS_KEY} (docs/many-models.md) and `pulumi up`, then release it")
