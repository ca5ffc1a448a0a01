"""A version's scikit-learn model loads with the pin plus the types its own config lists, and a missing type is
refused naming what to add to `model.trusted_types`."""

from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from pipelines.config import DataConfig, ModelConfig, PipelineConfig
from pipelines.registry import ResolvedVersion
from pipelines.served_model import UntrustedModelError, check_model, load_model, load_sklearn_model, reviewed_types
from services.serving.model_trust import TRUSTED_TYPES, types_outside_pin

DATA = DataConfig(target="demand", numeric_features=["a", "b", "c"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, list[str]]:
    """A model whose estimator needs skops types beyond the template's pin, saved as training logs it."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    model = HistGradientBoostingRegressor(max_iter=10).fit(features, features @ [1.0, -2.0, 0.5])
    needed, path = types_outside_pin(model), tmp_path_factory.mktemp("model") / "model"
    mlflow.sklearn.save_model(model, str(path), pip_requirements=["scikit-learn"], serialization_format="skops",
                              skops_trusted_types=sorted({*TRUSTED_TYPES, *needed}))
    return path, needed


def test_a_type_beyond_the_pin_is_refused_naming_it_and_the_config_key(saved):
    path, needed = saved
    assert needed  # the premise: this estimator needs more than the pin
    with pytest.raises(UntrustedModelError) as refused:
        load_sklearn_model(path, [], "model demand v1")
    message = str(refused.value)
    assert message.startswith("model demand v1 refused") and "model.trusted_types" in message
    assert all(name in message for name in needed)


def test_the_types_the_config_lists_are_trusted(saved):
    path, needed = saved
    model = load_sklearn_model(path, needed, "model demand v1")
    assert model.predict(np.zeros((1, 3))).shape == (1,)


def version_trained_with(trusted: list[str]) -> ResolvedVersion:
    """A version whose recorded config (a run artifact, writable by whoever writes the run) lists `trusted`."""
    recorded = PipelineConfig(model_name="demand", data=DATA, model=ModelConfig(trusted_types=trusted))
    return ResolvedVersion(name="demand", version="3", run_id="run3", data_version="d", git_sha="g",
                           trained_with=recorded)


def reviewed(trusted: list[str]) -> PipelineConfig:
    """The pipeline config of the checkout the caller runs from (reviewed like code)."""
    return PipelineConfig(model_name="demand", data=DATA, model=ModelConfig(trusted_types=trusted))


def test_a_type_only_the_versions_recorded_config_lists_is_refused_before_anything_loads():
    version = version_trained_with(["builtins.exec"])
    for load in (lambda: load_model(reviewed([]), version), lambda: reviewed_types(reviewed([]), version)):
        with pytest.raises(UntrustedModelError) as refused:
            load()
        assert str(refused.value).startswith("model demand v3 was trained trusting builtins.exec, which "
                                             "model.trusted_types in")
        assert "does not list" in str(refused.value)


def test_the_reviewed_config_decides_what_loads_not_the_recorded_one(saved):
    path, needed = saved
    check_model(reviewed(needed), version_trained_with([]), path)  # the reviewed list is what is trusted
    assert reviewed_types(reviewed([*needed, "x.Y"]), version_trained_with(needed)) == sorted([*needed, "x.Y"])
    with pytest.raises(UntrustedModelError, match="model.trusted_types"):
        check_model(reviewed([]), version_trained_with([]), path)
