"""Scoring one batch, with a safety net: a model that fails on rows the schema accepted is the client's 4xx.

The request schema bounds what reaches the model; should a model still fail on accepted input (a fork's
estimator, a bound set too wide), the rows it fails on are found by bisection (a bounded number of extra
model calls) and named in a `RowsRefused`, which the service answers with 422, never a 500. Rows whose
probabilities (classification) or predicted values (regression) come out NaN or infinite (not JSON) count as
failed too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from services.contract import REGRESSION, TaskName

if TYPE_CHECKING:
    import pandas as pd

# A batch of rows: a DataFrame (the scikit-learn runtime, the gate) or one numpy array per column (the
# ONNX runtime in the service, which never imports pandas).
Batch: TypeAlias = "Mapping[str, np.ndarray] | pd.DataFrame"

MAX_NAMED_ROWS = 10
# What numeric code raises on values it cannot handle (sklearn's finiteness checks raise ValueError).
MODEL_ERRORS = (ValueError, TypeError, ArithmeticError)


class RowsRefused(ValueError):
    """The model cannot score these rows of an accepted request."""

    def __init__(self, rows: list[int], total: int, reason: str) -> None:
        self.rows = rows
        named = ", ".join(f"rows[{row}]" for row in rows) if rows else f"all {total} rows together"
        more = " (and possibly more)" if len(rows) >= MAX_NAMED_ROWS else ""
        super().__init__(f"the model cannot score {named}{more}: {reason}")


class _NotFinite(ValueError):
    pass


def columns(records: list[dict], numeric: list[str], categorical: list[str]) -> dict[str, np.ndarray]:
    """Rows as one array per column: numbers float64 (null is NaN), categories as sent (null is None). An
    ONNX model reads these as they are; `pandas.DataFrame(columns(...))` is what a scikit-learn pipeline reads."""
    arrays = {name: np.array([record[name] for record in records], dtype=np.float64) for name in numeric}
    arrays.update({name: np.array([record[name] for record in records], dtype=object) for name in categorical})
    return arrays


def score(
    model: Any, batch: Batch, task: TaskName
) -> tuple[list[Any], list[dict[str, float]] | None]:
    """Per row, a regression's predicted value (a float), or a classification's label and (when the model
    has them) class probabilities; `RowsRefused` names failing rows."""
    try:
        return _score(model, batch, task)
    except MODEL_ERRORS as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    raise RowsRefused(_failing_rows(model, batch, task), _row_count(batch), reason)


def _row_count(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if isinstance(batch, Mapping) else len(batch)


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    if isinstance(batch, Mapping):
        return {column: values[start:stop] for column, values in batch.items()}
    return batch.iloc[start:stop]


def _score(model: Any, batch: Batch, task: TaskName) -> tuple[list[Any], list[dict[str, float]] | None]:
    # Floating-point warnings (an overflowing cast) are not reported: what matters is checked below, or
    # raised by the model's own input checks.
    with np.errstate(all="ignore"):
        if task == REGRESSION:
            values = np.asarray(model.predict(batch), dtype=float).reshape(-1)
            if not np.isfinite(values).all():
                raise _NotFinite("the model predicted values that are not finite numbers")
            return values.tolist(), None
        if not hasattr(model, "predict_proba"):
            return model.predict(batch).tolist(), None
        # One pass over the model: the label is the most probable class (as `predict` does for forests,
        # boosting and logistic regression), which halves the latency of tree ensembles.
        proba = np.asarray(model.predict_proba(batch), dtype=float)
    if not np.isfinite(proba).all():
        raise _NotFinite("the model returned probabilities that are not finite numbers")
    labels = model.classes_[proba.argmax(axis=1)].tolist()
    classes = [str(c) for c in model.classes_]
    return labels, [dict(zip(classes, map(float, p), strict=True)) for p in proba]


def _fails(model: Any, batch: Batch, task: TaskName) -> bool:
    try:
        _score(model, batch, task)
    except MODEL_ERRORS:
        return True
    return False


def _failing_rows(model: Any, batch: Batch, task: TaskName) -> list[int]:
    """Up to `MAX_NAMED_ROWS` rows that fail on their own, found by halving the failing ranges."""
    found: list[int] = []

    def search(lo: int, hi: int) -> None:  # rows [lo, hi) fail together
        if hi - lo == 1:
            found.append(lo)
            return
        mid = (lo + hi) // 2
        for start, stop in ((lo, mid), (mid, hi)):
            if len(found) >= MAX_NAMED_ROWS:
                return
            if _fails(model, _rows(batch, start, stop), task):
                search(start, stop)

    search(0, _row_count(batch))
    return found
