"""Convert a fitted training pipeline (preprocessing + estimator) to ONNX, the compiled inference path.

Training logs the result beside the scikit-learn model; the gate runs it on the whole frozen eval set
against the scikit-learn model (`Task.parity`) and only a version whose ONNX model passed serves with
onnxruntime (`services/serving/onnx_model.py`). skl2onnx converts scikit-learn's own estimators; LightGBM's
and XGBoost's come from onnxmltools, registered with skl2onnx the first time a pipeline holds one. A pipeline
neither knows (a team's own transformer or estimator) is logged without ONNX and served by scikit-learn.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Iterator
from typing import Any

from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig
from services.contract import CLASSIFICATION, TaskName
from services.serving.onnx_model import CLASSES_METADATA, FEATURES_METADATA, MISSING_CATEGORY, TASK_METADATA

ONNX_ARTIFACT = "onnx/model.onnx"  # in the training run, beside the MLflow model
ONNX_RUN_TAG = "onnx"  # "converted", or "not converted: <why>"
CONVERTED = "converted"
# ONNX operator sets onnxruntime 1.32 runs and skl2onnx 1.20 targets (ai.onnx.ml 3: tree ensembles).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
# Options every classifier converter declares: probabilities as a tensor (zipmap False), not a list of maps.
CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


# Estimators whose converter runs but answers otherwise (measured: the gate's parity would refuse them), by
# (class name, parameter, values): skl2onnx drops HistGradientBoostingRegressor's log link; onnxmltools maps
# LightGBM's one-vs-all and XGBoost's softmax-label objectives to other probabilities.
MISCONVERTED = [("HistGradientBoostingRegressor", "loss", {"poisson", "gamma"}),
                ("LGBMClassifier", "objective", {"multiclassova", "ova", "ovr", "multiclass_ova"}),
                ("XGBClassifier", "objective", {"multi:softmax"})]


class NotConvertible(ValueError):
    """This pipeline has no ONNX conversion; the message says why (the version is served by scikit-learn)."""


def to_onnx(pipeline: Pipeline, data: DataConfig, task: TaskName) -> bytes:
    """The serialized ONNX model of a fitted pipeline: one input per feature; `label` and `probabilities`
    out for classification, `variable` (the value) for regression."""
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if (task == CLASSIFICATION) != is_classifier(pipeline):
        raise ValueError(f"a {type(pipeline[-1]).__name__} pipeline is not a {task} model")
    _register_external_converters()
    # Named after the columns, which the ColumnTransformer selects by name.
    inputs = [(name, FloatTensorType([None, 1])) for name in data.numeric_features]
    inputs += [(name, StringTensorType([None, 1])) for name in data.categorical_features]
    options = {"zipmap": False} if task == CLASSIFICATION else None
    try:
        onnx_model = convert(_with_string_missing_values(pipeline), initial_types=inputs, options=options,
                             target_opset=TARGET_OPSET)
    except Exception as exc:  # skl2onnx raises many types for what it does not know; each means "no ONNX"
        raise NotConvertible((str(exc).splitlines() or [type(exc).__name__])[0][:300]) from None
    # The task, the classes and the column behind each input travel with the model: the loader needs nothing else.
    metadata: dict[str, Any] = {TASK_METADATA: task, FEATURES_METADATA: data.features}
    if task == CLASSIFICATION:
        metadata[CLASSES_METADATA] = pipeline.classes_.tolist()
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return onnx_model.SerializeToString()


def _register_external_converters() -> None:
    """onnxmltools' converters for the libraries loaded in this process (a pipeline holding one of their
    estimators loaded it): importing them all would cost every conversion the import of both libraries."""
    for library in ("lightgbm", "xgboost"):
        if library in sys.modules:
            _register(library)


@functools.cache
def _register(library: str) -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    if library == "lightgbm":
        from lightgbm import LGBMClassifier as Classifier
        from lightgbm import LGBMRegressor as Regressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm as convert
        prefix = "LightGbm"
    else:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost as convert
        from xgboost import XGBClassifier as Classifier
        from xgboost import XGBRegressor as Regressor
        prefix = "XGBoost"
    update_registered_converter(Classifier, f"{prefix}{Classifier.__name__}",
                                calculate_linear_classifier_output_shapes, convert, options=CLASSIFIER_OPTIONS)
    update_registered_converter(Regressor, f"{prefix}{Regressor.__name__}",
                                calculate_linear_regressor_output_shapes, convert)


def _with_string_missing_values(pipeline: Pipeline) -> Pipeline:
    """A copy whose categorical imputers look for `MISSING_CATEGORY` instead of None / NaN (refused: an
    estimator known to convert wrongly).

    ONNX string tensors hold no None or NaN, so `OnnxModel` feeds a missing category as `MISSING_CATEGORY`,
    the value those imputers fill in: the same category reaches the encoder in both runtimes.
    """
    converted = copy.deepcopy(pipeline)
    for step in _steps(converted):
        for class_name, parameter, values in MISCONVERTED:
            if type(step).__name__ == class_name and getattr(step, parameter, None) in values:
                raise NotConvertible(f"{class_name}({parameter}={getattr(step, parameter)!r}) converts to a "
                                     "model that answers otherwise")
        if isinstance(step, SimpleImputer) and isinstance(step.fill_value, str):
            if step.fill_value != MISSING_CATEGORY:
                raise NotConvertible(f"a categorical imputer fills {step.fill_value!r}, not {MISSING_CATEGORY!r}")
            step.missing_values = MISSING_CATEGORY
    return converted


def _steps(estimator: Any) -> Iterator[Any]:
    """The estimator and every step nested in it (pipelines, fitted column transformers)."""
    yield estimator
    if isinstance(estimator, Pipeline):
        children = [step for _, step in estimator.steps]
    elif isinstance(estimator, ColumnTransformer):
        children = [step for _, step, _ in estimator.transformers_]
    else:
        children = []
    for child in children:
        yield from _steps(child)
