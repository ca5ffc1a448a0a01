"""The task object: metrics and their direction, splits, what a usable target is, per-slice scores, parity."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, Ridge

from pipelines.config import ConfigError, load_config
from pipelines.task import CLASSIFICATION_TASK, REGRESSION_TASK, task_for


def test_each_metric_knows_its_direction():
    assert CLASSIFICATION_TASK.metrics["accuracy"].within(0.8, 0.7)
    assert not CLASSIFICATION_TASK.metrics["log_loss"].within(0.8, 0.7)
    assert REGRESSION_TASK.metrics["rmse"].within(1.0, 1.5) and not REGRESSION_TASK.metrics["r2"].within(0.1, 0.2)
    assert REGRESSION_TASK.metrics["rmse"].worst_allowed(2.0, 0.5) == 2.5
    assert CLASSIFICATION_TASK.metrics["accuracy"].worst_allowed(0.9, 0.05) == pytest.approx(0.85)


def test_the_estimator_must_be_of_the_tasks_kind():
    assert CLASSIFICATION_TASK.agrees_with(RandomForestClassifier) and not CLASSIFICATION_TASK.agrees_with(Ridge)
    assert REGRESSION_TASK.agrees_with(Ridge()) and not REGRESSION_TASK.agrees_with(RandomForestClassifier())


def test_a_time_split_holds_out_the_newest_rows():
    frame = pd.DataFrame({"day": np.repeat(np.arange(20), 5), "y": np.arange(100.0)}).sample(frac=1, random_state=0)
    train, holdout = REGRESSION_TASK.split(frame, kind="time", holdout_fraction=0.25, seed=1, target="y",
                                           time_column="day")
    assert train["day"].max() < holdout["day"].min() and len(holdout) == 25


def test_a_time_column_with_one_time_is_a_clear_error():
    frame = pd.DataFrame({"day": [1] * 10, "y": np.arange(10.0)})
    with pytest.raises(ValueError, match="too few distinct times"):
        REGRESSION_TASK.split(frame, kind="time", holdout_fraction=0.25, seed=1, target="y", time_column="day")


@pytest.mark.parametrize(("task", "target", "expected"), [
    ("regression", pd.Series(["a", "b"]), "must be numeric"),
    ("regression", pd.Series([3.0, 3.0]), "single value"),
    ("classification", pd.Series([1, 1, 1]), "single class"),
    ("classification", pd.Series([0] * 50 + [1] * 50 + [2]), "too rare to stratify into train and holdout: 2 (1 row)"),
])
def test_an_unusable_target_is_named(task, target, expected):
    assert expected in task_for(task).target_problem(target, "y", split=task_for(task).default_split,
                                                     holdout_fraction=0.25)


def test_a_rare_class_is_fine_for_a_random_split():
    target = pd.Series([0] * 50 + [1] * 50 + [2])
    assert CLASSIFICATION_TASK.target_problem(target, "y", split="random", holdout_fraction=0.25) is None


def test_regression_metrics_and_slices():
    x = pd.DataFrame({"a": np.arange(40.0)})
    y = pd.Series(2 * np.arange(40.0) + 1)
    scores = REGRESSION_TASK.evaluate(LinearRegression().fit(x, y), x, y)
    assert scores["r2"] == pytest.approx(1.0) and scores["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert "mape" in scores
    assert REGRESSION_TASK.slice_score(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0
    assert REGRESSION_TASK.slice_floor(2.0, 0.15, 1.5) == 3.0


def test_regression_parity_allows_the_stated_tolerance_only():
    class Fixed:
        def __init__(self, values):
            self.values = np.asarray(values)

        def predict(self, _):
            return self.values

    rows = pd.DataFrame({"a": [0, 1]})
    close = REGRESSION_TASK.parity(Fixed([100.0, 0.0]), Fixed([100.0005, 0.0]), rows, probability_gap=1e-4,
                                   absolute_gap=1e-4, relative_gap=1e-5)
    far = REGRESSION_TASK.parity(Fixed([100.0, 0.0]), Fixed([100.0, 0.01]), rows, probability_gap=1e-4,
                                 absolute_gap=1e-4, relative_gap=1e-5)
    assert close[0].passed and not far[0].passed and "1 of 2 outside" in far[0].found


def test_the_canary_compares_values_for_regression_and_probabilities_for_classes():
    assert REGRESSION_TASK.compared_outputs(3.5, None) == {"prediction": 3.5}
    assert CLASSIFICATION_TASK.compared_outputs("a", {"a": 0.9, "b": 0.1}) == {"a": 0.9, "b": 0.1}


def _config(tmp_path, **extra):
    import yaml

    raw = {"model_name": "demand", "data": {"target": "units", "numeric_features": ["price"]}, **extra}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_a_regression_config_gets_its_own_gates_and_split(tmp_path):
    config = _config(tmp_path, task="regression")
    assert config.gates.min_metrics == {"r2": 0.0} and config.data.split == "random"


@pytest.mark.parametrize(("extra", "named"), [
    ({"task": "regression", "gates": {"min_metrics": {"accuracy": 0.5}}}, "gates.min_metrics.accuracy"),
    ({"task": "regression", "data": {"target": "u", "numeric_features": ["p"], "split": "stratified"}}, "data.split"),
    ({"data": {"target": "u", "numeric_features": ["p"], "split": "time"}}, "data.time_column"),
    ({"model": {"estimator": "xgboost"}}, "model.estimator"),
])
def test_a_declaration_that_does_not_fit_the_task_names_the_key(tmp_path, extra, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        _config(tmp_path, **extra)


def test_a_versions_labels_name_its_task_estimator_and_code(tmp_path):
    from pipelines.registry import ResolvedVersion

    version = ResolvedVersion(name="demand", version="3", run_id="r" * 32, data_version="d", git_sha="g",
                              trained_with=_config(tmp_path, task="regression"),
                              tagged_estimator="sklearn.linear_model.Ridge", code_sha256="c0de")
    assert {"task": "regression", "estimator": "sklearn.linear_model.Ridge", "code_sha256": "c0de"}.items() \
        <= version.labels.items()


class Float32Probabilities:
    """A classifier whose probabilities come back as float32, as onnxruntime gives them: a row may sum past 1."""

    classes_ = np.array(["no", "yes"])

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return np.where(features["x"] > 0, "yes", "no")

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        yes = (features["x"] > 0).to_numpy()
        return np.column_stack([np.where(yes, 0.0, 1.0000001), np.where(yes, 1.0000001, 0.0)]).astype(np.float32)


def test_float32_probabilities_past_one_still_score():
    features, truth = pd.DataFrame({"x": [-1.0, 1.0, 2.0, -2.0]}), pd.Series(["no", "yes", "yes", "no"])
    scores = CLASSIFICATION_TASK.evaluate(Float32Probabilities(), features, truth)
    assert scores["accuracy"] == 1.0 and 0.0 <= scores["log_loss"] < 1e-6
