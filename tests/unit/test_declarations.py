"""Declarations a team gets wrong in ways only training reveals, each a clear error naming what is wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.config import ConfigError, DataConfig, ModelConfig, load_config
from pipelines.estimators import check_code_folders
from pipelines.task import CLASSIFICATION_TASK
from pipelines.train import TrainError, fit
from tests.unit.models import config_for

DATA = DataConfig(target="y", numeric_features=["x"], split="random", seed=3)


def table(labels: list) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(len(labels), dtype=float), "y": labels})


def test_a_library_error_in_training_is_a_train_error_naming_the_params():
    model = ModelConfig(estimator="lightgbm.LGBMClassifier", params={"objective": "no-such-objective"})
    with pytest.raises(TrainError, match=r"lightgbm\.LGBMClassifier failed with model\.params .*no-such-objective"):
        fit(table([0, 1] * 40), config_for(DATA, model))


def test_a_class_a_random_split_put_only_in_the_holdout_is_named():
    frame = table([str(label) for label in [0, 1] * 40] + ["rare"])
    # A seed whose random split holds the one 'rare' row out (a quarter of seeds do).
    data = next(d for d in (DATA.model_copy(update={"seed": s}) for s in range(100))
                if "rare" in set(CLASSIFICATION_TASK.split_snapshot(frame, d)[1]["y"]))
    with pytest.raises(TrainError, match=r"data\.split: random put class\(es\) \['rare'\] .* holdout only"):
        fit(frame, config_for(data, ModelConfig(params={"n_estimators": 3})))


def test_a_binary_holdout_of_one_class_has_no_roc_auc_rather_than_nan():
    class Half:
        classes_ = np.array([0, 1])

        def predict(self, rows):
            return np.zeros(len(rows), dtype=int)

        def predict_proba(self, rows):
            return np.full((len(rows), 2), 0.5)

    scores = CLASSIFICATION_TASK.evaluate(Half(), pd.DataFrame({"x": [1.0, 2.0]}), pd.Series([0, 0]))
    assert "roc_auc" not in scores and not any(np.isnan(v) for v in scores.values())


def _config(tmp_path, **extra):
    raw = {"model_name": "m", "data": {"target": "y", "numeric_features": ["x"]}, **extra}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "c.yaml")


def test_an_empty_gate_mapping_stays_empty_and_regression_gets_a_regressor(tmp_path):
    config = _config(tmp_path, task="regression", gates={"max_regression": {}})
    assert config.gates.max_regression == {} and config.gates.min_metrics == {"r2": 0.0}
    assert config.model.estimator == "random_forest_regressor"
    assert _config(tmp_path).model.estimator == "random_forest"


@pytest.mark.parametrize(("layout", "named"), [
    (["team/not_a_package/"], "not a package folder"),
    (["a/shared/__init__.py", "b/shared/__init__.py"], "are both package 'shared'"),
    (["x/services/__init__.py"], "is a template package"),
])
def test_a_bad_code_path_is_named(tmp_path, layout, named):
    for entry in layout:
        path = tmp_path / entry
        path.parent.mkdir(parents=True, exist_ok=True) if not entry.endswith("/") else path.mkdir(parents=True)
        if not entry.endswith("/"):
            path.write_text("")
    folders = sorted({(tmp_path / entry).parent if not entry.endswith("/") else tmp_path / entry
                      for entry in layout})
    with pytest.raises(ConfigError, match=f"code_paths: .*{named}"):
        check_code_folders(folders)
