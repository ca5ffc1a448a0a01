"""Acme's estimator: logistic regression with the decision threshold the retention team acts on.

`model.estimator: acme_models.models:ThresholdedLogit` in the config. A scikit-learn-API classifier
(fit / predict / predict_proba / classes_), so the template trains, gates and serves it like any other.
It imports `semver`, a package the template's serving runtime lacks: the config lists it under
`model.requirements`, and the release image installs it.
"""

from __future__ import annotations

import numpy as np
import semver
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

# The retention policy the threshold implements: a fitted model records it, and the team's consumers of its
# predictions check they speak a compatible one.
POLICY = semver.Version.parse("2.1.0")


class ThresholdedLogit(ClassifierMixin, BaseEstimator):
    """Binary logistic regression that predicts the positive class from `threshold` on, not from 0.5:
    calling a customer at risk a little early is cheaper than losing one."""

    def __init__(self, C: float = 1.0, threshold: float = 0.4, max_iter: int = 500) -> None:
        self.C = C
        self.threshold = threshold
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> ThresholdedLogit:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X, y)
        if len(self.model_.classes_) != 2:
            raise ValueError(f"ThresholdedLogit is binary; the target has {len(self.model_.classes_)} classes")
        self.classes_ = self.model_.classes_
        self.policy_ = str(POLICY)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold).astype(int)]
