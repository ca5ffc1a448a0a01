"""Tables and fitted pipelines the ONNX tests share: a binary, a 3-class and a regression problem, each
with the template's preprocessing in front of every estimator the compiled path converts.
(`pipelines.features.default_preprocess`, what training puts there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import xgboost
from sklearn import ensemble, linear_model
from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig
from pipelines.demo_data import make_loans
from pipelines.features import SCALED_MODULES, default_preprocess
from services.contract import CLASSIFICATION, REGRESSION

LOAN_NUMBERS = ["age", "income", "loan_amount", "credit_score", "debt_ratio"]
LOAN_CATEGORIES = ["employment", "region", "purpose"]
# (data, task): a binary default flag, a 3-class risk tier (0 / 1 / 2), and units sold per store and day.
TABLES: dict[str, tuple[DataConfig, str]] = {
    "binary": (DataConfig(target="defaulted", numeric_features=LOAN_NUMBERS,
                          categorical_features=LOAN_CATEGORIES), CLASSIFICATION),
    "multiclass": (DataConfig(target="tier", numeric_features=LOAN_NUMBERS,
                              categorical_features=LOAN_CATEGORIES), CLASSIFICATION),
    "regression": (DataConfig(target="units", numeric_features=["price", "temperature", "day_of_week", "promo"],
                              categorical_features=["store", "category"]), REGRESSION),
}
UNSEEN = "never_in_training"  # a category the held-out rows have and the training rows do not

# Every estimator the compiled path converts, per task, sized for a unit test.
CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: ensemble.RandomForestClassifier(n_estimators=30, random_state=0),
    "gradient_boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=50, random_state=0),
    "hist_gradient_boosting": lambda: ensemble.HistGradientBoostingClassifier(max_iter=50, random_state=0),
    "logistic_regression": lambda: linear_model.LogisticRegression(max_iter=1000),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=50, verbose=-1, random_state=0),
    "xgboost": lambda: xgboost.XGBClassifier(n_estimators=50, random_state=0),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: ensemble.RandomForestRegressor(n_estimators=30, random_state=0),
    "gradient_boosting": lambda: ensemble.GradientBoostingRegressor(n_estimators=50, random_state=0),
    "hist_gradient_boosting": lambda: ensemble.HistGradientBoostingRegressor(max_iter=50, random_state=0),
    "ridge": lambda: linear_model.Ridge(),
    "lightgbm": lambda: lightgbm.LGBMRegressor(n_estimators=50, verbose=-1, random_state=0),
    "xgboost": lambda: xgboost.XGBRegressor(n_estimators=50, random_state=0),
}
CASES = [(table, name) for table, (_, task) in TABLES.items()
         for name in (CLASSIFIERS if task == CLASSIFICATION else REGRESSORS)]


def loans(rows: int, seed: int) -> pd.DataFrame:
    """The demo loan book with a 3-class tier beside its default flag, driven by score, debt and chance."""
    frame = make_loans(rows, seed)
    rng = np.random.default_rng(seed)
    risk = -(frame["credit_score"] - 650) / 70 + 3 * (frame["debt_ratio"] - 0.4) + rng.normal(0, 0.7, rows)
    frame["tier"] = np.digitize(risk, [-0.5, 0.7])
    return frame


def demand(rows: int, seed: int) -> pd.DataFrame:
    """Units sold: falling with price, up on promotions and weekends, drinks with the temperature, per store."""
    rng = np.random.default_rng(seed)
    store, category = rng.choice(["a", "b", "c", "d", "e"], rows), rng.choice(["food", "drink", "home"], rows)
    price, temperature = np.round(rng.uniform(1, 40, rows), 2), np.round(rng.normal(15, 8, rows), 1)
    day_of_week, promo = rng.integers(0, 7, rows), rng.integers(0, 2, rows)
    units = (200 * np.exp(-price / 20) + 5 * np.maximum(temperature, 0) * (category == "drink") + 30 * promo
             + 20 * (day_of_week >= 5) + np.select([store == "a", store == "b"], [50, -20], 0)
             + rng.normal(0, 10, rows))
    return pd.DataFrame({"price": price, "temperature": temperature, "day_of_week": day_of_week, "promo": promo,
                         "store": store, "category": category, "units": np.round(units, 1)})


def with_holes(frame: pd.DataFrame, data: DataConfig, seed: int, unseen: bool) -> pd.DataFrame:
    """Missing values as each source writes them (NaN numbers; None and NaN categories), and, for held-out
    rows, a category training never saw."""
    frame, rng = frame.copy(), np.random.default_rng(seed)
    first, *_, last = data.categorical_features
    for column in data.categorical_features:
        frame[column] = frame[column].astype(object)
        frame.loc[rng.random(len(frame)) < 0.05, column] = None
    frame.loc[rng.random(len(frame)) < 0.05, last] = np.nan
    for column in data.numeric_features[:2]:
        frame.loc[rng.random(len(frame)) < 0.05, column] = np.nan
    if unseen:
        frame.loc[rng.random(len(frame)) < 0.05, first] = UNSEEN
    return frame


def train_and_eval(table: str, train_rows: int = 1200, eval_rows: int = 600) -> tuple[pd.DataFrame, pd.DataFrame]:
    data, _ = TABLES[table]
    make = demand if table == "regression" else loans
    return (with_holes(make(train_rows, 1), data, 1, unseen=False),
            with_holes(make(eval_rows, 2), data, 2, unseen=True))


def template_pipeline(data: DataConfig, estimator: Any) -> Pipeline:
    """The template's default preprocessing (scaled for linear models, as training decides) in front of it."""
    scale = type(estimator).__module__.startswith(SCALED_MODULES)
    return Pipeline([("preprocess", default_preprocess(data, scale)), ("estimator", estimator)])


def fitted(table: str, name: str, train: pd.DataFrame) -> Pipeline:
    data, task = TABLES[table]
    estimator = (CLASSIFIERS if task == CLASSIFICATION else REGRESSORS)[name]()
    model = template_pipeline(data, estimator)
    return model.fit(train[data.features], train[data.target])
