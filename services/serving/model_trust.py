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
one.

A team whose estimator needs more lists the types in its pipeline config (`model.trusted_types`, reviewed
like code); every caller passes that list as `extra_types`, never anything read from the artifact. A model
logged with the team's own code (MLflow `code_paths`, the `code/` folder of the model directory) loads only
when the caller passes the digest training recorded (`code_sha256`) and the folder hashes to it
(services/code_digest.py); then that folder goes first on `sys.path` and its packages are dropped from
`sys.modules` (another model's same-named copy, or the working copy training imported), so skops imports the
checked copy. A model with code downloaded from a URI stays on disk for the process: its code may import
more when it predicts. (Such an import looks in `sys.modules` first: after another model with a same-named
package loads, it finds that model's copy, so a process predicts with such a model before loading the next.)

Standard library only at import, so the bento carries it and anything may import the pin; loading
imports skops (a requirement of every logged model) and PyYAML (one of MLflow's) when called.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.code_digest import code_sha256 as folders_sha256
from services.code_digest import forget_modules, ignored

# Fully qualified names as `skops.io.get_untrusted_types` reports them.
TRUSTED_TYPES: frozenset[str] = frozenset({
    "numpy.dtype",  # the dtypes of fitted arrays (every estimator)
    "sklearn.tree._tree.Tree",  # the fitted trees of random forests and gradient boosting
})
FLAVOR = "sklearn"
SERIALIZATION = "skops"
MLMODEL = "MLmodel"
_PIN_HINT = ("only the types pinned in services/serving/model_trust.py (TRUSTED_TYPES) and those the "
             "version's pipeline config lists in model.trusted_types are loaded")


class UntrustedModel(ValueError):
    """A model artifact the pin refuses: not skops, or declaring or containing types outside `TRUSTED_TYPES`."""


@dataclass(frozen=True)
class CheckedModel:
    """A model directory that passed the pin: its skops file, and its code folder when it has one."""

    file: Path
    code_dir: Path | None = None


def outside_pin(types: Iterable[str], extra_types: Iterable[str] = ()) -> list[str]:
    """The type names neither in the pin nor in `extra_types` (the config's), sorted."""
    return sorted({str(name) for name in types} - TRUSTED_TYPES - set(extra_types))


def types_outside_pin(model: Any, extra_types: Iterable[str] = ()) -> list[str]:
    """The types a fitted model would need trusted beyond the pin and `extra_types` (training checks this
    before logging)."""
    import skops.io

    return outside_pin(skops.io.get_untrusted_types(data=skops.io.dumps(model)), extra_types)


def check_model_dir(model_dir: str | Path, extra_types: Iterable[str] = (), code_sha256: str = "") -> CheckedModel:
    """An MLflow sklearn model directory that passed the pin (plus `extra_types`) and, when it carries code,
    whose code hashes to `code_sha256`; `UntrustedModel` if not."""
    import skops.io

    root = Path(model_dir).resolve()
    flavor = _sklearn_flavor(root)
    extra_types = sorted(set(extra_types))
    declared = flavor.get("skops_trusted_types") or []
    if not isinstance(declared, list):
        raise UntrustedModel(f"skops_trusted_types in {MLMODEL} is not a list: {declared!r}")
    if extra := outside_pin(declared, extra_types):
        raise UntrustedModel(f"its {MLMODEL} declares trusted type(s) outside the pin: {', '.join(extra)}; "
                             f"{_PIN_HINT}")
    file = _inside(root, flavor.get("pickled_model"), "file")
    try:
        found = skops.io.get_untrusted_types(file=file)
    except Exception as exc:  # a corrupt or crafted file: whatever skops says, it is not loaded
        raise UntrustedModel(f"the skops file {file.name} cannot be inspected: {exc}") from None
    if extra := outside_pin(found, extra_types):
        raise UntrustedModel(f"its skops file contains type(s) outside the pin: {', '.join(extra)}; {_PIN_HINT}")
    code = flavor.get("code")
    return CheckedModel(file, _checked_code(root, code, code_sha256) if code else None)


def load_trusted_model(path_or_uri: str | Path, extra_types: Iterable[str] = (), code_sha256: str = "") -> Any:
    """The scikit-learn model of an MLflow model directory or URI (`models:/name/3`, `runs:/...`), loaded
    with the pinned trusted types plus `extra_types` only, and its code only when it hashes to `code_sha256`;
    `UntrustedModel` names what the artifact asks for beyond them."""
    local = Path(path_or_uri)
    if local.is_dir():
        return _load(check_model_dir(local, extra_types, code_sha256), extra_types)
    import mlflow.artifacts

    tmp, keep = tempfile.mkdtemp(prefix="trusted-model-"), False
    try:
        checked = check_model_dir(mlflow.artifacts.download_artifacts(artifact_uri=str(path_or_uri), dst_path=tmp),
                                  extra_types, code_sha256)
        keep = checked.code_dir is not None  # on sys.path from here: the model imports from it as it predicts
        return _load(checked, extra_types)
    finally:
        if keep:
            atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _sklearn_flavor(root: Path) -> dict[str, Any]:
    """The sklearn flavor of the directory's MLmodel, refused unless it is serialized with skops."""
    import yaml

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
    return flavor


def _inside(root: Path, name: object, noun: str) -> Path:
    """The file (or folder) `name` names in the MLmodel, refused unless it is one inside the directory."""
    path = (root / str(name or "")).resolve()
    exists = path.is_file() if noun == "file" else path.is_dir()
    if not name or not exists or not path.is_relative_to(root):
        raise UntrustedModel(f"the model {noun} {name!r} named in {MLMODEL} is not a {noun} inside the model "
                             "directory")
    return path


def _checked_code(root: Path, code: object, code_sha256: str) -> Path:
    """The model's code folder (MLflow `code_paths`), refused unless it hashes to the digest training recorded."""
    if not code_sha256:
        raise UntrustedModel(f"the model declares code paths ({code!r}) that loading would import, and no "
                             "code_sha256 to check them against (the version's tag, set by training)")
    code_dir = _inside(root, code, "code folder")
    entries = sorted(code_dir.iterdir())
    # Python imports bytecode from a __pycache__ (which the digest skips, as MLflow never logs one): refused.
    stray = [path for path in entries if not path.is_dir()]
    stray += [path for path in code_dir.rglob("*") if path.is_file() and ignored(path, code_dir)]
    if stray:
        raise UntrustedModel(f"the model's code folder holds {stray[0].relative_to(code_dir)}, which is not part "
                             "of the code it was logged with (MLflow logs package folders, without __pycache__)")
    found = folders_sha256(entries)
    if found != code_sha256:
        raise UntrustedModel(f"the model's code ({code_dir.name}/) is not the code training logged: its sha256 "
                             f"is {found}, the version's code_sha256 {code_sha256}")
    return code_dir


def _load(checked: CheckedModel, extra_types: Iterable[str]) -> Any:
    import skops.io

    with _importable(checked.code_dir):
        return skops.io.load(checked.file, trusted=sorted(TRUSTED_TYPES | set(extra_types)))


@contextmanager
def _importable(code_dir: Path | None) -> Iterator[None]:
    """The checked code folder first on `sys.path` (it stays: the model imports from it when it predicts) and
    its packages imported afresh from there, with no bytecode written into it while skops imports, so a later
    check of the same folder still passes."""
    if code_dir is not None:
        if str(code_dir) in sys.path:  # behind another model's folder, whose same-named package would win
            sys.path.remove(str(code_dir))
        sys.path.insert(0, str(code_dir))
        forget_modules(path for path in code_dir.iterdir() if path.is_dir())
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield
    finally:
        sys.dont_write_bytecode = writes
