"""The compiled inference path: a whole fitted pipeline converted to ONNX, run by onnxruntime.

`OnnxModel` answers like the scikit-learn pipeline it was converted from (`classes_`, `predict_proba`,
`predict` on the columns of the training schema), so the gate and the service score both runtimes with
the same code. Numbers enter as float32 (as the trees of scikit-learn compare them); a missing category
(None or NaN, which ONNX string tensors cannot hold) enters as `MISSING_CATEGORY`, the value the
pipeline's own imputers give it, so both runtimes see the same category.

It reads a batch as one array per column: a pandas DataFrame (the gate) or a mapping of numpy arrays
(the service, which never imports pandas: 2.4 s of every serving process's start). Standard library and
numpy at import; onnxruntime loads with the first model (the bento carries this file, and the sklearn
runtime never needs onnxruntime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from services.serving.scoring import Batch

MISSING_CATEGORY = "missing"  # what the pipeline's categorical imputers fill in (pipelines/train.py)
ONNX_FILE = "model.onnx"  # the converted pipeline, inside the MLflow model directory of the bento
# ONNX metadata keys (JSON): the class labels in probability column order; the column behind each input.
CLASSES_METADATA, FEATURES_METADATA = "classes", "features"
STRING_TENSOR = "tensor(string)"


class OnnxModel:
    """An ONNX classifier with one input per feature column, outputs `label` and `probabilities`."""

    def __init__(self, model: str | Path | bytes) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One request is one row or a few hundred: a thread pool per session only contends with the other
        # workers and requests for the same cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        self._session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.classes_ = np.asarray(json.loads(metadata[CLASSES_METADATA]))
        columns = json.loads(metadata[FEATURES_METADATA])
        self._inputs = [(i.name, column, i.type == STRING_TENSOR)
                        for i, column in zip(self._session.get_inputs(), columns, strict=True)]
        self._probabilities = self._session.get_outputs()[1].name

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

    def predict_proba(self, batch: Batch) -> np.ndarray:
        """Class probabilities in float64, each row summing to 1 (onnxruntime's float32 rows miss it by ~1e-7)."""
        (probabilities,) = self._session.run([self._probabilities], self.feed(batch))
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, batch: Batch) -> np.ndarray:
        """The most probable class per row (what `services.serving.scoring` answers)."""
        return self.classes_[self.predict_proba(batch).argmax(axis=1)]


def _category(value: Any) -> str:
    """A category as an ONNX string tensor holds it: a missing one (None, NaN, pandas' NA) as `MISSING_CATEGORY`."""
    if isinstance(value, str):
        return value
    try:
        missing = value is None or bool(value != value)  # NaN is the one value unequal to itself
    except TypeError:  # pandas' NA has no truth value
        missing = True
    return MISSING_CATEGORY if missing else str(value)
