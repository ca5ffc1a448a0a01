"""Build the bento for one registered model version: the serving code + that version's MLflow model.

A bento is immutable and reused: its tag is `<model>:v<version>-<run id[:8]>-<service code hash>`, so
the same version with the same service code is built once, a change to the code yields a new bento, and
version 3 of one MLflow server never passes for version 3 of another (a local demo, then the stack).
The bento carries the serving code as the package layout the repo has (`services.serving.service`,
`services.contract`), copied into a build context of its own that holds nothing else. The model enters
the bento only after the pinned trust check (`services/serving/model_trust.py`), which serving repeats.

The team's own packages (the version's recorded `model.requirements`, pipelines/team_requirements.py) must be
installed where the bento is built (its model is loaded here); the bento lists them with the model's packages
and alone in `team-requirements.txt`, which the release image installs on top of the serving runtime.

The version's model card travels in the bento (`GET /card`): the card its last gate had written when the bento was
built (a bento is reused for the same version and service code; the registry keeps the latest card).

A version whose gate chose onnxruntime also carries the ONNX file that gate checked (its digest is on
the version) inside the model directory, and the bento serves it (`runtime` argument and label).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import mlflow

from pipelines.config import REPO_ROOT, PipelineConfig
from pipelines.model_card import gated_card
from pipelines.registry import ONNX_SHA256_TAG, ResolvedVersion, connect, require_version
from pipelines.served_model import UntrustedModelError, check_model, gated_onnx, reviewed_types
from pipelines.team_requirements import check_installed
from services.contract import ONNX_RUNTIME, SERVING_RUNTIME_TAG, SKLEARN_RUNTIME
from services.serving.card import CARD_FILE
from services.serving.onnx_model import ONNX_FILE
from services.serving.requirements_check import TEAM_REQUIREMENTS

SERVICE = "services.serving.service:Serving"
# Everything the service imports from this repo, and the release image's requirement check; the bento
# carries exactly these files (a team's own code is in the model directory, where MLflow logged it).
SERVICE_FILES = [
    "services/__init__.py",
    "services/access.py",
    "services/code_digest.py",
    "services/contract.py",
    "services/inference_record.py",
    "services/serving/__init__.py",
    "services/serving/service.py",
    "services/serving/request_schema.py",
    "services/serving/inference_log.py",
    "services/serving/model_trust.py",
    "services/serving/guard.py",
    "services/serving/scoring.py",
    "services/serving/onnx_model.py",
    "services/serving/requirements_check.py",
    "services/serving/card.py",
]
# The serving code's own needs, pinned to what builds the bento; the model's needs come from MLflow.
SERVICE_PACKAGES = ["bentoml", "pydantic", "pandas", "mlflow-skinny"]
RUNTIME_PACKAGES = {ONNX_RUNTIME: ["onnxruntime"], SKLEARN_RUNTIME: []}

T = TypeVar("T")


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


def as_gated(model: ResolvedVersion, tags: dict[str, str]) -> ResolvedVersion:
    """The version with the runtime its latest gate recorded in `tags` (read at build time: the gate may have
    run since it was resolved); scikit-learn for a version no gate has passed."""
    return dataclasses.replace(model, runtime=tags.get(SERVING_RUNTIME_TAG, SKLEARN_RUNTIME),
                               onnx_sha256=tags.get(ONNX_SHA256_TAG))


def stored_once(home: Path, find: Callable[[], T], add: Callable[[], T], missing: type[Exception]) -> T:
    """`find()` the item in the BentoML store at `home`, else `add()` it: one process at a time per store.

    BentoML refuses to add an item that exists and shows other processes an item it is still writing, so two
    builds of one version (a build beside a deploy, say) take turns, and the second reuses what the first stored.
    """
    with (home / "build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits: adding an item takes seconds
        try:
            return find()
        except missing:
            return add()


def build(config: PipelineConfig, model: ResolvedVersion) -> BuiltBento:
    """The bento serving `model` with the runtime its gate chose, built from the registry unless it exists."""
    home = use_store(config)
    import bentoml  # after use_store: BentoML fixes its home on first use

    model = as_gated(model, require_version(connect(config), model.name, model.version).tags)
    check_installed(model.trained_with.model.requirements, f"model {model.name} v{model.version}: model.requirements")
    # The run's ONNX artifact is immutable, so "-onnx" names it; its digest is checked below all the same.
    model_tag = f"{model.name}:v{model.version}-{model.run_id[:8]}" + ("-onnx" if model.runtime == ONNX_RUNTIME else "")
    tag = f"{model_tag}-{service_hash()}"
    # The model passes the pinned trust check before it enters the store, and again whenever it is reused.
    stored_once(home, lambda: _check_stored(config, model, model_tag), lambda: _import(config, model, model_tag),
                bentoml.exceptions.NotFound)
    return stored_once(home, lambda: BuiltBento(tag, model, Path(bentoml.get(tag).path), reused=True),
                       lambda: _build_bento(config, model, model_tag, tag), bentoml.exceptions.NotFound)


def _check_stored(config: PipelineConfig, model: ResolvedVersion, model_tag: str) -> None:
    import bentoml

    stored = Path(bentoml.models.get(model_tag).path_of("mlflow_model"))
    check_model(config, model, stored)
    onnx_file = stored / ONNX_FILE
    if model.runtime == ONNX_RUNTIME and hashlib.sha256(onnx_file.read_bytes()).hexdigest() != model.onnx_sha256:
        raise UntrustedModelError(f"the stored model {model_tag} holds an ONNX file the gate did not check; "
                                  f"delete it (bentoml models delete {model_tag}) and build again")


def _import(config: PipelineConfig, model: ResolvedVersion, model_tag: str) -> None:
    import bentoml

    with tempfile.TemporaryDirectory(prefix="model-") as download:
        # What is checked is what is imported: one download, no second fetch from the registry.
        local = mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=download)
        check_model(config, model, local)
        if model.runtime == ONNX_RUNTIME:
            (Path(local) / ONNX_FILE).write_bytes(gated_onnx(model))
        bentoml.mlflow.import_model(model_tag, local, labels=model.labels)


def bento_packages(logged: list[str], team: list[str], runtime: str) -> list[str]:
    """What the bento lists: the model's packages as MLflow logged them, the team's own, and the serving code's
    (pinned to what builds the bento)."""
    service = [*SERVICE_PACKAGES, *RUNTIME_PACKAGES[runtime]]
    return sorted({*logged, *team, *(f"{package}=={metadata.version(package)}" for package in service)})


def write_context(context: Path, team: list[str], card: str | None) -> list[str]:
    """Copy the serving code into the build context with the team's requirements file and the version's model
    card (when a gate wrote one); what the bento includes."""
    for name in SERVICE_FILES:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, context / name)
    (context / TEAM_REQUIREMENTS).write_text("".join(f"{requirement}\n" for requirement in team))
    if card is None:
        return [*SERVICE_FILES, TEAM_REQUIREMENTS]
    (context / CARD_FILE).write_text(card, encoding="utf-8")
    return [*SERVICE_FILES, TEAM_REQUIREMENTS, CARD_FILE]


def _build_bento(config: PipelineConfig, model: ResolvedVersion, model_tag: str, tag: str) -> BuiltBento:
    import bentoml

    logged = Path(mlflow.pyfunc.get_model_dependencies(model.uri)).read_text().split()
    team = model.trained_with.model.requirements
    with tempfile.TemporaryDirectory(prefix="bento-context-") as context:
        bento = bentoml.build(
            SERVICE,
            name=model.name,
            version=tag.split(":", 1)[1],
            labels=model.labels,
            include=write_context(Path(context), team, gated_card(model)),
            build_ctx=context,
            models=[model_tag],
            python={"packages": bento_packages(logged, team, model.runtime), "lock_packages": False},
            args={
                "model_tag": model_tag,
                "model_name": model.name,
                "model_version": model.version,
                "task": model.trained_with.task,
                # What the reviewed config trusts beyond the pin and the digest of the code the version was
                # logged with: the serving process checks the model against these, never against an artifact.
                "trusted_types": json.dumps(reviewed_types(config, model)),
                "code_sha256": model.code_sha256,
                # The schema the version was trained with, which a rollback may find different from today's.
                "numeric_features": json.dumps(model.data.numeric_features),
                "categorical_features": json.dumps(model.data.categorical_features),
                "max_batch_rows": config.serving.max_batch_rows,
                "max_abs_value": config.serving.max_abs_value,
                "max_body_bytes": config.serving.max_body_bytes,
                "workers": config.serving.workers,
                "runtime": model.runtime,
                "onnx_sha256": model.onnx_sha256 or "",
            },
        )
    return BuiltBento(str(bento.tag), model, Path(bento.path), reused=False)
