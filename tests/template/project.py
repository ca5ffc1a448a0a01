"""A team's first model, as a project made from the template would write it: a churn table (not the demo's),
its config with its own platform ports, and its own feature code in its folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import platform

FEATURE_CODE = '''\
"""The team's feature step: support calls beyond ten count as ten (one noisy account is not ten)."""

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class CapCalls(BaseEstimator, TransformerMixin):
    def fit(self, frame: pd.DataFrame, y: object = None) -> "CapCalls":
        self.columns_ = list(frame.columns)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(support_calls=frame["support_calls"].clip(upper=10))

    def get_feature_names_out(self, input_features: object = None) -> list[str]:
        return self.columns_


def build() -> CapCalls:
    return CapCalls()
'''


def churn_table(rows: int = 600, seed: int = 11) -> pd.DataFrame:
    """Tenure, charges, support calls, contract and region; short-tenure monthly contracts churn."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["monthly", "yearly"], rows, p=[0.6, 0.4])
    tenure = rng.integers(1, 60, rows)
    calls = rng.poisson(1.5, rows)
    risk = 1.6 * (contract == "monthly") - 0.08 * tenure + 0.6 * calls
    return pd.DataFrame({
        "tenure": tenure, "monthly_charges": np.round(rng.uniform(20, 90, rows), 2), "support_calls": calls,
        "contract": contract, "region": rng.choice(["north", "south"], rows),
        "churned": (rng.random(rows) < 1 / (1 + np.exp(-3 * risk))).astype(int)})


def write_first_model(project: Path, model: str, state_dir: Path) -> str:
    """models/<model>/: table, config (own state dir, free ports) and feature code; the config's text."""
    folder = project / "models" / model
    (folder / "churn_code").mkdir(parents=True)
    churn_table().to_csv(folder / "customers.csv", index=False)
    (folder / "churn_code" / "__init__.py").write_text("")
    (folder / "churn_code" / "features.py").write_text(FEATURE_CODE)
    config = f"""\
# The team's churn model: its table, its feature code, its gates.
model_name: {model}
code_paths: [models/{model}/churn_code]
data:
  source: models/{model}/customers.csv
  target: churned
  numeric_features: [tenure, monthly_charges, support_calls]
  categorical_features: [contract, region]
  holdout_fraction: 0.25
features:
  transformer: churn_code.features:build
  then_default: true
model:
  estimator: random_forest
  params: {{n_estimators: 30, max_depth: 6}}
  trusted_types: [churn_code.features.CapCalls]
gates:
  min_metrics: {{accuracy: 0.7, roc_auc: 0.75}}
platform:
  state_dir: {state_dir}
  mlflow_port: {platform.free_port()}
  serving_port: {platform.free_port()}
  monitoring_ui_port: {platform.free_port()}
"""
    (folder / "pipeline.yaml").write_text(config)
    return config
