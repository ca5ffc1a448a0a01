"""A registered version as it will serve: the gated ONNX model, or the scikit-learn model behind the trust pin.

The gate scores exactly what the bento will run. A version's scikit-learn model loads with the template's
pinned trusted types plus the ones the caller's pipeline config lists (`model.trusted_types` of the checkout,
reviewed like code). The version's own recorded config is a run artifact, writable by whoever writes the run,
so it is never trusted: a version trained trusting a type the reviewed config does not list is refused. Its
ONNX model loads only as the very file its gate checked (digest on the version).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

from pipelines.config import PipelineConfig
from pipelines.errors import CannotRun
from pipelines.onnx_export import CONVERTED, ONNX_ARTIFACT, ONNX_RUN_TAG
from pipelines.registry import ResolvedVersion
from services.contract import ONNX_RUNTIME, SKLEARN_RUNTIME
from services.serving.model_trust import UntrustedModel, check_model_dir, load_trusted_model
from services.serving.onnx_model import OnnxModel, load_onnx_model

Served = Pipeline | OnnxModel  # what answers requests, and so what the gate scores
_TRUST_HINT = ("if the type(s) it names are safe to load, list them under model.trusted_types in the pipeline "
               "config (reviewed like code) and train again")


class UntrustedModelError(CannotRun, ValueError):
    """A model version whose artifact the trusted types refuse (services/serving/model_trust.py)."""


def load_sklearn_model(source: str | Path, trusted_types: Sequence[str], who: str, code_sha256: str = "") -> Any:
    """The scikit-learn model at `source` (a model directory or URI), loaded with the pinned trusted types plus
    `trusted_types` (and its logged code, when it hashes to `code_sha256`); a refusal names `who` and the types
    to add to `model.trusted_types`."""
    try:
        return load_trusted_model(source, extra_types=list(trusted_types), code_sha256=code_sha256)
    except UntrustedModel as exc:
        raise UntrustedModelError(f"{who} refused: {exc}; {_TRUST_HINT}") from None


def reviewed_types(config: PipelineConfig, model: ResolvedVersion) -> list[str]:
    """The types `model` is loaded trusting beyond the pin: the reviewed `config`'s `model.trusted_types`;
    refused when its training trusted a type that list does not name."""
    trusted = sorted(set(config.model.trusted_types))
    if unlisted := sorted(set(model.trained_with.model.trusted_types) - set(trusted)):
        raise UntrustedModelError(
            f"model {model.name} v{model.version} was trained trusting {', '.join(unlisted)}, which "
            "model.trusted_types in this checkout's pipeline config does not list; if the type(s) are safe to "
            "load, list them there (reviewed like code)")
    return trusted


def load_model(config: PipelineConfig, model: ResolvedVersion) -> Any:
    """The version's scikit-learn model, trusting the pin and the types the reviewed `config` lists."""
    return load_sklearn_model(model.uri, reviewed_types(config, model), f"model {model.name} v{model.version}",
                              model.code_sha256)


def download_onnx(model: ResolvedVersion) -> bytes:
    """The ONNX file training logged for the version."""
    with tempfile.TemporaryDirectory(prefix="onnx-") as tmp:
        return Path(mlflow.artifacts.download_artifacts(
            run_id=model.run_id, artifact_path=ONNX_ARTIFACT, dst_path=tmp)).read_bytes()


def gated_onnx(model: ResolvedVersion) -> bytes:
    """The version's ONNX file, refused unless it is the very file its gate checked."""
    onnx = download_onnx(model)
    if hashlib.sha256(onnx).hexdigest() != model.onnx_sha256:
        raise UntrustedModelError(f"model {model.name} v{model.version}: its ONNX file is not the one the gate "
                                  "checked (sha256 differs); run `make validate` again")
    return onnx


def load_onnx(model: ResolvedVersion) -> OnnxModel:
    return load_onnx_model(gated_onnx(model))


def check_model(config: PipelineConfig, model: ResolvedVersion, model_dir: str | Path) -> None:
    """The version's model directory passes the pin plus the types the reviewed `config` lists."""
    trusted = reviewed_types(config, model)
    try:
        check_model_dir(model_dir, trusted, model.code_sha256)
    except UntrustedModel as exc:
        raise UntrustedModelError(f"model {model.name} v{model.version} refused: {exc}") from None


def load_served(config: PipelineConfig, model: ResolvedVersion) -> Served:
    """A gated version as it serves: the ONNX file its gate checked, or its scikit-learn model (trusting what
    the reviewed `config` lists)."""
    return load_onnx(model) if model.runtime == ONNX_RUNTIME else load_model(config, model)


@dataclass(frozen=True)
class CandidateModels:
    """What could serve a candidate: its scikit-learn model and, when training converted it, its ONNX model.

    The ONNX model serves when there is one (the gate's parity checks fail it when it disagrees)."""

    sklearn: Any
    onnx: OnnxModel | None = None
    onnx_sha256: str | None = None
    not_converted: str | None = None  # why there is no ONNX model

    @property
    def served(self) -> Served:
        return self.sklearn if self.onnx is None else self.onnx

    @property
    def runtime(self) -> str:
        return SKLEARN_RUNTIME if self.onnx is None else ONNX_RUNTIME


def load_candidate(client: MlflowClient, config: PipelineConfig, candidate: ResolvedVersion) -> CandidateModels:
    """The candidate's models, as its training run's ONNX tag says it was converted (or why not); its
    scikit-learn model trusting what the reviewed `config` lists."""
    sklearn_model = load_model(config, candidate)
    onnx_state = client.get_run(candidate.run_id).data.tags.get(ONNX_RUN_TAG, "not converted: trained before ONNX")
    if onnx_state != CONVERTED:
        return CandidateModels(sklearn_model, not_converted=onnx_state)
    onnx_bytes = download_onnx(candidate)
    return CandidateModels(sklearn_model, load_onnx_model(onnx_bytes), hashlib.sha256(onnx_bytes).hexdigest())
