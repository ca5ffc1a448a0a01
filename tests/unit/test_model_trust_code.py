"""A model's own code is the code that runs: each load imports the checked copy logged with it (not a same-named
package another load or the working copy already imported), and a downloaded copy outlives the load."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from services.code_digest import code_sha256, forget_modules
from services.serving.model_trust import TRUSTED_TYPES, check_model_dir, load_trusted_model

PACKAGE = "trust_twin_team"
TEAM_TYPE = [f"{PACKAGE}.features.Scaler"]
FEATURES = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Scaler(TransformerMixin, BaseEstimator):
    def fit(self, x, y=None):
        return self

    def transform(self, x):
        from {package}.factor import FACTOR  # imported when the model predicts, not when it loads

        return np.asarray(x) * FACTOR
'''
X = np.arange(20.0).reshape(10, 2)


def team_model(root: Path, factor: float) -> tuple[Path, str]:
    """A model holding the team's Scaler, saved with its package (which scales by `factor`) as code_paths."""
    package = root / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FEATURES.format(package=PACKAGE))
    (package / "factor.py").write_text(f"FACTOR = {factor}\n")
    forget_modules([package])
    sys.path.insert(0, str(root))
    try:
        scaler = importlib.import_module(f"{PACKAGE}.features").Scaler()
        model = Pipeline([("s", scaler), ("m", LinearRegression())]).fit(X, X[:, 0])
    finally:
        sys.path.remove(str(root))
    path = root / "model"
    mlflow.sklearn.save_model(model, str(path), pip_requirements=["scikit-learn"], serialization_format="skops",
                              skops_trusted_types=sorted({*TRUSTED_TYPES, *TEAM_TYPE}), code_paths=[str(package)])
    return path, code_sha256([package])


def scaled(model) -> list[float]:
    return model.steps[0][1].transform(X[:1]).ravel().tolist()


def test_each_model_runs_the_code_it_was_logged_with_in_one_process(tmp_path):
    two, three = team_model(tmp_path / "two", 2.0), team_model(tmp_path / "three", 3.0)
    # The package of the last fit (the "working copy") is still imported; the gate loads one model, then another.
    first = load_trusted_model(two[0], TEAM_TYPE, two[1])
    assert scaled(first) == [0.0, 2.0]
    second = load_trusted_model(three[0], TEAM_TYPE, three[1])
    assert scaled(second) == [0.0, 3.0]
    again = load_trusted_model(two[0], TEAM_TYPE, two[1])  # its folder is on sys.path already, behind the other
    assert scaled(again) == [0.0, 2.0]
    assert sys.modules[f"{PACKAGE}.features"].__file__.startswith(str(two[0]))


def test_a_downloaded_model_imports_from_its_code_after_the_load(tmp_path):
    path, digest = team_model(tmp_path, 5.0)
    forget_modules([tmp_path / PACKAGE])  # a fresh process: the fit's imports are gone
    loaded = load_trusted_model(path.as_uri(), TEAM_TYPE, digest)  # a URI: downloaded, then loaded
    assert scaled(loaded) == [0.0, 5.0]  # the lazy import finds the downloaded code folder


@pytest.mark.parametrize("cache", [".pytest_cache", ".mypy_cache"])
def test_a_tool_cache_in_the_team_folder_is_logged_and_loads(tmp_path, cache):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / cache).mkdir()
    (package / cache / "README.md").write_text("a tool's cache")
    (package / "__init__.py").write_text("")
    model = LinearRegression().fit(X, X[:, 0])
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(path), pip_requirements=["scikit-learn"], serialization_format="skops",
                              skops_trusted_types=sorted(TRUSTED_TYPES), code_paths=[str(package)])
    assert (path / "code" / PACKAGE / cache / "README.md").is_file()  # MLflow copies it
    assert check_model_dir(path, code_sha256=code_sha256([package])).code_dir == path / "code"
