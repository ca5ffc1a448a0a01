"""The team example's table: subscriptions and whether they churned, generated offline.

`uv run python examples/team/make_data.py [path]` writes it (default: `subscriptions.parquet` next to this
file, where `pipeline.yaml` reads it). Same rows on every run and machine: one seeded generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PATH = Path(__file__).with_name("subscriptions.parquet")
PLANS = {"basic": 9.0, "standard": 15.0, "premium": 25.0}  # plan -> list fee a month
REGIONS = ["north", "south", "east", "west"]


def make_subscriptions(rows: int = 3000, seed: int = 3) -> pd.DataFrame:
    """Fee, tenure, support calls, usage, plan and region; `churned` is likelier for those paying much per hour."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(list(PLANS), rows, p=[0.45, 0.35, 0.2])
    fee = np.round(pd.Series(plan).map(PLANS).to_numpy() * rng.uniform(0.85, 1.15, rows), 2)
    tenure = rng.integers(1, 72, rows)
    calls = rng.poisson(1.2, rows)
    usage = np.round(rng.gamma(2.0, 12.0, rows), 1)
    region = rng.choice(REGIONS, rows)
    per_hour = fee / (usage + 1)
    risk = 2.2 * np.log1p(per_hour) - 0.035 * tenure + 0.45 * calls + np.where(region == "south", 0.3, 0.0) - 0.9
    churned = (rng.random(rows) < 1 / (1 + np.exp(-2.0 * risk))).astype(int)
    frame = pd.DataFrame({"monthly_fee": fee, "tenure_months": tenure, "support_calls": calls,
                          "usage_hours": usage, "plan": plan, "region": region, "churned": churned})
    frame.loc[rng.random(rows) < 0.03, "usage_hours"] = np.nan  # meters that did not report
    return frame


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    make_subscriptions().to_parquet(path, index=False)
    print(f"wrote {path}")
