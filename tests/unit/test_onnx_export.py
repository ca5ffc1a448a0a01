"""The compiled inference path: every estimator the template converts (scikit-learn's, LightGBM's, XGBoost's),
binary, multiclass and regression, behind the template's preprocessing, answers as the scikit-learn pipeline
does within the gate's default tolerances on held-out rows with missing values and unseen categories; what
does not convert says why."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from pipelines.config_model import GatesConfig
from pipelines.onnx_export import NotConvertible, to_onnx
from pipelines.task import ParityCheck, task_for
from services.contract import CLASSIFICATION, REGRESSION
from services.serving.onnx_model import OnnxModel, load_onnx_model
from tests.unit.onnx_cases import CASES, TABLES, UNSEEN, fitted, template_pipeline, train_and_eval

GATES = GatesConfig()


@dataclass(frozen=True)
class Converted:
    table: str
    model: Pipeline
    onnx_model: OnnxModel
    held_out: pd.DataFrame


@functools.cache
def tables(table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return train_and_eval(table)


def parity(converted: Converted, onnx_model: OnnxModel | None = None) -> list[ParityCheck]:
    """`Task.parity` with the gate's default tolerances, on the held-out rows."""
    data, task = TABLES[converted.table]
    return task_for(task).parity(
        converted.model, onnx_model or converted.onnx_model, converted.held_out[data.features],
        probability_gap=GATES.onnx_max_probability_gap, absolute_gap=GATES.onnx_max_absolute_gap,
        relative_gap=GATES.onnx_max_relative_gap)


@pytest.fixture(scope="module", params=CASES, ids=[f"{table}-{name}" for table, name in CASES])
def converted(request) -> Converted:
    table, name = request.param
    data, task = TABLES[table]
    train, held_out = tables(table)
    model = fitted(table, name, train)
    return Converted(table, model, load_onnx_model(to_onnx(model, data, task)), held_out)


def test_every_estimator_answers_as_scikit_learn_does(converted):
    data, task = TABLES[converted.table]
    features = converted.held_out[data.features]
    assert features.isna().any().sum() >= 3 and (features[data.categorical_features[0]] == UNSEEN).any()
    assert converted.onnx_model.task == task
    checks = parity(converted)
    assert all(check.passed for check in checks), checks


def test_classes_travel_with_the_model(converted):
    if converted.onnx_model.task == REGRESSION:
        assert not hasattr(converted.onnx_model, "classes_")
    else:
        expected = [0, 1] if converted.table == "binary" else [0, 1, 2]
        assert converted.onnx_model.classes_.tolist() == converted.model.classes_.tolist() == expected


@pytest.mark.parametrize("name", ["random_forest", "logistic_regression", "lightgbm"])
def test_string_class_labels_convert(name):
    train, held_out = tables("multiclass")
    data, _ = TABLES["multiclass"]
    labels = {0: "low", 1: "mid", 2: "high"}
    model = fitted("multiclass", name, train.assign(tier=train["tier"].map(labels)))
    onnx_model = load_onnx_model(to_onnx(model, data, CLASSIFICATION))
    assert sorted(onnx_model.classes_.tolist()) == ["high", "low", "mid"]
    assert all(check.passed for check in parity(Converted("multiclass", model, onnx_model, held_out)))


@pytest.mark.parametrize(("table", "other"), [("multiclass", LogisticRegression(C=1e-4)),
                                              ("regression", Ridge(alpha=1e4))])
def test_parity_sees_an_onnx_model_that_disagrees(table, other):
    data, task = TABLES[table]
    train, held_out = tables(table)
    model = fitted(table, "random_forest", train)
    other_model = template_pipeline(data, other).fit(train[data.features], train[data.target])
    checks = parity(Converted(table, model, load_onnx_model(to_onnx(model, data, task)), held_out),
                    load_onnx_model(to_onnx(other_model, data, task)))
    assert not all(check.passed for check in checks)


class TeamEstimator(ClassifierMixin, BaseEstimator):
    """A team's own estimator: no converter knows it."""

    def fit(self, features, target):
        self.classes_ = np.unique(target)
        return self

    def predict_proba(self, features):
        return np.full((len(features), len(self.classes_)), 1 / len(self.classes_))


class TeamTransformer(TransformerMixin, BaseEstimator):
    """A team's own feature step: no converter knows it."""

    def fit(self, features, target=None):
        return self

    def transform(self, features):
        return np.asarray(features, dtype=float) * 2


def test_a_team_estimator_is_not_converted_and_says_why():
    data, _ = TABLES["binary"]
    train, _ = tables("binary")
    model = template_pipeline(data, TeamEstimator()).fit(train[data.features], train[data.target])
    with pytest.raises(NotConvertible, match="TeamEstimator") as raised:
        to_onnx(model, data, CLASSIFICATION)
    assert "\n" not in str(raised.value)


def test_a_team_transformer_is_not_converted_and_says_why():
    data, _ = TABLES["regression"]
    train, _ = tables("regression")
    model = template_pipeline(data, Ridge())
    model.steps.insert(1, ("team", TeamTransformer()))
    model.fit(train[data.features], train[data.target])
    with pytest.raises(NotConvertible, match="TeamTransformer"):
        to_onnx(model, data, REGRESSION)


def test_a_categorical_imputer_filling_another_value_is_not_converted():
    data, _ = TABLES["binary"]
    train, _ = tables("binary")
    model = template_pipeline(data, LogisticRegression())
    model.set_params(preprocess__categorical__impute_nan__fill_value="unknown")
    model.fit(train[data.features], train[data.target])
    with pytest.raises(NotConvertible, match="fills 'unknown'"):
        to_onnx(model, data, CLASSIFICATION)


def test_the_task_must_be_the_pipeline_s():
    data, _ = TABLES["regression"]
    train, _ = tables("regression")
    model = template_pipeline(data, Ridge()).fit(train[data.features], train[data.target])
    with pytest.raises(ValueError, match="Ridge pipeline is not a classification model"):
        to_onnx(model, data, CLASSIFICATION)


@pytest.mark.parametrize(("table", "estimator"), [
    ("regression", HistGradientBoostingRegressor(loss="poisson", max_iter=10)),
    ("multiclass", lightgbm.LGBMClassifier(objective="multiclassova", n_estimators=10, verbose=-1)),
    ("multiclass", xgboost.XGBClassifier(objective="multi:softmax", n_estimators=10)),
])
def test_an_estimator_known_to_convert_wrongly_is_not_converted(table, estimator):
    data, task = TABLES[table]
    train, _ = tables(table)
    target = train[data.target].clip(lower=0)  # a Poisson loss takes counts
    model = template_pipeline(data, estimator).fit(train[data.features], target)
    with pytest.raises(NotConvertible, match=rf"{type(estimator).__name__}\(.*answers otherwise"):
        to_onnx(model, data, task)
