"""The compiled inference path: a whole fitted pipeline converted to ONNX, run by onnxruntime.

`load_onnx_model` gives a model that answers like the scikit-learn pipeline it was converted from, on the
columns of the training schema, so the gate and the service score both runtimes with the same code: an
`OnnxClassifier` (`classes_`, `predict_proba`, `predict`) or an `OnnxRegressor` (`predict` only, float64 per
row: with no `predict_proba`, `services.serving.scoring` answers numbers without probabilities). The task is
read from the model's own metadata. Numbers enter as float32 (as the trees of scikit-learn compare them); a
missing category (None or NaN, which ONNX string tensors cannot hold) enters as `MISSING_CATEGORY`, the value
the pipeline's own imputers give it, so both runtimes see the same category.

It reads a batch as one array per column: a pandas DataFrame (the gate) or a mapping of numpy arrays
(the service, which never imports pandas: 2.4 s of every serving process's start). Standard library and
numpy at import; onnxruntime loads with the first model (the bento carries this file, and the sklearn
runtime never needs onnxruntime).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.contract import CLASSIFICATION, REGRESSION, TaskName

if TYPE_CHECKING:
    from services.serving.scoring import Batch

MISSING_CATEGORY = "missing"  # what the pipeline's categorical imputers fill in (the default preprocessing)
ONNX_FILE = "model.onnx"  # the converted pipeline, inside the MLflow model directory of the bento
# ONNX metadata keys (JSON): the task; the class labels in probability column order (classification); the
# column behind each input. A model converted before the task was recorded is a classifier.
TASK_METADATA, CLASSES_METADATA, FEATURES_METADATA = "task", "classes", "features"
STRING_TENSOR = "tensor(string)"


class OnnxModel(ABC):
    """An ONNX pipeline with one input per feature column; a subclass per task reads its answer."""

    task: TaskName
    answer_output: int  # the output read: probabilities (classifier, after the labels) or values (regressor)

    def __init__(self, session: Any, metadata: dict[str, str]) -> None:
        self._session = session
        columns = json.loads(metadata[FEATURES_METADATA])
        self._inputs = [(i.name, column, i.type == STRING_TENSOR)
                        for i, column in zip(session.get_inputs(), columns, strict=True)]
        self._answer = session.get_outputs()[self.answer_output].name

    def feed(self, batch: Batch) -> dict[str, np.ndarray]:
        """One [rows, 1] tensor per input column."""
        feed = {}
        for name, column_name, is_string in self._inputs:
            if is_string:
                values = np.asarray(batch[column_name], dtype=object)
                feed[name] = np.array([_category(value) for value in values], dtype=object)
            else:
                feed[name] = np.asarray(batch[column_name], dtype=np.float32)
            feed[name] = feed[name].reshape(-1, 1)
        return feed

    def _run(self, batch: Batch) -> np.ndarray:
        (values,) = self._session.run([self._answer], self.feed(batch))
        return np.asarray(values, dtype=np.float64)

    @abstractmethod
    def predict(self, batch: Batch) -> np.ndarray:
        """What the scikit-learn pipeline's `predict` answers, per row."""


class OnnxClassifier(OnnxModel):
    """Outputs `label` and `probabilities` (one column per class, in `classes_` order)."""

    task, answer_output = CLASSIFICATION, 1

    def __init__(self, session: Any, metadata: dict[str, str]) -> None:
        super().__init__(session, metadata)
        self.classes_ = np.asarray(json.loads(metadata[CLASSES_METADATA]))

    def predict_proba(self, batch: Batch) -> np.ndarray:
        """Class probabilities in float64, each row summing to 1 (onnxruntime's float32 rows miss it by ~1e-7)."""
        probabilities = self._run(batch)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, batch: Batch) -> np.ndarray:
        """The most probable class per row (what `services.serving.scoring` answers)."""
        return self.classes_[self.predict_proba(batch).argmax(axis=1)]


class OnnxRegressor(OnnxModel):
    """One output, `variable`: the predicted value per row."""

    task, answer_output = REGRESSION, 0

    def predict(self, batch: Batch) -> np.ndarray:
        """Float64 values, one per row (onnxruntime computes them in float32)."""
        return self._run(batch).reshape(-1)


MODELS: dict[str, type[OnnxModel]] = {CLASSIFICATION: OnnxClassifier, REGRESSION: OnnxRegressor}


def load_onnx_model(model: str | Path | bytes) -> OnnxModel:
    """The ONNX model (a file or its bytes) of the task its metadata records."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One request is one row or a few hundred: a thread pool per session only contends with the other
    # workers and requests for the same cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    task = json.loads(metadata.get(TASK_METADATA, json.dumps(CLASSIFICATION)))
    if task not in MODELS:
        raise ValueError(f"the ONNX model records task {task!r}; expected one of {', '.join(MODELS)}")
    return MODELS[task](session, metadata)


def _category(value: Any) -> str:
    """A category as an ONNX string tensor holds it: a missing one (None, NaN, pandas' NA) as `MISSING_CATEGORY`."""
    if isinstance(value, str):
        return value
    try:
        missing = value is None or bool(value != value)  # NaN is the one value unequal to itself
    except TypeError:  # pandas' NA has no truth value
        missing = True
    return MISSING_CATEGORY if missing else str(value)
