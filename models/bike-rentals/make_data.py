"""The bike-rentals model's table: hourly rentals at one docking station, generated offline.

`uv run python models/bike-rentals/make_data.py [path]` writes it (default: `rentals.csv` next to this file, where
`pipeline.yaml` reads it; the committed file is this script's output). Same rows on every run and machine: one
seeded generator, no download.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PATH = Path(__file__).with_name("rentals.csv")
SEASONS = {"winter": -40.0, "spring": 10.0, "summer": 35.0, "autumn": 0.0}  # season -> rentals added an hour
WEATHER = {"clear": 0.0, "cloudy": -15.0, "rain": -60.0}


def make_rentals(rows: int = 1600, seed: int = 5) -> pd.DataFrame:
    """One row per sampled hour: its weather and calendar, and the rentals that follow from them."""
    rng = np.random.default_rng(seed)
    season = rng.choice(list(SEASONS), rows)
    weather = rng.choice(list(WEATHER), rows, p=[0.55, 0.3, 0.15])
    hour = rng.integers(0, 24, rows)
    workday = (rng.random(rows) < 5 / 7).astype(int)
    temperature = np.round(np.select([season == "winter", season == "summer"], [3.0, 24.0], 13.0)
                           + rng.normal(0, 4, rows), 1)
    humidity = np.round(np.clip(rng.normal(60, 15, rows) + np.where(weather == "rain", 20, 0), 10, 100), 0)
    # Commuter peaks on workdays, one broad afternoon hump otherwise; additive noise of one size, so no
    # season's or weather's error dwarfs the others' only because it rents more.
    commute = workday * (110 * np.exp(-((hour - 8) ** 2) / 3) + 130 * np.exp(-((hour - 17.5) ** 2) / 4))
    leisure = (1 - workday) * 90 * np.exp(-((hour - 14) ** 2) / 12)
    rentals = (60 + commute + leisure + 2.5 * (temperature - 13) - 0.6 * (humidity - 60)
               + pd.Series(season).map(SEASONS).to_numpy() + pd.Series(weather).map(WEATHER).to_numpy()
               + rng.normal(0, 12, rows))
    return pd.DataFrame({"hour": hour, "workday": workday, "temperature": temperature, "humidity": humidity,
                         "season": season, "weather": weather, "rentals": np.maximum(np.round(rentals), 0.0)})


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    make_rentals().to_csv(path, index=False)
    print(f"wrote {path}")
