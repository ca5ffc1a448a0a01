"""What a stack serves, kept in its registry so that it survives a fresh checkout.

A working copy's `Pulumi.<stack>.yaml` is no record of what serves: CI starts from a fresh clone, whose
stack file has `servingImage` empty, so applying it would undeploy the model. So a release to a stack,
once its image serves, tags the promoted version `serving_image.<namePrefix>` with that image; the
stack serves its `@champion`'s image. Every apply of the stack (a release, its restore, a rollback,
`pipelines stack-up`) sets `servingImage` / `modelVersion` from here, of every model the stack serves (each
model's own keys, pipelines/stack_models.py), so a release of one model from a fresh clone leaves the others
serving. A champion without that tag (released locally, or before the pointer existed) falls back to the stack's
own state, its outputs, never to the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipelines.config import PipelineConfig
from pipelines.deploy import DeployError
from pipelines.registry import CHAMPION, by_alias, connect
from pipelines.stack_models import StackModel, declared_models, stack_model, stack_models
from services.contract import (
    DEFAULT_NAME_PREFIX,
    MODEL_VERSION_KEY,
    MODEL_VERSION_OUTPUT,
    NO_IMAGE,
    NO_VERSION,
    SERVING_IMAGE_KEY,
    SERVING_IMAGE_OUTPUT,
)

SERVING_IMAGE_TAG = "serving_image"  # + ".<namePrefix>": one image per stack the version was released to
NO_MODEL = {SERVING_IMAGE_KEY: NO_IMAGE, MODEL_VERSION_KEY: NO_VERSION}  # the runtime image: "no model deployed yet"


def serving_image_tag(stack_config: Mapping[str, str]) -> str:
    return f"{SERVING_IMAGE_TAG}.{stack_config.get('namePrefix', DEFAULT_NAME_PREFIX)}"


def stack_serves(outputs: Mapping[str, str], stack_config: Mapping[str, str], champion: str,
                 model: StackModel | None = None) -> dict[str, str]:
    """What the stack's state (its outputs after the last update) says serves `model` (None: its default model), by
    the single-model keys; `DeployError` when it cannot say.

    A stack never updated serves nothing, and one serving the runtime image (model version "none") or no image of
    the model serves no model: keeping either undeploys nothing.
    """
    key = model.key if model is not None else str
    image, version = outputs.get(key(SERVING_IMAGE_OUTPUT)), outputs.get(key(MODEL_VERSION_OUTPUT))
    if not outputs or version == NO_VERSION:
        return dict(NO_MODEL)
    if image and version:
        return {SERVING_IMAGE_KEY: image, MODEL_VERSION_KEY: version}
    prefix = stack_config.get("namePrefix", DEFAULT_NAME_PREFIX)
    raise DeployError(
        f"cannot tell what serves on stack '{prefix}': @champion v{champion} has no release pointer for it (tag "
        f"{serving_image_tag(stack_config)}) and the stack's outputs name no serving image, so applying it could "
        f"replace what serves with the no-model image. Record the image that serves with `uv run pipelines "
        f"set-aliases --champion {champion} {record_options(stack_config, '<image>')}`, then `make stack-up`")


def record_options(stack_config: Mapping[str, str], image: str) -> str:
    """The `pipelines set-aliases` options that record `image` as what serves on this stack, by hand."""
    return f"--serving-image {image} --name-prefix {stack_config.get('namePrefix', DEFAULT_NAME_PREFIX)}"


@dataclass(frozen=True)
class RegistryPointer:
    """The release pointer of the stacks of the models on one registry: each model's @champion and that version's
    image per stack (a model's release records its own; `serving` reads every model the stack serves)."""

    config: PipelineConfig

    def serving(self, stack_config: Mapping[str, str], outputs: Callable[[], Mapping[str, str]]) -> dict[str, str]:
        """The `servingImage` / `modelVersion` stack config of what serves on this stack (`outputs`: its state), of
        every model it serves, each by its own keys."""
        client = connect(self.config)
        keys: dict[str, str] = {}
        # Without `models` the stack's one model is this release's (pipelines.stack_models.stack_model).
        models = stack_models(stack_config) if declared_models(stack_config) else [stack_model(stack_config,
                                                                                            self.config.model_name)]
        for model in models:
            keys |= model.keys(self._serves(client, model, stack_config, outputs))
        return keys

    @staticmethod
    def _serves(client, model: StackModel, stack_config: Mapping[str, str],
                outputs: Callable[[], Mapping[str, str]]) -> dict[str, str]:
        champion = by_alias(client, model.name, CHAMPION)
        if champion is None:
            return dict(NO_MODEL)
        image = champion.tags.get(serving_image_tag(stack_config))
        if image:
            return {SERVING_IMAGE_KEY: image, MODEL_VERSION_KEY: champion.version}
        # Never released to this stack through this code: what the stack runs is all there is to keep.
        return stack_serves(outputs(), stack_config, champion.version, model)

    def record(self, stack_config: Mapping[str, str], version: str, image: str) -> None:
        """Note that `version` serves on this stack as `image` (before its aliases move to it)."""
        connect(self.config).set_model_version_tag(self.config.model_name, version, serving_image_tag(stack_config),
                                                   image)
