"""An estimator by short name or import path: each bad declaration is a config error naming its key, before any
data is read; the seed goes to random_state only where the estimator has one."""

from __future__ import annotations

import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from pipelines import steps
from pipelines.config import ConfigError, DataConfig, ModelConfig
from pipelines.estimators import BUILT_IN, build_estimator, resolve_estimator
from tests.unit.models import config_for

DATA = DataConfig(source="no/such/table.csv", target="y", numeric_features=["x"], seed=11)


def config(estimator: str, task: str = "classification", **params):
    return config_for(DATA, ModelConfig(estimator=estimator, params=params), task=task)


@pytest.mark.parametrize(("estimator", "task", "params", "message"), [
    ("no_such_package.Model", "classification", {}, r"model\.estimator: cannot import module 'no_such_package'"),
    ("sklearn.ensemble.NoSuchForest", "classification", {}, r"model\.estimator: module 'sklearn\.ensemble' has no"),
    ("sklearn.metrics.accuracy_score", "classification", {}, r"model\.estimator: .* not a scikit-learn estimator"),
    ("collections:OrderedDict", "classification", {}, r"model\.estimator: .* not a scikit-learn estimator"),
    ("sklearn.ensemble.RandomForestRegressor", "classification", {},
     r"model\.estimator: sklearn\.ensemble\.RandomForestRegressor is a regressor; task is classification"),
    ("logistic_regression", "regression", {}, r"model\.estimator: .*LogisticRegression is a classifier; task is regr"),
    ("sklearn.preprocessing.StandardScaler", "regression", {}, r"is neither a classifier nor a regressor"),
    ("ridge", "regression", {"n_estimators": 3}, r"model\.params\.n_estimators: .*Ridge takes no parameter"),
    ("sklearn.linear_model.LinearRegression", "regression", {"random_state": 1}, r"model\.params\.random_state"),
])
def test_a_bad_declaration_names_its_key_before_any_data_is_read(estimator, task, params, message):
    bad = config(estimator, task, **params)
    with pytest.raises(ConfigError, match=message):
        resolve_estimator(bad)
    with pytest.raises(ConfigError, match=message):  # not the DataError of the missing table: data comes after
        steps.check_data(bad)


def test_the_seed_goes_to_random_state_where_the_estimator_has_one():
    assert build_estimator(config("random_forest_regressor", "regression")).random_state == DATA.seed
    assert build_estimator(config("random_forest", n_estimators=3, random_state=5)).random_state == 5
    linear = build_estimator(config("sklearn.linear_model.LinearRegression", "regression"))
    assert "random_state" not in linear.get_params()


class Strict(ClassifierMixin, BaseEstimator):
    """An estimator whose constructor checks its values (scikit-learn's own defer that to fit)."""

    def __init__(self, depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth

    def fit(self, features, target):
        return self


def test_a_value_the_constructor_refuses_names_model_params():
    with pytest.raises(ConfigError, match=r"model\.params: .*Strict.*depth must be at least 1"):
        build_estimator(config(f"{__name__}:Strict", depth=0))


def test_every_built_in_resolves_for_its_task():
    for name, (path, task) in BUILT_IN.items():
        assert resolve_estimator(config(name, task)).__name__ == path.rpartition(".")[2]


@pytest.mark.parametrize(("estimator", "task", "params", "suggestion"), [
    ("lightgbm.LGBMClassifier", "classification", {"n_estimator": 5}, "n_estimators"),
    ("lightgbm.LGBMRegressor", "regression", {"learning_rat": 0.1}, "learning_rate"),
    ("lightgbm.LGBMClassifier", "classification", {"min_data_in_lef": 5}, "min_data_in_leaf"),  # booster-only
    ("xgboost.XGBClassifier", "classification", {"n_estimator": 5}, "n_estimators"),
    ("xgboost.XGBRegressor", "regression", {"learning_rat": 0.1}, "learning_rate"),
    ("xgboost.XGBRegressor", "regression", {"objective": "reg:tweedie", "tweedie_variance_powr": 1.5},
     "tweedie_variance_power"),  # a parameter of the objective the config chose
])
def test_a_booster_library_refuses_a_misspelt_parameter_with_a_suggestion(estimator, task, params, suggestion):
    """LightGBM and XGBoost take any keyword for their booster; a typo is refused by the library's own list."""
    bad, key = config(estimator, task, **params), [*params][-1]
    message = rf"model\.params\.{key}: .*takes no parameter '{key}'.*did you mean '{suggestion}'"
    with pytest.raises(ConfigError, match=message):
        resolve_estimator(bad)
    with pytest.raises(ConfigError, match=message):  # before the missing table is read
        steps.check_data(bad)


@pytest.mark.parametrize(("estimator", "task", "params"), [
    ("lightgbm.LGBMClassifier", "classification", {"min_data_in_leaf": 5, "feature_fraction": 0.8, "verbose": -1}),
    ("lightgbm.LGBMRegressor", "regression", {"num_iterations": 5, "eta": 0.1, "n_estimators": 5}),
    ("xgboost.XGBClassifier", "classification", {"tree_method": "hist", "max_bin": 64, "eta": 0.3, "lambda": 1.0}),
    ("xgboost.XGBRegressor", "regression", {"booster": "dart", "rate_drop": 0.1, "n_estimators": 5}),
    ("xgboost.XGBRegressor", "regression", {"objective": "reg:quantileerror", "quantile_alpha": 0.5}),
    ("xgboost.XGBClassifier", "classification", {"objective": "multi:softprob"}),
])
def test_a_booster_library_takes_its_booster_parameters_and_aliases(estimator, task, params):
    model = build_estimator(config(estimator, task, **params))
    assert all(model.get_params()[key] == value for key, value in params.items())


def test_a_booster_parameter_of_another_component_is_refused():
    """XGBoost's list is the configured booster's: dart's rate_drop means nothing to the default gbtree."""
    with pytest.raises(ConfigError, match=r"model\.params\.rate_drop: .*takes no parameter 'rate_drop'"):
        resolve_estimator(config("xgboost.XGBRegressor", "regression", rate_drop=0.1))


def test_a_value_xgboost_refuses_names_model_params():
    with pytest.raises(ConfigError, match=r"model\.params: xgboost\.XGBClassifier .*tree_method.*nope"):
        resolve_estimator(config("xgboost.XGBClassifier", tree_method="nope"))
