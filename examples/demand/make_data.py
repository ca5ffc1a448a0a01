"""The demand example's table: a year of daily unit sales per store and product category, generated offline.

`uv run python examples/demand/make_data.py [path]` writes it (default: `demand.parquet` next to this file,
where `pipeline.yaml` reads it). Same rows on every run and machine: one seeded generator, no download.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PATH = Path(__file__).with_name("demand.parquet")
STORES = ["north", "south", "harbour", "airport"]
CATEGORIES = {"bakery": 60.0, "dairy": 55.0, "produce": 50.0, "drinks": 65.0}  # category -> base units a day
WEEKDAY_LIFT = [0.9, 0.92, 0.95, 1.0, 1.15, 1.3, 1.1]  # Monday .. Sunday


def make_demand(days: int = 240, seed: int = 11) -> pd.DataFrame:
    """One row per (day, store, category): price, promo, weather and the units sold that follow from them."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-06", periods=days, freq="D")
    grid = pd.MultiIndex.from_product([dates, STORES, list(CATEGORIES)], names=["date", "store", "category"])
    frame = grid.to_frame(index=False)
    rows = len(frame)
    day_of_year = frame["date"].dt.dayofyear.to_numpy()
    weekday = frame["date"].dt.dayofweek.to_numpy()
    base = frame["category"].map(CATEGORIES).to_numpy()
    list_price = base / 20.0
    promo = (rng.random(rows) < 0.18).astype(int)
    price = np.round(list_price * np.where(promo == 1, 0.8, 1.0) * rng.uniform(0.9, 1.1, rows), 2)
    temperature = np.round(12 + 10 * np.sin(2 * np.pi * (day_of_year - 100) / 365) + rng.normal(0, 3, rows), 1)
    store_lift = frame["store"].map({"north": 1.0, "south": 0.9, "harbour": 1.05, "airport": 0.95}).to_numpy()
    warm_lift = np.where(frame["category"].isin(["drinks", "produce"]), 1 + 0.015 * (temperature - 12), 1.0)
    units = (base * store_lift * np.take(WEEKDAY_LIFT, weekday) * warm_lift
             * (price / list_price) ** -1.4 * np.where(promo == 1, 1.25, 1.0))
    # Additive noise of one size: no slice's error dwarfs the others' only because it sells more.
    frame["units_sold"] = np.maximum(np.round(units + rng.normal(0, 4, rows), 1), 0.0)
    frame["weekday"] = frame["date"].dt.day_name().str.lower()
    frame["price"], frame["promo"], frame["temperature"] = price, promo, temperature
    return frame[["date", "store", "category", "weekday", "price", "promo", "temperature", "units_sold"]]


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    make_demand().to_parquet(path, index=False)
    print(f"wrote {path}")
