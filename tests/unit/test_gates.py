"""The validation gate's decisions, on real fitted models."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig, GatesConfig, ModelConfig
from pipelines.data import check_schema
from pipelines.demo_data import make_loans
from pipelines.gate_checks import (
    behaviour_checks,
    floor_checks,
    incomparable_check,
    regression_checks,
    slice_checks,
)
from pipelines.task import CLASSIFICATION_TASK
from pipelines.train import fit
from tests.unit.models import config_for

DATA = DataConfig(target="defaulted", numeric_features=["income", "credit_score", "debt_ratio"],
                  categorical_features=["employment", "region"])
GATES = GatesConfig(min_metrics={"accuracy": 0.7, "log_loss": 0.6}, max_regression={"accuracy": 0.02, "log_loss": 0.05})


@pytest.fixture(scope="module")
def trained() -> tuple[Pipeline, pd.DataFrame]:
    model, holdout, _ = fit(check_schema(make_loans(rows=3000), DATA, CLASSIFICATION_TASK),
                            config_for(DATA, ModelConfig(params={"n_estimators": 30})))
    return model, holdout


def by_name(checks):
    return {check.name: check for check in checks}


def test_floors_pass():
    checks = by_name(floor_checks({"accuracy": 0.8, "log_loss": 0.4}, GATES, CLASSIFICATION_TASK))
    assert set(checks) == {"accuracy", "log_loss"}
    assert all(check.passed for check in checks.values())


def test_threshold_failures_and_loss_direction():
    checks = by_name(floor_checks({"accuracy": 0.69, "log_loss": 0.61}, GATES, CLASSIFICATION_TASK))
    assert not checks["accuracy"].passed and checks["accuracy"].threshold == ">= 0.7"
    assert not checks["log_loss"].passed and checks["log_loss"].threshold == "<= 0.6"


def test_missing_metric_fails_the_gate():
    assert not by_name(floor_checks({"log_loss": 0.1}, GATES, CLASSIFICATION_TASK))["accuracy"].passed


def test_non_regression_against_champion():
    champion = {"accuracy": 0.85, "log_loss": 0.40}
    within = by_name(regression_checks({"accuracy": 0.84, "log_loss": 0.44}, champion, GATES, CLASSIFICATION_TASK))
    assert within["accuracy vs champion"].passed and within["log_loss vs champion"].passed
    worse = by_name(regression_checks({"accuracy": 0.82, "log_loss": 0.46}, champion, GATES, CLASSIFICATION_TASK))
    assert not worse["accuracy vs champion"].passed and not worse["log_loss vs champion"].passed
    assert worse["accuracy vs champion"].champion == 0.85


def test_slices_of_every_categorical(trained):
    model, holdout = trained
    checks = slice_checks(model, holdout, DATA, GatesConfig(min_slice_rows=30, max_slice_drop=0.15),
                          CLASSIFICATION_TASK)
    names = [check.name for check in checks]
    assert any(name.startswith("accuracy[employment=") for name in names)
    assert any(name.startswith("accuracy[region=") for name in names)
    strict = slice_checks(model, holdout, DATA, GatesConfig(min_slice_rows=30, max_slice_drop=0.0), CLASSIFICATION_TASK)
    assert not all(check.passed for check in strict)  # slices differ, so a zero tolerance must fail some


def test_behaviour_of_a_sound_model(trained):
    model, holdout = trained
    assert all(check.passed for check in behaviour_checks(model, holdout, DATA, CLASSIFICATION_TASK))


def test_nondeterministic_model_fails(trained):
    _, holdout = trained
    coin = Pipeline([("estimator", DummyClassifier(strategy="uniform"))])  # no seed: new draws each call
    coin.fit(holdout[DATA.features], holdout[DATA.target])
    checks = by_name(behaviour_checks(coin, holdout, DATA, CLASSIFICATION_TASK))
    assert not checks["deterministic predictions"].passed
    assert not checks["row-order invariance"].passed


class RunningMeanClassifier(ClassifierMixin, BaseEstimator):
    """Deterministic but order-dependent, as a stateful streaming model would be: each row is judged
    against the running mean of the rows before it in the batch."""

    def fit(self, features, target):
        self.classes_ = np.array(sorted(set(target)))
        return self

    def predict(self, features):
        income = features["income"].to_numpy(dtype=float)
        running = np.cumsum(income) / np.arange(1, len(income) + 1)
        return self.classes_[(income > np.roll(running, 1)).astype(int) % len(self.classes_)]


def test_order_dependent_model_fails_only_row_order(trained):
    _, holdout = trained
    model = RunningMeanClassifier().fit(holdout[DATA.features], holdout[DATA.target])
    checks = by_name(behaviour_checks(model, holdout, DATA, CLASSIFICATION_TASK))
    assert checks["deterministic predictions"].passed
    assert not checks["row-order invariance"].passed


def test_an_impossible_champion_comparison_fails_unless_waived():
    refused = incomparable_check("3", "the eval set lacks the champion's column(s) ['income']", allowed=False)
    waived = incomparable_check("3", "the eval set lacks the champion's column(s) ['income']", allowed=True)
    assert not refused.passed and refused.name == "comparable with champion v3"
    assert waived.passed and "waived" in waived.threshold
