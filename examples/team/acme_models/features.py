"""Acme's feature code: a price-per-use ratio, then imputation and encoding of its own choosing.

`features.transformer: acme_models.features:build` in the config: training calls `build()` and puts the
transformer in front of the estimator, on a DataFrame of the configured feature columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["monthly_fee", "tenure_months", "support_calls", "usage_hours"]
CATEGORICAL = ["plan", "region"]
RATIO = "fee_per_hour"


class RatioFeature(BaseEstimator, TransformerMixin):
    """Adds `name` = numerator / (denominator + offset): what a customer pays per hour of use."""

    def __init__(self, numerator: str = "monthly_fee", denominator: str = "usage_hours", name: str = RATIO,
                 offset: float = 1.0) -> None:
        self.numerator = numerator
        self.denominator = denominator
        self.name = name
        self.offset = offset

    def fit(self, frame: pd.DataFrame, y: object = None) -> RatioFeature:
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        denominator = out[self.denominator].astype(float).clip(lower=0) + self.offset
        out[self.name] = out[self.numerator].astype(float) / denominator
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([*(input_features if input_features is not None else []), self.name], dtype=object)


def build() -> Pipeline:
    """The ratio, then numbers median-imputed and scaled, categories with a 'missing' level one-hot encoded
    (a level never seen in training encodes as all zeros rather than failing the request)."""
    encode = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [*NUMERIC, RATIO]),
        ("categorical", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                      OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
    ])
    return Pipeline([("ratio", RatioFeature()), ("encode", encode)])
