"""Convert a fitted training pipeline (preprocessing + estimator) to ONNX, the compiled inference path.

Training logs the result beside the scikit-learn model; the gate runs it on the whole frozen eval set
against the scikit-learn model (`pipelines.validate`) and only a version whose ONNX model passed serves
with onnxruntime (`services/serving/onnx_model.py`). A pipeline skl2onnx cannot convert (a fork's own
estimator) is logged without one and served by scikit-learn, as before.
"""

from __future__ import annotations

import copy
import json

from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig
from services.serving.onnx_model import CLASSES_METADATA, FEATURES_METADATA, MISSING_CATEGORY

ONNX_ARTIFACT = "onnx/model.onnx"  # in the training run, beside the MLflow model
ONNX_RUN_TAG = "onnx"  # "converted", or "not converted: <why>"
CONVERTED = "converted"
# ONNX operator sets onnxruntime 1.32 runs and skl2onnx 1.20 targets (ai.onnx.ml 3: tree ensembles).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class NotConvertible(ValueError):
    """skl2onnx cannot convert this pipeline; the message says why (the version is served by scikit-learn)."""


def to_onnx(pipeline: Pipeline, data: DataConfig) -> bytes:
    """The serialized ONNX model of a fitted pipeline: one input per feature, `label` and `probabilities` out."""
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    # Named after the columns, which the ColumnTransformer selects by name.
    inputs = [(name, FloatTensorType([None, 1])) for name in data.numeric_features]
    inputs += [(name, StringTensorType([None, 1])) for name in data.categorical_features]
    try:
        onnx_model = convert(_with_string_missing_values(pipeline), initial_types=inputs,
                             options={"zipmap": False}, target_opset=TARGET_OPSET)
    except Exception as exc:  # skl2onnx raises many types for what it does not know; each means "no ONNX"
        raise NotConvertible((str(exc).splitlines() or [type(exc).__name__])[0][:300]) from None
    # Classes and the column behind each input travel with the model: the loader needs nothing else.
    for key, value in {CLASSES_METADATA: pipeline.classes_.tolist(), FEATURES_METADATA: data.features}.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return onnx_model.SerializeToString()


def _with_string_missing_values(pipeline: Pipeline) -> Pipeline:
    """A copy whose categorical imputers look for `MISSING_CATEGORY` instead of None / NaN.

    ONNX string tensors hold no None or NaN, so `OnnxModel` feeds a missing category as `MISSING_CATEGORY`,
    the value those imputers fill in: the same category reaches the encoder in both runtimes.
    """
    converted = copy.deepcopy(pipeline)
    categorical = converted.named_steps["preprocess"].named_transformers_.get("categorical")
    for _, step in getattr(categorical, "steps", []):
        if isinstance(step, SimpleImputer):
            if step.fill_value != MISSING_CATEGORY:
                raise NotConvertible(f"a categorical imputer fills {step.fill_value!r}, not {MISSING_CATEGORY!r}")
            step.missing_values = MISSING_CATEGORY
    return converted
