"""The compiled inference path: every shipped estimator converts, with its categorical handling, and the
ONNX model answers as the scikit-learn model does; what does not convert says why; the gate's parity
checks see a disagreement; the service's scoring runs the ONNX model unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from pipelines.config import DataConfig, GatesConfig, ModelConfig
from pipelines.demo_data import make_loans
from pipelines.onnx_export import NotConvertible, to_onnx
from pipelines.validate import parity_checks
from services.serving.onnx_model import MISSING_CATEGORY, OnnxModel
from services.serving.scoring import score
from tests.unit.models import pipeline_for

DATA = DataConfig(target="defaulted", numeric_features=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
                  categorical_features=["employment", "region", "purpose"])
QUICK = {"random_forest": {"n_estimators": 10}, "gradient_boosting": {"n_estimators": 10}, "logistic_regression": {}}
TOLERANCE = GatesConfig().onnx_max_probability_gap


def with_missing_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as each source writes them: NaN numbers, None (parquet, JSON) and NaN (CSV) categories."""
    frame = frame.copy()
    rng = np.random.default_rng(3)
    frame["employment"] = frame["employment"].astype(object)
    frame.loc[rng.random(len(frame)) < 0.05, "employment"] = None
    frame.loc[rng.random(len(frame)) < 0.05, "region"] = np.nan
    frame.loc[rng.random(len(frame)) < 0.05, "income"] = np.nan
    return frame


TRAIN, EVAL = with_missing_values(make_loans(900, seed=1)), with_missing_values(make_loans(400, seed=2))


@pytest.fixture(scope="module", params=sorted(QUICK))
def converted(request):
    model = pipeline_for(DATA, ModelConfig(estimator=request.param, params=QUICK[request.param]))
    model.fit(TRAIN[DATA.features], TRAIN[DATA.target])
    return model, OnnxModel(to_onnx(model, DATA))


def test_every_shipped_estimator_answers_as_scikit_learn_does(converted):
    model, onnx_model = converted
    features = EVAL[DATA.features]
    assert features[["employment", "region", "income"]].isna().any().all()  # every kind of missing value is met
    assert onnx_model.predict(features).tolist() == model.predict(features).tolist()
    assert np.abs(onnx_model.predict_proba(features) - model.predict_proba(features)).max() <= TOLERANCE
    assert all(check.passed for check in parity_checks(model, onnx_model, EVAL, DATA, TOLERANCE))


def test_a_missing_category_is_the_same_category_in_both_runtimes(converted):
    model, onnx_model = converted
    row = EVAL[DATA.features].head(1)
    variants = [row.assign(employment=value) for value in (None, np.nan, MISSING_CATEGORY)]
    expected = model.predict_proba(variants[0])
    for variant in variants:
        assert np.abs(model.predict_proba(variant) - expected).max() == 0
        assert np.abs(onnx_model.predict_proba(variant) - expected).max() <= TOLERANCE
    pandas_na = row.assign(employment=pd.array([pd.NA], dtype="string"))  # scikit-learn's imputer refuses it
    assert np.abs(onnx_model.predict_proba(pandas_na) - expected).max() <= TOLERANCE


def test_the_service_scores_the_onnx_model_with_its_own_code(converted):
    model, onnx_model = converted
    frame = EVAL[DATA.features].head(20).reset_index(drop=True).astype({c: "float64" for c in DATA.numeric_features})
    # As the service builds a batch, without pandas: one array per column, a missing category as None.
    columns = {c: frame[c].to_numpy(dtype=np.float64) for c in DATA.numeric_features}
    columns |= {c: np.array([None if pd.isna(v) else v for v in frame[c]], dtype=object)
                for c in DATA.categorical_features}
    labels, probabilities = score(onnx_model, columns)
    assert labels == model.predict(frame).tolist() == score(onnx_model, frame)[0]
    assert [sorted(p) for p in probabilities] == [sorted(str(c) for c in model.classes_)] * len(frame)
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in probabilities)


def test_string_labels_and_several_classes_convert():
    target = pd.cut(TRAIN["credit_score"], 3, labels=["low", "mid", "high"]).astype(str)
    model = pipeline_for(DATA, ModelConfig(estimator="logistic_regression")).fit(TRAIN[DATA.features], target)
    onnx_model = OnnxModel(to_onnx(model, DATA))
    assert onnx_model.predict(EVAL[DATA.features]).tolist() == model.predict(EVAL[DATA.features]).tolist()


def test_the_gate_sees_an_onnx_model_that_disagrees(converted):
    model, _ = converted
    other = pipeline_for(DATA, ModelConfig(estimator="logistic_regression", params={"C": 1e-4}))
    other.fit(TRAIN[DATA.features], TRAIN[DATA.target])
    checks = parity_checks(model, OnnxModel(to_onnx(other, DATA)), EVAL, DATA, TOLERANCE)
    assert not all(check.passed for check in checks)


class ForkEstimator(ClassifierMixin, BaseEstimator):
    """A fork's own estimator: skl2onnx has no converter for it."""

    def fit(self, features, target):
        self.classes_ = np.unique(target)
        return self

    def predict_proba(self, features):
        return np.full((len(features), len(self.classes_)), 1 / len(self.classes_))


def test_a_fork_estimator_is_not_converted_and_says_why():
    model = pipeline_for(DATA, ModelConfig(estimator="logistic_regression"))
    model.steps[-1] = ("estimator", ForkEstimator())
    model.fit(TRAIN[DATA.features], TRAIN[DATA.target])
    with pytest.raises(NotConvertible, match="ForkEstimator"):
        to_onnx(model, DATA)
