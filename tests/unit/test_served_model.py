"""A version's scikit-learn model loads with the pin plus the types its own config lists, and a missing type is
refused naming what to add to `model.trusted_types`."""

from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from pipelines.served_model import UntrustedModelError, load_sklearn_model
from services.serving.model_trust import TRUSTED_TYPES, types_outside_pin


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
