"""The scoring safety net: a model failing on accepted rows is a refusal naming the rows, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from pipelines.config import DataConfig, ModelConfig
from pipelines.demo_data import make_loans
from services.contract import CLASSIFICATION, REGRESSION
from services.inference_record import InferenceRecord
from services.serving.request_schema import DEFAULT_MAX_ABS
from services.serving.scoring import MAX_NAMED_ROWS, RowsRefused, score
from tests.unit.models import pipeline_for

DATA = DataConfig(target="defaulted", numeric_features=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
                  categorical_features=["employment", "region", "purpose"])
FRAME = make_loans(400)
QUICK = {"random_forest": {"n_estimators": 5}, "gradient_boosting": {"n_estimators": 5}, "logistic_regression": {}}


@pytest.fixture(scope="module")
def forest():
    return pipeline_for(DATA, ModelConfig(estimator="random_forest", params={"n_estimators": 5})).fit(
        FRAME[DATA.features], FRAME[DATA.target])


def rows(n: int = 30) -> pd.DataFrame:
    """Rows as the service builds them: numeric features float64."""
    return FRAME[DATA.features].head(n).reset_index(drop=True).astype({c: "float64" for c in DATA.numeric_features})


def test_good_rows_score_as_before(forest):
    labels, probabilities = score(forest, rows(), CLASSIFICATION)
    assert labels == forest.predict(rows()).tolist()
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in probabilities)


def test_a_value_the_forest_cannot_cast_to_float32_names_its_row(forest):
    frame = rows()
    frame.loc[17, "income"] = -1e308  # what the schema now refuses; the net catches it if a bound lets it pass
    with pytest.raises(RowsRefused) as refused:
        score(forest, frame, CLASSIFICATION)
    assert refused.value.rows == [17]
    assert "rows[17]" in str(refused.value) and "float32" in str(refused.value)


def test_many_failing_rows_are_named_up_to_a_limit(forest):
    frame = rows(200)
    frame.loc[::3, "age"] = 1e300
    with pytest.raises(RowsRefused) as refused:
        score(forest, frame, CLASSIFICATION)
    assert refused.value.rows == list(range(0, 3 * MAX_NAMED_ROWS, 3))
    assert "possibly more" in str(refused.value)


class Picky:
    """A model failing on whole batches with more than one row, or returning NaN for a marked row."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        if len(frame) > 1 and frame["together"].all():
            raise ValueError("fails only in company")
        return np.array([[np.nan, np.nan] if v == -1 else [0.5, 0.5] for v in frame["together"]])


def test_rows_failing_only_together_are_all_named():
    with pytest.raises(RowsRefused, match="all 4 rows together: fails only in company"):
        score(Picky(), pd.DataFrame({"together": [1, 1, 1, 1]}), CLASSIFICATION)


def test_non_finite_probabilities_are_a_refusal_not_a_response():
    with pytest.raises(RowsRefused) as refused:
        score(Picky(), pd.DataFrame({"together": [0, -1, 0]}), CLASSIFICATION)
    assert refused.value.rows == [1] and "not finite" in str(refused.value)


def test_a_model_without_probabilities_returns_labels():
    class Labels:
        def predict(self, frame):
            return np.array(["a"] * len(frame))

    assert score(Labels(), pd.DataFrame({"x": [1, 2]}), CLASSIFICATION) == (["a", "a"], None)


@pytest.mark.parametrize("estimator", sorted(QUICK))
def test_no_value_the_schema_accepts_makes_a_supported_estimator_fail(estimator):
    """The bound keeps every supported model finite: +/- max_abs, tiny, zero and missing values all score."""
    model = pipeline_for(DATA, ModelConfig(estimator=estimator, params=QUICK[estimator])).fit(
        FRAME[DATA.features], FRAME[DATA.target])
    extremes = [DEFAULT_MAX_ABS, -DEFAULT_MAX_ABS, 5e-324, -0.0, None]
    frame = pd.DataFrame(
        [{**dict.fromkeys(DATA.numeric_features, value), "employment": "✓", "region": "", "purpose": None}
         for value in extremes]
        + [{name: extremes[(i + j) % len(extremes)] for i, name in enumerate(DATA.numeric_features)}
           | {"employment": "salaried", "region": "east", "purpose": "car"} for j in range(len(extremes))],
        columns=DATA.features,
    ).astype({name: "float64" for name in DATA.numeric_features})
    labels, probabilities = score(model, frame, CLASSIFICATION)
    assert len(labels) == len(frame) and all(abs(sum(p.values()) - 1) < 1e-9 for p in probabilities)


def test_a_regression_model_returns_its_values_as_floats_and_no_probabilities():
    model = Ridge().fit(FRAME[DATA.numeric_features], FRAME["income"])
    frame = rows()[DATA.numeric_features]
    values, probabilities = score(model, frame, REGRESSION)
    assert probabilities is None
    assert all(type(value) is float for value in values)
    assert values == pytest.approx(model.predict(frame).tolist())
    # and a value is what the inference log writes and monitoring reads back
    record = InferenceRecord(request_id="r", row=0, timestamp=datetime.now(UTC), model_name="m", model_version="1",
                             features={"age": 30.0}, prediction=values[0])
    assert InferenceRecord.parse(json.dumps(record.to_json())) == record


def test_a_regression_value_that_is_not_finite_is_a_refusal():
    class Overflowing:
        def predict(self, frame):
            return np.where(frame["x"] < 0, np.nan, np.where(frame["x"] > 9, np.inf, frame["x"] * 2.0))

    with pytest.raises(RowsRefused) as refused:
        score(Overflowing(), pd.DataFrame({"x": [1.0, -1.0, 2.0, 10.0]}), REGRESSION)
    assert refused.value.rows == [1, 3] and "not finite" in str(refused.value)
