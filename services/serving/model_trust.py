"""Which types a model artifact may contain, pinned in code, and the one loader that enforces the pin.

skops only refuses types it does not trust; MLflow hands it the trusted list *from the model artifact*
(`skops_trusted_types` in MLmodel), so whoever can register a version could whitelist any callable and
run code at the next gate, build or serve. Here the list is this module's, not the artifact's: every
load (the gate, the bento build, the serving process) goes through `load_trusted_model`, which refuses
an artifact that is not skops, declares types beyond the pin, or contains them.

`TRUSTED_TYPES` is what the template's estimators (random forest, gradient boosting, logistic
regression behind the Pipeline / ColumnTransformer / SimpleImputer / StandardScaler / OneHotEncoder
preprocessing) need beyond what skops trusts by default, found by inspecting fitted models;
`tests/unit/test_model_trust.py` fits each supported estimator and fails when the list no longer covers
one. A fork whose own estimator needs more extends this set consciously (training names what is missing).

Standard library only at import, so the bento carries it and anything may import the pin; loading
imports skops (a requirement of every logged model) and PyYAML (one of MLflow's) when called.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Fully qualified names as `skops.io.get_untrusted_types` reports them.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "numpy.dtype",  # the dtypes of fitted arrays (every estimator)
    "sklearn.tree._tree.Tree",  # the fitted trees of random forests and gradient boosting
})
FLAVOR = "sklearn"
SERIALIZATION = "skops"
MLMODEL = "MLmodel"
_PIN_HINT = "only the types pinned in services/serving/model_trust.py (TRUSTED_TYPES) are loaded"


class UntrustedModel(ValueError):
    """A model artifact the pin refuses: not skops, or declaring or containing types outside `TRUSTED_TYPES`."""


def outside_pin(types: Iterable[str]) -> list[str]:
    """The type names not in the pin, sorted."""
    return sorted({str(name) for name in types} - TRUSTED_TYPES)


def types_outside_pin(model: Any) -> list[str]:
    """The types a fitted model would need trusted beyond the pin (training checks this before logging)."""
    import skops.io

    return outside_pin(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def check_model_dir(model_dir: str | Path) -> Path:
    """The skops file of an MLflow sklearn model directory, once it has passed the pin; `UntrustedModel` if not."""
    import skops.io
    import yaml

    root = Path(model_dir).resolve()
    try:
        meta = yaml.safe_load((root / MLMODEL).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModel(f"{root} is not a readable MLflow model ({MLMODEL}: {exc})") from None
    flavor = (meta or {}).get("flavors", {}).get(FLAVOR) if isinstance(meta, dict) else None
    if not isinstance(flavor, dict):
        raise UntrustedModel(f"{root / MLMODEL} has no '{FLAVOR}' flavor; only scikit-learn models are loaded")
    # MLflow's own default for a missing format is pickle.
    serialization = flavor.get("serialization_format", "pickle")
    if serialization != SERIALIZATION:
        raise UntrustedModel(f"the model is serialized as {serialization!r}; only {SERIALIZATION!r} is loaded, "
                             "because loading any other format can run code from the artifact")
    if flavor.get("code"):
        raise UntrustedModel(f"the model declares code paths ({flavor['code']!r}) that loading would import")
    declared = flavor.get("skops_trusted_types") or []
    if not isinstance(declared, list):
        raise UntrustedModel(f"skops_trusted_types in {MLMODEL} is not a list: {declared!r}")
    if extra := outside_pin(declared):
        raise UntrustedModel(f"its {MLMODEL} declares trusted type(s) outside the pin: {', '.join(extra)}; "
                             f"{_PIN_HINT}")
    file = (root / str(flavor.get("pickled_model", ""))).resolve()
    if not file.is_file() or not file.is_relative_to(root):
        raise UntrustedModel(f"the model file {flavor.get('pickled_model')!r} named in {MLMODEL} is not a file "
                             "inside the model directory")
    try:
        found = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # a corrupt or crafted file: whatever skops says, it is not loaded
        raise UntrustedModel(f"the skops file {file.name} cannot be inspected: {exc}") from None
    if extra := outside_pin(found):
        raise UntrustedModel(f"its skops file contains type(s) outside the pin: {', '.join(extra)}; {_PIN_HINT}")
    return file


def load_trusted_model(path_or_uri: str | Path) -> Any:
    """The scikit-learn model of an MLflow model directory or URI (`models:/name/3`, `runs:/...`), loaded
    with the pinned trusted types only; `UntrustedModel` names what the artifact asks for beyond them."""
    import skops.io

    local = Path(path_or_uri)
    if local.is_dir():
        return skops.io.load(check_model_dir(local), trusted=sorted(TRUSTED_TYPES))
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="trusted-model-") as tmp:
        downloaded = mlflow.artifacts.download_artifacts(artifact_uri=str(path_or_uri), dst_path=tmp)
        return skops.io.load(check_model_dir(downloaded), trusted=sorted(TRUSTED_TYPES))
