"""The pinned skops trusted types: exactly what the supported estimators need, and nothing an artifact asks for
beyond them loads (not skops, declared extra types, or extra types inside the skops file)."""

from __future__ import annotations

import operator
import shutil
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from pipelines.config import DataConfig, ModelConfig
from pipelines.demo_data import make_loans
from pipelines.train import TrainError, check_trusted
from services.code_digest import code_sha256
from services.serving.model_trust import (
    TRUSTED_TYPES,
    UntrustedModel,
    check_model_dir,
    load_trusted_model,
    types_outside_pin,
)
from tests.unit.models import pipeline_for

DATA = DataConfig(target="defaulted", numeric_features=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
                  categorical_features=["employment", "region", "purpose"])
QUICK = {"random_forest": {"n_estimators": 5}, "gradient_boosting": {"n_estimators": 5}, "logistic_regression": {}}
FRAME = make_loans(600)
TARGETS = {  # the shapes of target a fork's table may have
    "int-binary": FRAME["defaulted"],
    "str-binary": FRAME["defaulted"].map({0: "repaid", 1: "defaulted"}),
    "multiclass": (FRAME["credit_score"] // 150).astype(int),
}


def fitted(estimator: str, target: str = "int-binary", nulls: bool = False) -> Pipeline:
    features = FRAME[DATA.features]
    if nulls:
        features = features.mask(np.random.default_rng(1).random(features.shape) < 0.05)
    return pipeline_for(DATA, ModelConfig(estimator=estimator, params=QUICK[estimator])).fit(
        features, TARGETS[target])


def save(model, path: Path, trusted: list[str] | None = None, **kwargs) -> Path:
    mlflow.sklearn.save_model(model, str(path), pip_requirements=["scikit-learn"],
                              skops_trusted_types=sorted(TRUSTED_TYPES) if trusted is None else trusted, **kwargs)
    return path


def edit_flavor(path: Path, **changes) -> None:
    meta = yaml.safe_load((path / "MLmodel").read_text())
    meta["flavors"]["sklearn"].update(changes)
    (path / "MLmodel").write_text(yaml.safe_dump(meta))


def with_function_transformer() -> Pipeline:
    """A pipeline whose skops file holds a callable outside the pin (`operator.neg`: harmless, but not pinned)."""
    x = np.random.default_rng(0).random((40, 2))
    return Pipeline([("f", FunctionTransformer(operator.neg)), ("m", LogisticRegression())]).fit(x, x[:, 0] > 0.5)


def test_every_supported_estimator_needs_exactly_the_pin():
    needed: set[str] = set()
    for estimator in QUICK:
        for target in TARGETS:
            model = fitted(estimator, target, nulls=target == "int-binary")
            types = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
            assert types <= TRUSTED_TYPES, f"{estimator}/{target} needs {sorted(types - TRUSTED_TYPES)}"
            needed |= types
    # Nothing pinned that no supported model needs: the pin cannot silently grow either.
    assert needed == TRUSTED_TYPES


@pytest.mark.parametrize("estimator", sorted(QUICK))
def test_a_logged_supported_model_loads_and_predicts(tmp_path, estimator):
    model = fitted(estimator)
    loaded = load_trusted_model(save(model, tmp_path / "model"))
    rows = FRAME[DATA.features].head(20)
    assert (loaded.predict(rows) == model.predict(rows)).all()


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_a_model_not_serialized_with_skops_is_refused(tmp_path, serialization):
    path = tmp_path / "model"
    mlflow.sklearn.save_model(fitted("logistic_regression"), str(path), pip_requirements=["scikit-learn"],
                              serialization_format=serialization)
    with pytest.raises(UntrustedModel, match=f"serialized as '{serialization}'"):
        load_trusted_model(path)


def test_a_model_whose_mlmodel_declares_an_extra_trusted_type_is_refused(tmp_path):
    path = save(fitted("random_forest"), tmp_path / "model")
    edit_flavor(path, skops_trusted_types=[*sorted(TRUSTED_TYPES), "builtins.exec"])
    with pytest.raises(UntrustedModel, match=r"declares trusted type\(s\) outside the pin: builtins\.exec"):
        load_trusted_model(path)


def test_a_model_whose_skops_file_holds_an_extra_type_is_refused_even_if_its_mlmodel_hides_it(tmp_path):
    path = save(with_function_transformer(), tmp_path / "model", trusted=[*sorted(TRUSTED_TYPES), "_operator.neg"])
    with pytest.raises(UntrustedModel, match="_operator.neg"):  # as logged: the MLmodel declares it
        load_trusted_model(path)
    edit_flavor(path, skops_trusted_types=sorted(TRUSTED_TYPES))  # as crafted: the MLmodel hides it
    with pytest.raises(UntrustedModel, match=r"skops file contains type\(s\) outside the pin: _operator\.neg"):
        load_trusted_model(path)


def test_a_model_declaring_code_paths_or_a_file_outside_its_directory_is_refused(tmp_path):
    path = save(fitted("logistic_regression"), tmp_path / "model")
    edit_flavor(path, code="code")
    with pytest.raises(UntrustedModel, match="code paths"):
        check_model_dir(path)
    edit_flavor(path, code=None, pickled_model="../elsewhere.skops")
    with pytest.raises(UntrustedModel, match="not a file inside the model directory"):
        check_model_dir(path)


def test_training_refuses_a_model_that_needs_a_type_outside_the_pin():
    assert types_outside_pin(with_function_transformer()) == ["_operator.neg"]
    with pytest.raises(TrainError, match=r"_operator\.neg.*services/serving/model_trust\.py"):
        check_trusted(with_function_transformer())
    check_trusted(fitted("gradient_boosting"))  # a supported model passes


def test_types_the_config_lists_load_only_when_the_caller_passes_them(tmp_path):
    path = save(with_function_transformer(), tmp_path / "model", trusted=[*sorted(TRUSTED_TYPES), "_operator.neg"])
    with pytest.raises(UntrustedModel, match=r"_operator\.neg.*model\.trusted_types"):
        load_trusted_model(path)
    loaded = load_trusted_model(path, extra_types=["_operator.neg"])
    assert (loaded.predict(np.eye(2)) == with_function_transformer().predict(np.eye(2))).all()
    assert types_outside_pin(with_function_transformer(), extra_types=["_operator.neg"]) == []


TEAM_CODE = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Doubler(TransformerMixin, BaseEstimator):
    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return np.asarray(x) * 2.0
'''


TEAM_TYPE = ["trust_test_team.features.Doubler"]


@pytest.fixture(scope="module")
def with_team_code(tmp_path_factory):
    """A model whose pipeline holds a team's own class, saved with its package as MLflow code_paths."""
    root = tmp_path_factory.mktemp("team")
    package = root / "trust_test_team"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(TEAM_CODE)
    sys.path.insert(0, str(root))
    try:
        from trust_test_team.features import Doubler
    finally:
        sys.path.remove(str(root))
    x = np.random.default_rng(0).random((40, 2))
    model = Pipeline([("f", Doubler()), ("m", LogisticRegression())]).fit(x, x[:, 0] > 0.5)
    path = save(model, root / "model", trusted=sorted({*TRUSTED_TYPES, *TEAM_TYPE}),
                code_paths=[str(package)])
    return path, code_sha256([package]), x


def test_a_model_with_code_loads_only_with_the_digest_training_recorded(with_team_code):
    path, digest, x = with_team_code
    with pytest.raises(UntrustedModel, match="declares code paths .* no code_sha256"):
        check_model_dir(path, TEAM_TYPE)
    with pytest.raises(UntrustedModel, match=f"not the code training logged: its sha256 is {digest}"):
        check_model_dir(path, TEAM_TYPE, code_sha256="0" * 64)
    with pytest.raises(UntrustedModel, match=r"trust_test_team\.features\.Doubler"):  # its type still needs the config
        check_model_dir(path, code_sha256=digest)
    assert check_model_dir(path, TEAM_TYPE, code_sha256=digest).code_dir == path / "code"
    loaded = load_trusted_model(path, TEAM_TYPE, code_sha256=digest)
    assert loaded.predict(x).tolist() == loaded.steps[-1][1].predict(x * 2.0).tolist()
    assert str(path / "code") in sys.path


def test_code_the_digest_does_not_cover_is_refused(with_team_code, tmp_path):
    path, digest, _ = with_team_code
    for stray in ("code/trust_test_team/__pycache__/sneaky.cpython-312.pyc", "code/loose.py"):
        copy = shutil.copytree(path, tmp_path / stray.replace("/", "-"))
        (copy / stray).parent.mkdir(exist_ok=True)
        (copy / stray).write_bytes(b"")
        with pytest.raises(UntrustedModel, match="not part of the code it was logged with"):
            check_model_dir(copy, TEAM_TYPE, code_sha256=digest)
    for name, text in (("features.py", TEAM_CODE + "\nimport os\n"), ("sneaky.pyc", "")):  # MLflow logs a .pyc
        changed = shutil.copytree(path, tmp_path / f"changed-{name}")
        (changed / "code/trust_test_team" / name).write_text(text)
        with pytest.raises(UntrustedModel, match="not the code training logged"):
            check_model_dir(changed, TEAM_TYPE, code_sha256=digest)
