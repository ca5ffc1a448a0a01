"""The ONNX model per task, as the gate and the service use it: a regressor answers float64 values and has no
probabilities (so scoring answers numbers alone), a classifier answers labels and one probability per class;
a missing category is the same category in both runtimes; the task comes from the model's own metadata."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from pipelines.onnx_export import to_onnx
from services.contract import CLASSIFICATION, REGRESSION
from services.serving.onnx_model import (
    MISSING_CATEGORY,
    TASK_METADATA,
    OnnxClassifier,
    OnnxRegressor,
    load_onnx_model,
)
from services.serving.scoring import columns, score
from tests.unit.onnx_cases import TABLES, fitted, train_and_eval

GAP = 1e-4  # both runtimes agree far closer than this (test_onnx_export measures it per estimator)


@functools.cache
def converted(table: str, name: str) -> tuple[Pipeline, bytes, pd.DataFrame]:
    data, task = TABLES[table]
    train, held_out = train_and_eval(table, train_rows=600, eval_rows=100)
    model = fitted(table, name, train)
    return model, to_onnx(model, data, task), held_out


def service_batch(frame: pd.DataFrame, table: str) -> dict[str, np.ndarray]:
    """The rows as the service builds a batch, without pandas: a missing number NaN, a missing category None."""
    data, _ = TABLES[table]
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    return columns(records, data.numeric_features, data.categorical_features)


def test_a_regressor_answers_values_and_no_probabilities(tmp_path):
    model, onnx_bytes, held_out = converted("regression", "lightgbm")
    data, _ = TABLES["regression"]
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_bytes)
    onnx_model = load_onnx_model(path)
    assert isinstance(onnx_model, OnnxRegressor) and not hasattr(onnx_model, "predict_proba")
    predicted = onnx_model.predict(held_out[data.features])
    assert predicted.dtype == np.float64 and predicted.shape == (len(held_out),)
    values, probabilities = score(onnx_model, service_batch(held_out[data.features], "regression"), REGRESSION)
    assert probabilities is None and all(isinstance(value, float) for value in values)
    assert np.abs(np.array(values) - model.predict(held_out[data.features])).max() <= GAP


def test_a_classifier_answers_a_probability_per_class_through_the_service_s_scoring():
    model, onnx_bytes, held_out = converted("multiclass", "hist_gradient_boosting")
    data, _ = TABLES["multiclass"]
    onnx_model = load_onnx_model(onnx_bytes)
    assert isinstance(onnx_model, OnnxClassifier)
    frame = held_out[data.features].head(40)
    labels, probabilities = score(onnx_model, service_batch(frame, "multiclass"), CLASSIFICATION)
    assert labels == model.predict(frame).tolist() == score(onnx_model, frame, CLASSIFICATION)[0]
    assert [sorted(p) for p in probabilities] == [["0", "1", "2"]] * len(frame)
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in probabilities)


@pytest.mark.parametrize(("table", "name"), [("multiclass", "hist_gradient_boosting"), ("regression", "lightgbm")])
def test_a_missing_category_is_the_same_category_in_both_runtimes(table, name):
    model, onnx_bytes, held_out = converted(table, name)
    data, _ = TABLES[table]
    onnx_model, column = load_onnx_model(onnx_bytes), data.categorical_features[0]
    answer = "predict" if table == "regression" else "predict_proba"
    row = held_out[data.features].head(1)
    variants = [row.assign(**{column: value}) for value in (None, np.nan, MISSING_CATEGORY)]
    expected = getattr(model, answer)(variants[0])
    for variant in variants:
        assert np.abs(getattr(model, answer)(variant) - expected).max() == 0
        assert np.abs(getattr(onnx_model, answer)(variant) - expected).max() <= GAP
    pandas_na = row.assign(**{column: pd.array([pd.NA], dtype="string")})  # scikit-learn's imputer refuses it
    assert np.abs(getattr(onnx_model, answer)(pandas_na) - expected).max() <= GAP


def without_task(onnx_bytes: bytes, task: str | None) -> bytes:
    """The model with its task metadata removed (as converted before the task was recorded) or replaced."""
    proto = onnx.load_from_string(onnx_bytes)
    kept = [entry for entry in proto.metadata_props if entry.key != TASK_METADATA]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    if task is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = TASK_METADATA, f'"{task}"'
    return proto.SerializeToString()


def test_a_model_converted_before_the_task_was_recorded_is_a_classifier():
    _, onnx_bytes, _ = converted("binary", "logistic_regression")
    assert isinstance(load_onnx_model(without_task(onnx_bytes, None)), OnnxClassifier)


def test_an_unknown_task_is_refused_naming_it():
    _, onnx_bytes, _ = converted("binary", "logistic_regression")
    with pytest.raises(ValueError, match="records task 'ranking'"):
        load_onnx_model(without_task(onnx_bytes, "ranking"))

