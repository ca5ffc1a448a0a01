"""The models a stack serves: its `models` key, and each model's release keys (the image that serves it, a
candidate or a canary beside it), read once here.

A stack file without `models` serves one model, `modelName`, with today's single-model keys (servingImage,
modelVersion, canary*, candidate*). With `models` (a list of {name, servingMemoryMb, canaryPercent,
servingWorkers, pipelineConfig, team}), `modelName` is the default model (`/predict` answers for it; the first entry
when unset), which keeps those keys; every other model has its own of each, `<key>.<name>`
(services.contract.model_key), which a release of that model sets. A name must be a DNS label, since it is the
model's route (`/models/<name>/`) and part of its containers' names; two entries of one name would be two models
on one route. Each model is monitored by the policy of its own pipeline config (infra/config_monitoring.py): the
default model's is the stack key `pipelineConfig`'s (or its entry's), every other's its entry's `pipelineConfig`,
by default its folder's models/<name>/pipeline.yaml. A model's `team` owns it (infra/config_teams.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config_monitoring import (
    PIPELINE_CONFIG_KEY,
    PolicySource,
    check_serves_that_model,
    model_config_file,
    read_monitoring_policy,
    read_policy_file,
)
from config_reader import IMAGE_REF_OR_EMPTY, ConfigReader, StackConfigError

from services.contract import (
    CANARY_IMAGE_KEY,
    CANARY_PERCENT_KEY,
    CANARY_VERSION_KEY,
    CANDIDATE_IMAGE_KEY,
    CANDIDATE_VERSION_KEY,
    DEFAULT_MODEL_NAME,
    MODEL_RELEASE_KEYS,
    MODEL_ROUTE_PREFIX,
    MODEL_VERSION_KEY,
    MODELS_KEY,
    NO_IMAGE,
    NO_VERSION,
    SERVING_IMAGE_KEY,
    is_dns_label,
    model_key,
)

_VERSION = re.compile(r"^[A-Za-z0-9_.-]+$")  # a model version as the stack config names it
ENTRY_FIELDS = ("name", "servingMemoryMb", "canaryPercent", "servingWorkers", PIPELINE_CONFIG_KEY,
                "team")  # team: infra/config_teams.py
DEFAULT_CANARY_PERCENT = 10
MAX_SERVING_WORKERS = 64  # a typo guard: each worker is a process with the model loaded


@dataclass(frozen=True)
class ModelRelease:
    """What serves one model on the stack: its champion's image and version, a candidate or a canary beside it."""

    serving_image: str | None
    model_version: str
    canary_image: str | None
    canary_version: str
    canary_percent: int
    candidate_image: str | None
    candidate_version: str

    @property
    def beside_the_champion(self) -> bool:
        return bool(self.candidate_image or self.canary_image)


@dataclass(frozen=True)
class ServedModel:
    """A model the stack serves beside its default model, with its own containers, route and release keys."""

    name: str
    memory_mb: int
    release: ModelRelease
    monitoring: PolicySource  # what its own monitoring job judges by (its pipeline config's monitoring section)
    workers: int | None = None  # its servers' worker processes (servingWorkers); None: its bento's own


def read_release(read: ConfigReader, model: str | None, canary_percent: int) -> ModelRelease:
    """The release keys of `model` (None: the default model's, the unsuffixed keys)."""
    def key(name: str) -> str:
        return model_key(name, model)

    serving_image = read.string(key(SERVING_IMAGE_KEY), NO_IMAGE, IMAGE_REF_OR_EMPTY)
    canary_image = read.string(key(CANARY_IMAGE_KEY), NO_IMAGE, IMAGE_REF_OR_EMPTY)
    if canary_image and not serving_image:
        raise read.fail(key(CANARY_IMAGE_KEY), f"a canary needs a champion beside it: set {key(SERVING_IMAGE_KEY)} too")
    return ModelRelease(
        serving_image=serving_image or None,
        model_version=read.string(key(MODEL_VERSION_KEY), "unknown" if serving_image else NO_VERSION, _VERSION),
        canary_image=canary_image or None,
        canary_version=read.string(key(CANARY_VERSION_KEY), NO_VERSION, _VERSION),
        canary_percent=read.number(key(CANARY_PERCENT_KEY), canary_percent, int, 1, 50),
        candidate_image=read.string(key(CANDIDATE_IMAGE_KEY), NO_IMAGE, IMAGE_REF_OR_EMPTY) or None,
        candidate_version=read.string(key(CANDIDATE_VERSION_KEY), NO_VERSION, _VERSION),
    )


def read_model_entries(read: ConfigReader) -> list[Mapping[str, Any]]:
    """The `models` list as written, each entry checked for its fields, name and route; [] without the key."""
    entries = read.config.get_object(MODELS_KEY)
    if entries is None:
        return []
    if not isinstance(entries, list) or not entries:
        raise read.fail(MODELS_KEY, "must be a non-empty list of models, each {name: <dns label>, ...}")
    routes: dict[str, int] = {}
    for position, entry in enumerate(entries):
        where = f"{MODELS_KEY}[{position}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise read.fail(MODELS_KEY, f"{where} must be a mapping with a name (got {entry!r})")
        if unknown := sorted(set(entry) - set(ENTRY_FIELDS)):
            raise read.fail(MODELS_KEY, f"{where} has unknown field(s) {', '.join(unknown)}; "
                                        f"a model takes {', '.join(ENTRY_FIELDS)}")
        name = entry["name"]
        if not is_dns_label(name):
            raise read.fail(MODELS_KEY, f"{where}.name {name!r} is not a DNS label (lowercase letters, digits and "
                                        "'-', a letter or digit at each end, at most 63 characters): it is the "
                                        f"model's route {MODEL_ROUTE_PREFIX}<name>/ and part of its containers' names")
        if name in routes:
            raise read.fail(MODELS_KEY, f"{where} and {MODELS_KEY}[{routes[name]}] both serve "
                                        f"{MODEL_ROUTE_PREFIX}{name}/: two models on one route")
        routes[name] = position
    return entries


def _entry_number(read: ConfigReader, entry: Mapping[str, Any], position: int, field: str, default: int | None,
                  low: int, high: int) -> int | None:
    if field not in entry:
        return default
    value = entry[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise read.fail(MODELS_KEY, f"{MODELS_KEY}[{position}].{field} must be a whole number between {low} and "
                                    f"{high} (got {value!r})")
    return value


@dataclass(frozen=True)
class ModelSettings:
    """One `models` entry as read: its name, its serving containers' memory and workers, its canaries' default share
    and the pipeline config it names (None: it names none)."""

    name: str
    memory_mb: int
    canary_percent: int
    workers: int | None
    pipeline_config: str | None
    position: int


def _entry_file(read: ConfigReader, entry: Mapping[str, Any], position: int) -> str | None:
    value = entry.get(PIPELINE_CONFIG_KEY)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise read.fail(MODELS_KEY, f"{MODELS_KEY}[{position}].{PIPELINE_CONFIG_KEY} must be the path of the "
                                    f"model's pipeline config (got {value!r})")
    return value.strip() if value is not None else None


def read_model_settings(read: ConfigReader, entries: list[Mapping[str, Any]],
                        default_memory_mb: int) -> list[ModelSettings]:
    """Each declared model's memory (`servingMemoryMb` when unset), canary share, workers and pipeline config."""
    return [ModelSettings(
        name=entry["name"],
        memory_mb=_entry_number(read, entry, position, "servingMemoryMb", default_memory_mb, 64, 65536),
        canary_percent=_entry_number(read, entry, position, "canaryPercent", DEFAULT_CANARY_PERCENT, 1, 50),
        workers=_entry_number(read, entry, position, "servingWorkers", None, 1, MAX_SERVING_WORKERS),
        pipeline_config=_entry_file(read, entry, position),
        position=position,
    ) for position, entry in enumerate(entries)]


def _model_policy(read: ConfigReader, model: ModelSettings | None, default_model: str, is_default: bool
                  ) -> PolicySource:
    """The policy `model` is monitored by. The default model's comes from the stack key `pipelineConfig` unless
    its entry names a file (naming it in both is ambiguous); another model's from its entry's file, by default its
    folder's. Either file must be that model's own (or name no model)."""
    name = model.name if model is not None else default_model
    if model is None or (is_default and model.pipeline_config is None):
        source = read_monitoring_policy(read)
        check_serves_that_model(read, source, name)
        return source
    where = f"{MODELS_KEY}[{model.position}].{PIPELINE_CONFIG_KEY}"
    if is_default and read.config.get(PIPELINE_CONFIG_KEY) is not None:
        raise read.fail(MODELS_KEY, f"{where} and {read.config.full_key(PIPELINE_CONFIG_KEY)} both name the default "
                                    f"model {name!r}'s pipeline config: keep one")
    named = model.pipeline_config or model_config_file(name)
    source = read_policy_file(read, named, MODELS_KEY,
                              f"{where}: " if model.pipeline_config else f"{where} (unset: the model's folder's) ")
    check_serves_that_model(read, source, name, f"{MODELS_KEY}[{model.position}].name")
    return source


def read_models(read: ConfigReader, entries: list[Mapping[str, Any]], default_model: str,
                default_memory_mb: int) -> tuple[ServedModel, tuple[ServedModel, ...]]:
    """The default model (its release from the unsuffixed keys) and every other declared model."""
    settings = {model.name: model for model in read_model_settings(read, entries, default_memory_mb)}
    mine = settings.get(default_model)
    default = ServedModel(
        name=default_model,
        memory_mb=mine.memory_mb if mine else default_memory_mb,
        release=read_release(read, None, mine.canary_percent if mine else DEFAULT_CANARY_PERCENT),
        monitoring=_model_policy(read, mine, default_model, is_default=True),
        workers=mine.workers if mine else None,
    )
    others = tuple(ServedModel(
        name=model.name, memory_mb=model.memory_mb,
        release=read_release(read, model.name, model.canary_percent),
        monitoring=_model_policy(read, model, default_model, is_default=False),
        workers=model.workers,
    ) for model in settings.values() if model.name != default_model)
    return default, others


def per_model_key_problems(keys: set[str], declared: set[str], default: str | None = None,
                           bases: tuple[str, ...] = MODEL_RELEASE_KEYS, kind: str = "model"
                           ) -> tuple[set[str], list[str]]:
    """Of these config keys, the per-`kind` keys (`<base>.<name>`) of declared names (known), and a problem for each
    one of a name `models` does not declare, or of the `default` model (whose release keys are the unsuffixed ones)."""
    known, problems = set(), []
    for key in keys:
        base, dot, name = key.partition(".")
        if not dot or base not in bases:
            continue
        if name == default:
            problems.append(f"{key} is a key of the default model {name!r}, whose release keys have no suffix: "
                            f"write {base}")
        elif name in declared:
            known.add(key)
        else:
            problems.append(f"{key} is the key of {kind} {name!r}, which {MODELS_KEY} does not declare "
                            f"(declared: {', '.join(sorted(declared)) or 'none'})")
    return known, problems


def read_default_model(read: ConfigReader, entries: list[Mapping[str, Any]]) -> str:
    """`modelName`, the model `/predict` answers for; with `models`, one of them (the first when unset)."""
    model_name = read.string("modelName", "") or None
    if model_name is not None and not is_dns_label(model_name):
        raise read.fail("modelName", f"{model_name!r} is not a DNS label (lowercase letters, digits and '-'): it is "
                                     f"the model's route {MODEL_ROUTE_PREFIX}<name>/")
    if not entries:
        return model_name or DEFAULT_MODEL_NAME
    names = [entry["name"] for entry in entries]
    if model_name is None:
        return names[0]
    if model_name not in names:
        raise StackConfigError(f"stack config {read.config.full_key('modelName')}: {model_name!r} is not in "
                               f"{MODELS_KEY} ({', '.join(names)}); the default model is one of them")
    return model_name
