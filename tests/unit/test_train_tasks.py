"""Training per task, by config alone: LightGBM multiclass and a regressor by import path train and evaluate; a
time split keeps its column; a team's own package (transformer factory + estimator class) trains via
code_paths, with its hash on the version and its copy used by `reproduce`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipelines.config import DataConfig, FeaturesConfig, ModelConfig, TrackingConfig
from pipelines.data import DataError, load_versioned
from pipelines.task import REGRESSION_TASK
from pipelines.team_code import code_sha256
from pipelines.train import TrainError, check_trusted, fit, model_packages, reproduce, train
from services.contract import CODE_SHA256_TAG, ESTIMATOR_TAG, TASK_TAG
from tests.unit.models import config_for


def demand(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A generated demand table: price and temperature drive demand, per store, one row per day."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "day": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        "price": rng.uniform(1, 10, rows), "temperature": rng.normal(15, 8, rows),
        "store": rng.choice(["north", "south", "east"], rows),
    })
    frame["demand"] = 100 - 6 * frame["price"] + 1.5 * frame["temperature"] + (frame["store"] == "north") * 20 \
        + rng.normal(0, 3, rows)
    frame["band"] = pd.cut(frame["demand"], 3, labels=["low", "mid", "high"]).astype(str)
    return frame


DEMAND = DataConfig(target="demand", numeric_features=["price", "temperature"], categorical_features=["store"])
BANDS = DEMAND.model_copy(update={"target": "band"})


def source(tmp_path: Path, data: DataConfig, frame: pd.DataFrame, **changes) -> DataConfig:
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return data.model_copy(update={"source": str(path), **changes})


def test_lightgbm_multiclass_trains_and_evaluates_by_import_path():
    config = config_for(BANDS, ModelConfig(estimator="lightgbm.LGBMClassifier",
                                           params={"n_estimators": 30, "verbose": -1}))
    model, holdout, metrics = fit(demand(), config)
    assert set(model.classes_) == {"low", "mid", "high"}
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= metrics.keys() and metrics["accuracy"] > 0.7
    assert "lightgbm" in model_packages(config, model)


def test_a_regressor_by_import_path_on_a_time_split_keeps_the_time_column(tmp_path):
    data = source(tmp_path, DEMAND, demand(), split="time", time_column="day")
    config = config_for(data, ModelConfig(estimator="sklearn.ensemble.HistGradientBoostingRegressor",
                                          params={"max_iter": 50}), task="regression")
    table = load_versioned(config).frame
    assert "day" in table.columns and pd.api.types.is_datetime64_any_dtype(table["day"])
    model, holdout, metrics = fit(table, config)
    assert holdout["day"].min() > table["day"].sort_values().iloc[len(table) - len(holdout) - 1]
    assert {"rmse", "mae", "r2", "median_absolute_error"} <= metrics.keys() and metrics["r2"] > 0.8
    assert model_packages(config, model) == model_packages(config_for(DEMAND), model)  # scikit-learn is there


@pytest.mark.parametrize(("change", "message"), [
    ({"time_column": "week"}, r"data\.time_column 'week' is not a column"),
    ({"time_column": "store"}, r"data\.time_column 'store' is not numbers or ISO dates"),
])
def test_a_missing_or_unorderable_time_column_names_it(tmp_path, change, message):
    config = config_for(source(tmp_path, DEMAND, demand(), split="time", **change), task="regression")
    with pytest.raises(DataError, match=message):
        load_versioned(config)


def test_a_string_regression_target_names_the_column(tmp_path):
    config = config_for(source(tmp_path, BANDS, demand()), task="regression")
    with pytest.raises(DataError, match=r"target column 'band' has type object; a regression target must be numeric"):
        load_versioned(config)
    assert REGRESSION_TASK.target_problem(demand()["demand"], "demand", split="random", holdout_fraction=0.25) is None


TEAM_FILES = {
    "__init__.py": "",
    "features.py": '''
        import numpy as np
        from sklearn.base import BaseEstimator, TransformerMixin

        class LogPrice(TransformerMixin, BaseEstimator):
            """Log of the price; every other column as it came."""
            def fit(self, frame, target=None):
                self.columns_ = list(frame.columns)
                return self
            def transform(self, frame):
                return frame.assign(price=np.log(frame["price"]))
            def get_feature_names_out(self, input_features=None):
                return np.asarray(self.columns_, dtype=object)

        def build():
            return LogPrice()
    ''',
    "models.py": '''
        from sklearn.ensemble import RandomForestRegressor

        class DemandForest(RandomForestRegressor):
            """The team's own estimator class."""
    ''',
}
TEAM_TYPES = ["forecast_team.features.LogPrice", "forecast_team.models.DemandForest"]


def team_package(root: Path) -> Path:
    folder = root / "forecast_team"
    folder.mkdir(parents=True)
    for name, text in TEAM_FILES.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def team_config(tmp_path: Path, folder: Path, **model):
    return config_for(
        source(tmp_path, DEMAND, demand()), ModelConfig(estimator="forecast_team.models:DemandForest",
                                                        params={"n_estimators": 10}, **model),
        task="regression", code_paths=[folder],
        features=FeaturesConfig(transformer="forecast_team.features:build", then_default=True),
        tracking=TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="team"))


def test_the_code_hash_follows_the_team_files_not_their_caches(tmp_path):
    folder = team_package(tmp_path / "teams")
    before = code_sha256([folder])
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "models.cpython-312.pyc").write_bytes(b"compiled")
    assert code_sha256([folder]) == before
    (folder / "models.py").write_text((folder / "models.py").read_text() + "\n# tuned\n")
    assert code_sha256([folder]) != before and code_sha256([]) == ""


def test_a_team_package_trains_via_code_paths_and_reproduces_from_its_logged_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's local artifact store
    folder = team_package(tmp_path / "teams")
    config = team_config(tmp_path, folder)
    data = load_versioned(config)
    model, _, _ = fit(data.frame, config)
    with pytest.raises(TrainError, match=", ".join(TEAM_TYPES) + r"\. .*add them to model\.trusted_types"):
        check_trusted(model, config.model.trusted_types)
    assert not {"forecast_team", "forecast-team"} & set(model_packages(config, model))

    trusted = config.model_copy(update={"model": config.model.model_copy(update={"trusted_types": TEAM_TYPES})})
    result = train(trusted, data)
    tags = MlflowClient().get_model_version(config.model_name, result.model_version).tags
    assert tags[TASK_TAG] == "regression" and tags[ESTIMATOR_TAG] == "forecast_team.models:DemandForest"
    assert tags[CODE_SHA256_TAG] == code_sha256([folder])

    (folder / "models.py").write_text("raise ImportError('the working copy changed')\n")  # the logged copy is used
    reproduction = reproduce(trusted, result.model_version)
    assert reproduction.identical and "logged with v1" in reproduction.code
