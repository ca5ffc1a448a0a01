"""The built-in demo table: a generated loan book, available offline and identical on every machine."""

from __future__ import annotations

import numpy as np
import pandas as pd

EMPLOYMENT = ["salaried", "self_employed", "contract", "unemployed"]
REGIONS = ["north", "south", "east", "west"]
PURPOSES = ["home", "car", "education", "business", "other"]
APPLICANT_GROUPS = ["group_a", "group_b", "group_c"]  # a protected attribute the demo checks fairness across


def make_loans(rows: int = 6000, seed: int = 7) -> pd.DataFrame:
    """Loans with numeric and categorical features and a binary `defaulted` target driven by both."""
    rng = np.random.default_rng(seed)
    employment = rng.choice(EMPLOYMENT, rows, p=[0.55, 0.2, 0.17, 0.08])
    region = rng.choice(REGIONS, rows)
    purpose = rng.choice(PURPOSES, rows, p=[0.3, 0.25, 0.15, 0.15, 0.15])
    age = rng.integers(21, 70, rows)
    income = np.round(rng.lognormal(mean=10.6, sigma=0.45, size=rows), 2)
    loan_amount = np.round(rng.gamma(shape=2.0, scale=9000.0, size=rows), 2)
    credit_score = np.clip(rng.normal(650, 70, rows), 300, 850).round()
    debt_ratio = np.round(np.clip(rng.beta(2, 5, rows) + loan_amount / income / 4, 0, 1.5), 4)

    risk = (
        -0.012 * (credit_score - 650)
        + 2.4 * (debt_ratio - 0.4)
        - 0.6 * (np.log(income) - 10.6)
        - 0.01 * (age - 40)
        + np.select([employment == "unemployed", employment == "contract", employment == "self_employed"],
                    [1.6, 0.5, 0.3], 0.0)
        + np.where(purpose == "business", 0.5, 0.0)
        + np.where(region == "east", 0.25, 0.0)
        - 0.4
    )
    defaulted = (rng.random(rows) < 1 / (1 + np.exp(-2.5 * risk))).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "loan_amount": loan_amount,
            "credit_score": credit_score,
            "debt_ratio": debt_ratio,
            "employment": employment,
            "region": region,
            "purpose": purpose,
            "defaulted": defaulted,
            # From a stream of its own, so every other column is as before; independent of the risk, and not a
            # feature: the demo's model is fair across it by construction.
            "applicant_group": np.random.default_rng(seed + 1).choice(APPLICANT_GROUPS, rows, p=[0.5, 0.3, 0.2]),
        }
    )
