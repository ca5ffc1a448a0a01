"""The kind of problem a model solves, as one object: what split, metrics, gate, ONNX parity and canary consult.

`task_for(config.task)` gives a `Task`: `CLASSIFICATION` (binary or multiclass; the classes come from the data)
or `REGRESSION` (a numeric target). Each knows its metrics and their direction, how its holdout is split off,
what a usable target looks like, how one slice of rows is scored, how its ONNX model must agree with the
scikit-learn one, and which served outputs the canary compares. Nothing else asks "is this a regression?".

Light at import (config reads the metric catalogue): pandas, numpy and scikit-learn load when a method runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from services.contract import CLASSIFICATION, REGRESSION, TaskName

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pipelines.config_model import DataConfig

SplitKind = Literal["stratified", "random", "time"]


@dataclass(frozen=True)
class MetricSpec:
    """A metric a gate may bound, and which way is better."""

    name: str
    higher_is_better: bool

    @property
    def comparison(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def within(self, value: float, bound: float) -> bool:
        """`value` is on the good side of `bound` (a floor for higher-is-better metrics, a ceiling otherwise)."""
        return value >= bound if self.higher_is_better else value <= bound

    def worst_allowed(self, best: float, allowed_loss: float) -> float:
        """The worst value within `allowed_loss` of `best`, in this metric's bad direction."""
        return best - allowed_loss if self.higher_is_better else best + allowed_loss


def _specs(higher: list[str], lower: list[str]) -> dict[str, MetricSpec]:
    return {**{n: MetricSpec(n, True) for n in higher}, **{n: MetricSpec(n, False) for n in lower}}


@dataclass(frozen=True)
class ParityCheck:
    """One comparison of the ONNX model with the scikit-learn model it was converted from (the gate's rows)."""

    name: str
    found: str
    passed: bool
    threshold: str


class Task(ABC):
    name: TaskName
    metrics: Mapping[str, MetricSpec]
    default_split: SplitKind
    splits: tuple[SplitKind, ...]
    estimator_kind: str  # what the estimator must be, in messages: "classifier" or "regressor"
    slice_metric: MetricSpec  # how one slice of the eval rows is scored by the gate

    def split(self, frame: pd.DataFrame, *, kind: SplitKind, holdout_fraction: float, seed: int, target: str,
              time_column: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The train / frozen-holdout split: seeded (stratified on the target for classification), or by time:
        the newest `holdout_fraction` of rows by `time_column` are the holdout (ties stay on one side)."""
        from sklearn.model_selection import train_test_split

        if kind == "time":
            if time_column is None:
                raise ValueError("a time split needs data.time_column")
            order = frame[time_column].sort_values(kind="stable")
            cutoff = order.iloc[int(len(order) * (1 - holdout_fraction))]
            train, holdout = frame[frame[time_column] < cutoff], frame[frame[time_column] >= cutoff]
            if train.empty or holdout.empty:
                raise ValueError(f"data.time_column '{time_column}' has too few distinct times to hold out "
                                 f"{holdout_fraction:.0%} of rows")
        else:
            stratify = frame[target] if kind == "stratified" else None
            train, holdout = train_test_split(frame, test_size=holdout_fraction, random_state=seed, stratify=stratify)
        return train.reset_index(drop=True), holdout.reset_index(drop=True)

    def split_snapshot(self, frame: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A snapshot's seeded train / frozen-holdout split, as its data config says (the task's default)."""
        return self.split(frame, kind=data.split or self.default_split, holdout_fraction=data.holdout_fraction,
                          seed=data.seed, target=data.target, time_column=data.time_column)

    def evaluate_on(self, model: Any, frame: pd.DataFrame, data: DataConfig) -> dict[str, float]:
        """`evaluate` on a table holding the data config's features and target."""
        return self.evaluate(model, frame[data.features], frame[data.target])

    def agrees_with(self, estimator: Any) -> bool:
        """The estimator (class or instance) is of this task's kind, as scikit-learn's own tags say."""
        from sklearn.base import is_classifier, is_regressor

        probe = estimator() if isinstance(estimator, type) else estimator
        return bool(is_classifier(probe) if self.name == CLASSIFICATION else is_regressor(probe))

    def holdout_only_labels(self, train: pd.Series, holdout: pd.Series) -> list[Any]:
        """Classes of the holdout the train split lacks (none for regression)."""
        return []

    @abstractmethod
    def target_problem(self, target: pd.Series, column: str, *, split: SplitKind,
                       holdout_fraction: float) -> str | None:
        """Why this target column cannot be trained on for the task (None: it can)."""

    @abstractmethod
    def evaluate(self, model: Any, features: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
        """Every metric of the task that the model and rows allow, on these rows."""

    @abstractmethod
    def slice_score(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        """`slice_metric` of one slice of rows."""

    @abstractmethod
    def slice_floor(self, overall: float, max_slice_drop: float, max_slice_error_ratio: float) -> float:
        """The worst `slice_score` a slice may have, given the score of all rows."""

    @abstractmethod
    def parity(self, reference: Any, converted: Any, features: pd.DataFrame, *, probability_gap: float,
               absolute_gap: float, relative_gap: float) -> list[ParityCheck]:
        """How the ONNX model's answers compare with the scikit-learn model's on these rows."""

    @abstractmethod
    def compared_outputs(self, prediction: Any, probabilities: Mapping[str, float] | None) -> dict[str, float] | None:
        """The served outputs of one row the canary compares between champion and candidate (None: nothing)."""


class Classification(Task):
    name = CLASSIFICATION
    metrics = _specs(["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "roc_auc"], ["log_loss"])
    default_split = "stratified"
    splits = ("stratified", "random", "time")
    estimator_kind = "classifier"
    slice_metric = MetricSpec("accuracy", True)

    def target_problem(self, target: pd.Series, column: str, *, split: SplitKind,
                       holdout_fraction: float) -> str | None:
        counts = target.value_counts()
        if len(counts) < 2:
            return f"target column '{column}' has a single class ({counts.index[0]!r}); a classifier needs two or more"
        if split == "stratified":
            # A stratified split puts at least one row of each class on each side.
            rare = counts[(counts < 2) | (counts * holdout_fraction < 1) | (counts * (1 - holdout_fraction) < 1)]
            if len(rare):
                shown = ", ".join(f"{label!r} ({n} row{'s' * (n != 1)})" for label, n in rare.items())
                return (f"target column '{column}' has class(es) too rare to stratify into train and holdout: {shown}; "
                        "add rows, merge the class, or set data.split: random")
        return None

    def holdout_only_labels(self, train: pd.Series, holdout: pd.Series) -> list[Any]:
        return sorted(set(holdout) - set(train), key=str)

    def evaluate(self, model: Any, features: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score

        predicted = model.predict(features)
        scores = {
            "accuracy": accuracy_score(truth, predicted),
            "balanced_accuracy": balanced_accuracy_score(truth, predicted),
            "f1_macro": f1_score(truth, predicted, average="macro"),
            "f1_weighted": f1_score(truth, predicted, average="weighted"),
        }
        if hasattr(model, "predict_proba"):
            proba = as_probabilities(model.predict_proba(features))
            classes = list(model.classes_)
            if len(classes) == 2:
                if truth.nunique() == 2:  # undefined on rows of one class
                    scores["roc_auc"] = roc_auc_score(truth, proba[:, 1])
            elif set(truth.unique()) == set(classes):  # one-vs-rest needs every class among the rows
                scores["roc_auc"] = roc_auc_score(truth, proba, multi_class="ovr", labels=classes)
            scores["log_loss"] = log_loss(truth, proba, labels=classes)
        return {name: float(value) for name, value in scores.items()}

    def slice_score(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        return float((predicted == truth).mean())

    def slice_floor(self, overall: float, max_slice_drop: float, max_slice_error_ratio: float) -> float:
        return overall - max_slice_drop

    def parity(self, reference: Any, converted: Any, features: pd.DataFrame, *, probability_gap: float,
               absolute_gap: float, relative_gap: float) -> list[ParityCheck]:
        import numpy as np

        differing = int((converted.predict(features) != reference.predict(features)).sum())
        gap = float(np.abs(converted.predict_proba(features) - reference.predict_proba(features)).max())
        return [
            ParityCheck("ONNX labels = scikit-learn's", f"{differing} of {len(features)} differ", differing == 0,
                        "identical on every eval row"),
            ParityCheck("ONNX probabilities vs scikit-learn's", f"max gap {gap:.1e}", gap <= probability_gap,
                        f"<= {probability_gap:.0e}"),
        ]

    def compared_outputs(self, prediction: Any, probabilities: Mapping[str, float] | None) -> dict[str, float] | None:
        return dict(probabilities) if probabilities else None


class Regression(Task):
    name = REGRESSION
    metrics = _specs(["r2"], ["rmse", "mae", "mape", "median_absolute_error"])
    default_split = "random"
    splits = ("random", "time")
    estimator_kind = "regressor"
    slice_metric = MetricSpec("mae", False)

    def target_problem(self, target: pd.Series, column: str, *, split: SplitKind,
                       holdout_fraction: float) -> str | None:
        from pandas.api import types as ptypes

        if not ptypes.is_numeric_dtype(target) or ptypes.is_bool_dtype(target):
            return f"target column '{column}' has type {target.dtype}; a regression target must be numeric"
        if target.nunique() < 2:
            return f"target column '{column}' has a single value; there is nothing to regress"
        return None

    def evaluate(self, model: Any, features: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
        from sklearn.metrics import (
            mean_absolute_error,
            mean_absolute_percentage_error,
            median_absolute_error,
            r2_score,
            root_mean_squared_error,
        )

        predicted = model.predict(features)
        scores = {
            "rmse": root_mean_squared_error(truth, predicted),
            "mae": mean_absolute_error(truth, predicted),
            "median_absolute_error": median_absolute_error(truth, predicted),
            # Undefined (huge) where the truth is 0: left out rather than gated on a meaningless number.
            **({"mape": mean_absolute_percentage_error(truth, predicted)} if (truth != 0).all() else {}),
        }
        if len(truth) >= 2:
            scores["r2"] = r2_score(truth, predicted)
        return {name: float(value) for name, value in scores.items()}

    def slice_score(self, predicted: np.ndarray, truth: np.ndarray) -> float:
        import numpy as np

        return float(np.abs(np.asarray(predicted, dtype=float) - np.asarray(truth, dtype=float)).mean())

    def slice_floor(self, overall: float, max_slice_drop: float, max_slice_error_ratio: float) -> float:
        return overall * max_slice_error_ratio

    def parity(self, reference: Any, converted: Any, features: pd.DataFrame, *, probability_gap: float,
               absolute_gap: float, relative_gap: float) -> list[ParityCheck]:
        import numpy as np

        expected = np.asarray(reference.predict(features), dtype=float).ravel()
        found = np.asarray(converted.predict(features), dtype=float).ravel()
        gap = np.abs(found - expected)
        allowed = absolute_gap + relative_gap * np.abs(expected)
        outside = int((gap > allowed).sum())
        return [ParityCheck("ONNX predictions vs scikit-learn's",
                            f"{outside} of {len(features)} outside, max gap {float(gap.max(initial=0.0)):.1e}",
                            outside == 0, f"|gap| <= {absolute_gap:.0e} + {relative_gap:.0e} x |value|")]

    def compared_outputs(self, prediction: Any, probabilities: Mapping[str, float] | None) -> dict[str, float] | None:
        return {"prediction": float(prediction)} if isinstance(prediction, int | float) else None


CLASSIFICATION_TASK, REGRESSION_TASK = Classification(), Regression()
TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION_TASK, REGRESSION_TASK)}


def task_for(name: str) -> Task:
    return TASKS[name]


def as_probabilities(proba: Any) -> np.ndarray:
    """Rows of class probabilities as scikit-learn's metrics demand them: float32 scores (onnxruntime's) can
    exceed 1 or miss a row sum of 1 by an ulp, which log_loss refuses."""
    import numpy as np

    clipped = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)
