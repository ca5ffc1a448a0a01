"""Build the bento for one registered model version: the serving code + that version's MLflow model.

A bento is immutable and reused: its tag is `<model>:v<version>-<run id[:8]>-<service code hash>`, so
the same version with the same service code is built once, a change to the code yields a new bento, and
version 3 of one MLflow server never passes for version 3 of another (a local demo, then the stack).
The bento carries the serving code as the package layout the repo has (`services.serving.service`,
`services.contract`), copied into a build context of its own that holds nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow

from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.registry import ResolvedVersion

SERVICE = "services.serving.service:Serving"
# Everything the service imports from this repo; the bento carries exactly these files.
SERVICE_FILES = [
    "services/__init__.py",
    "services/contract.py",
    "services/serving/__init__.py",
    "services/serving/service.py",
    "services/serving/request_schema.py",
    "services/serving/inference_log.py",
]
# The serving code's own needs, pinned to what builds the bento; the model's needs come from MLflow.
SERVICE_PACKAGES = ["bentoml", "pydantic", "pandas", "mlflow-skinny"]


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    model: ResolvedVersion
    path: Path
    reused: bool

    @property
    def model_version(self) -> str:
        return self.model.version


def use_store(config: PipelineConfig) -> Path:
    """BentoML's model and bento store: `$BENTOML_HOME` if set, else under the state dir.

    BentoML fixes its home on first use in a process, so the choice is made once, through the env var.
    """
    home = Path(os.environ.setdefault("BENTOML_HOME", str(config.platform.state_dir / "bentoml")))
    home.mkdir(parents=True, exist_ok=True)
    return home


def service_hash() -> str:
    digest = hashlib.sha256()
    for name in SERVICE_FILES:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:10]


def build(config: PipelineConfig, model: ResolvedVersion) -> BuiltBento:
    """The bento serving `model`, built from the registry unless it exists."""
    use_store(config)
    import bentoml  # after use_store: BentoML fixes its home on first use

    model_tag = f"{model.name}:v{model.version}-{model.run_id[:8]}"
    tag = f"{model_tag}-{service_hash()}"
    try:
        return BuiltBento(tag, model, Path(bentoml.get(tag).path), reused=True)
    except bentoml.exceptions.NotFound:
        pass
    try:
        bentoml.models.get(model_tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(model_tag, model.uri, labels=model.labels)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model.uri)).read_text().split()
    with tempfile.TemporaryDirectory(prefix="bento-context-") as context:
        for name in SERVICE_FILES:
            (Path(context) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO_ROOT / name, Path(context) / name)
        bento = bentoml.build(
            SERVICE,
            name=model.name,
            version=tag.split(":", 1)[1],
            labels=model.labels,
            include=SERVICE_FILES,
            build_ctx=context,
            models=[model_tag],
            python={"packages": sorted({*requirements, *(f"{p}=={metadata.version(p)}" for p in SERVICE_PACKAGES)}),
                    "lock_packages": False},
            args={
                "model_tag": model_tag,
                "model_name": model.name,
                "model_version": model.version,
                # The schema the version was trained with, which a rollback may find different from today's.
                "numeric_features": json.dumps(model.data.numeric_features),
                "categorical_features": json.dumps(model.data.categorical_features),
                "max_batch_rows": config.serving.max_batch_rows,
                "workers": config.serving.workers,
            },
        )
    return BuiltBento(str(bento.tag), model, Path(bento.path), reused=False)
