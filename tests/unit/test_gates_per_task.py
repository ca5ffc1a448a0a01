"""The gate per task, on real fitted models: a regression's ceilings, error slices and finite answers; a
multiclass model's checks; a champion trained for another task; the report assembled from returned results."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from pipelines.config import DataConfig, GatesConfig, ModelConfig, PipelineConfig
from pipelines.demo_data import make_loans
from pipelines.gate_checks import behaviour_checks, floor_checks, parity_checks, regression_checks, slice_checks
from pipelines.registry import ResolvedVersion
from pipelines.served_model import CandidateModels
from pipelines.task import CLASSIFICATION_TASK, REGRESSION_TASK
from pipelines.validate import champion_result, gate
from services.contract import SKLEARN_RUNTIME

DEMAND = DataConfig(target="demand", numeric_features=["price", "temperature"], categorical_features=["region"])
REGRESSION_GATES = GatesConfig(min_metrics={"r2": 0.8, "rmse": 4.0, "mae": 3.0}, max_regression={"rmse": 0.5},
                               min_slice_rows=30)


def make_demand(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], rows)
    price, temperature = rng.uniform(1, 10, rows), rng.normal(15, 8, rows)
    demand = 60 - 4 * price + 0.9 * temperature + np.select([region == "east"], [8.0], 0.0) + rng.normal(0, 2, rows)
    return pd.DataFrame({"price": price, "temperature": temperature, "region": region, "demand": demand})


def preprocessed(estimator, data: DataConfig) -> Pipeline:
    return Pipeline([("preprocess", ColumnTransformer([
        ("numeric", SimpleImputer(strategy="median"), data.numeric_features),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), data.categorical_features),
    ])), ("estimator", estimator)])


TRAIN, EVAL = make_demand(1500, seed=1), make_demand(600, seed=2)


@pytest.fixture(scope="module", params=[Ridge(), HistGradientBoostingRegressor(max_iter=50, random_state=0)],
                ids=["ridge", "hist_gradient_boosting_regressor"])
def regressor(request) -> Pipeline:
    return preprocessed(request.param, DEMAND).fit(TRAIN[DEMAND.features], TRAIN[DEMAND.target])


def by_name(checks):
    return {check.name: check for check in checks}


def test_regression_floors_and_ceilings_go_the_right_way(regressor):
    metrics = REGRESSION_TASK.evaluate(regressor, EVAL[DEMAND.features], EVAL[DEMAND.target])
    checks = by_name(floor_checks(metrics, REGRESSION_GATES, REGRESSION_TASK))
    assert checks["r2"].threshold == ">= 0.8" and checks["rmse"].threshold == "<= 4.0"
    assert checks["mae"].threshold == "<= 3.0" and all(check.passed for check in checks.values())
    tight = GatesConfig(min_metrics={"r2": 0.999, "rmse": 0.1, "mae": 0.1})
    assert not any(check.passed for check in floor_checks(metrics, tight, REGRESSION_TASK))


def test_a_regression_may_lose_only_the_allowed_error_to_the_champion():
    champion = {"rmse": 2.0}
    assert by_name(regression_checks({"rmse": 2.4}, champion, REGRESSION_GATES, REGRESSION_TASK))[
        "rmse vs champion"].passed
    worse = by_name(regression_checks({"rmse": 2.6}, champion, REGRESSION_GATES, REGRESSION_TASK))["rmse vs champion"]
    assert not worse.passed and worse.threshold == "<= 2.5000"


def test_gates_naming_another_tasks_metric_fail_clearly():
    (check,) = floor_checks({"r2": 0.9}, GatesConfig(min_metrics={"accuracy": 0.7}), REGRESSION_TASK)
    assert not check.passed and check.candidate == "not a regression metric"


def test_regression_slices_are_mean_absolute_error_with_a_ceiling(regressor):
    checks = slice_checks(regressor, EVAL, DEMAND, REGRESSION_GATES, REGRESSION_TASK)
    assert {check.name.split(" ")[0] for check in checks} == {f"mae[region={r}]" for r in ("east", "north", "south")}
    assert all(check.threshold.startswith("<= ") and check.passed for check in checks)
    strict = slice_checks(regressor, EVAL, DEMAND, GatesConfig(max_slice_error_ratio=1.0), REGRESSION_TASK)
    assert not all(check.passed for check in strict)  # slices differ: one is worse than the overall error


def test_a_sound_regressor_answers_one_finite_number_per_row(regressor):
    checks = by_name(behaviour_checks(regressor, EVAL, DEMAND, REGRESSION_TASK))
    assert set(checks) == {"deterministic predictions", "row-order invariance", "predictions"}
    assert all(check.passed for check in checks.values())


class NanForColdDays(RegressorMixin, BaseEstimator):
    """A regressor that answers NaN for some rows, as a broken division in a team's own model would."""

    def fit(self, features, target):
        self.mean_ = float(np.mean(target))
        return self

    def predict(self, features):
        return np.where(features["temperature"].to_numpy() < 0, np.nan, self.mean_)


def test_a_regressor_answering_nan_fails_only_its_answers():
    model = NanForColdDays().fit(TRAIN[DEMAND.features], TRAIN[DEMAND.target])
    checks = by_name(behaviour_checks(model, EVAL, DEMAND, REGRESSION_TASK))
    assert checks["deterministic predictions"].passed and checks["row-order invariance"].passed
    assert not checks["predictions"].passed and "finite" in checks["predictions"].candidate


def test_regression_parity_uses_the_gates_tolerances(regressor):
    other = preprocessed(Ridge(alpha=500.0), DEMAND).fit(TRAIN[DEMAND.features], TRAIN[DEMAND.target])
    (same,) = parity_checks(regressor, regressor, EVAL, DEMAND, REGRESSION_GATES, REGRESSION_TASK)
    (differs,) = parity_checks(regressor, other, EVAL, DEMAND, REGRESSION_GATES, REGRESSION_TASK)
    assert same.passed and not differs.passed and "1e-03" in differs.threshold


BANDS = DataConfig(target="band", numeric_features=["income", "loan_amount", "credit_score", "age"],
                   categorical_features=["employment", "region"])


@pytest.fixture(scope="module")
def multiclass() -> tuple[Pipeline, pd.DataFrame]:
    loans = make_loans(3000, seed=5)
    loans["band"] = pd.cut(loans["credit_score"], [0, 600, 700, 900], labels=["low", "mid", "high"]).astype(str)
    train, holdout = loans.iloc[:2200], loans.iloc[2200:].reset_index(drop=True)
    model = preprocessed(RandomForestClassifier(n_estimators=30, random_state=0), BANDS)
    return model.fit(train[BANDS.features], train[BANDS.target]), holdout


def test_a_multiclass_model_is_gated_per_class(multiclass):
    model, holdout = multiclass
    behaviour = by_name(behaviour_checks(model, holdout, BANDS, CLASSIFICATION_TASK))
    assert behaviour["probabilities"].candidate == f"shape ({len(holdout)}, 3)"
    assert all(check.passed for check in behaviour.values())
    metrics = CLASSIFICATION_TASK.evaluate(model, holdout[BANDS.features], holdout[BANDS.target])
    gates = GatesConfig(min_metrics={"accuracy": 0.8, "roc_auc": 0.9, "f1_macro": 0.7})
    assert all(check.passed for check in floor_checks(metrics, gates, CLASSIFICATION_TASK))
    slices = slice_checks(model, holdout, BANDS, GatesConfig(), CLASSIFICATION_TASK)
    assert slices and all(check.name.startswith("accuracy[") for check in slices)


def version(number: str, config: PipelineConfig, holdout: pd.DataFrame | None = None) -> ResolvedVersion:
    found = ResolvedVersion(name=config.model_name, version=number, run_id=f"run{number}", data_version="d",
                            git_sha="g", trained_with=config)
    if holdout is not None:
        vars(found)["holdout"] = holdout  # its frozen eval set, as if downloaded (a cached property)
    return found


REGRESSION_CONFIG = PipelineConfig(model_name="demand", task="regression", data=DEMAND,
                                   model=ModelConfig(estimator="ridge"))
CLASSIFICATION_CONFIG = PipelineConfig(model_name="demand", data=BANDS)


@pytest.mark.parametrize("allowed", [False, True])
def test_a_champion_trained_for_another_task_is_incomparable(regressor, allowed):
    found = champion_result(version("1", CLASSIFICATION_CONFIG), "2", regressor, EVAL, DEMAND, REGRESSION_CONFIG,
                            REGRESSION_TASK, allow_incomparable=allowed)
    (check,) = found.checks
    assert check.name == "comparable with champion v1" and check.passed is allowed
    assert "trained for classification, the candidate for regression" in check.candidate
    assert (found.override is not None) is allowed


def test_the_report_is_assembled_from_each_steps_result(regressor):
    candidate = version("2", REGRESSION_CONFIG, EVAL)
    report = gate(candidate, None, CandidateModels(regressor, not_converted="not converted: test"),
                  REGRESSION_CONFIG)
    assert report.notes == ["served by scikit-learn: the pipeline was not converted: test",
                            "no @champion yet: first release, gated by thresholds only"]
    names = [check.name for check in report.checks]
    assert names[0] == "r2" and "predictions" in names and any(name.startswith("mae[region=") for name in names)
    assert report.runtime == SKLEARN_RUNTIME and report.override is None and report.champion is None
    assert (report.candidate.task, report.candidate.estimator) == ("regression", "sklearn.linear_model.Ridge")
