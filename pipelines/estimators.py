"""Estimators by name: the built-in short names, and how any import path is resolved and checked.

Light at import (the config validates names against `BUILT_IN`); the class is imported when resolved.
"""

from __future__ import annotations

from services.contract import CLASSIFICATION, REGRESSION

# short name -> (import path, the task it serves)
BUILT_IN: dict[str, tuple[str, str]] = {
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", CLASSIFICATION),
    "gradient_boosting": ("sklearn.ensemble.GradientBoostingClassifier", CLASSIFICATION),
    "hist_gradient_boosting": ("sklearn.ensemble.HistGradientBoostingClassifier", CLASSIFICATION),
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", CLASSIFICATION),
    "ridge": ("sklearn.linear_model.Ridge", REGRESSION),
    "random_forest_regressor": ("sklearn.ensemble.RandomForestRegressor", REGRESSION),
    "gradient_boosting_regressor": ("sklearn.ensemble.GradientBoostingRegressor", REGRESSION),
    "hist_gradient_boosting_regressor": ("sklearn.ensemble.HistGradientBoostingRegressor", REGRESSION),
}


def is_import_path(name: str) -> bool:
    return "." in name or ":" in name


def import_path(name: str) -> str:
    """The import path an estimator name stands for (a short name's class, or the path itself)."""
    return BUILT_IN[name][0] if name in BUILT_IN else name
