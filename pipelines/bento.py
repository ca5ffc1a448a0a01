"""Build the bento for one registered model version: `services/serving` + that version's MLflow model.

A bento is immutable and reused: its tag is `<model>:v<version>-<run id[:8]>-<service code hash>`, so
the same version with the same service code is built once, a change to the code yields a new bento, and
version 3 of one MLflow server never passes for version 3 of another (a local demo, then the stack).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow

from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.registry import CHALLENGER, connect, require_alias, require_version
from pipelines.train import recorded_config

SERVICE_DIR = REPO_ROOT / "services" / "serving"
SERVICE_FILES = ["service.py", "request_schema.py", "inference_log.py"]
# The serving code's own needs, pinned to what builds the bento; the model's needs come from MLflow.
SERVICE_PACKAGES = ["bentoml", "pydantic", "pandas", "mlflow-skinny"]


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    model_version: str
    path: Path
    labels: dict[str, str]
    reused: bool


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
        digest.update((SERVICE_DIR / name).read_bytes())
    return digest.hexdigest()[:10]


def build(config: PipelineConfig, version: str | None = None) -> BuiltBento:
    """The bento for `version` (default: `@challenger`), built from the registry unless it exists."""
    use_store(config)
    import bentoml  # after use_store: BentoML fixes its home on first use

    client = connect(config)
    model_version = (
        require_version(client, config.model_name, version) if version
        else require_alias(client, config.model_name, CHALLENGER)
    )
    number = model_version.version
    model_tag = f"{config.model_name}:v{number}-{model_version.run_id[:8]}"
    tag = f"{model_tag}-{service_hash()}"
    try:
        existing = bentoml.get(tag)
        return BuiltBento(tag, number, Path(existing.path), dict(existing.info.labels), reused=True)
    except bentoml.exceptions.NotFound:
        pass

    run = client.get_run(model_version.run_id)
    trained_with = recorded_config(model_version.run_id)
    labels = {
        "model_name": config.model_name,
        "model_version": number,
        "run_id": model_version.run_id,
        "data_version": run.data.tags.get("data_version", "unknown"),
        "git_sha": run.data.tags.get("git_sha", "unknown"),
    }
    model_uri = f"models:/{config.model_name}/{number}"
    try:
        bentoml.models.get(model_tag)
    except bentoml.exceptions.NotFound:
        bentoml.mlflow.import_model(model_tag, model_uri, labels=labels)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    bento = bentoml.build(
        "service:Serving",
        name=config.model_name,
        version=tag.split(":", 1)[1],
        labels=labels,
        include=SERVICE_FILES,
        build_ctx=str(SERVICE_DIR),
        models=[model_tag],
        python={"packages": sorted({*requirements, *(f"{p}=={metadata.version(p)}" for p in SERVICE_PACKAGES)}),
                "lock_packages": False},
        args={
            "model_tag": model_tag,
            "model_name": config.model_name,
            "model_version": number,
            # The schema the version was trained with, which a rollback may find different from today's.
            "numeric_features": json.dumps(trained_with.data.numeric_features),
            "categorical_features": json.dumps(trained_with.data.categorical_features),
            "max_batch_rows": config.serving.max_batch_rows,
            "workers": config.serving.workers,
        },
    )
    return BuiltBento(str(bento.tag), number, Path(bento.path), labels, reused=False)
