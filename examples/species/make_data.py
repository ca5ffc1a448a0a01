"""The species example's table: measurements of three penguin-like species on three islands, generated offline.

`uv run python examples/species/make_data.py [path]` writes it (default: `species.parquet` next to this
file, where `pipeline.yaml` reads it). Same rows on every run and machine: one seeded generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PATH = Path(__file__).with_name("species.parquet")
# species -> mean (bill length mm, bill depth mm, flipper length mm, body mass g)
SPECIES = {"adelie": (38.8, 18.3, 190.0, 3700.0), "chinstrap": (48.8, 18.4, 196.0, 3730.0),
           "gentoo": (47.5, 15.0, 217.0, 5080.0)}
SPREAD = (2.6, 1.1, 6.5, 450.0)
ISLANDS = ["biscoe", "dream", "torgersen"]


def make_species(rows: int = 3000, seed: int = 5) -> pd.DataFrame:
    """Rows of four measurements, island and sex; `species` is the class to predict."""
    rng = np.random.default_rng(seed)
    species = rng.choice(list(SPECIES), rows, p=[0.44, 0.2, 0.36])
    means = np.array([SPECIES[name] for name in species])
    sex = rng.choice(["female", "male"], rows)
    size = np.where(sex == "male", 1.04, 0.96)[:, None]  # males run larger on every measurement
    measured = means * size + rng.normal(0, 1, (rows, 4)) * np.array(SPREAD)
    frame = pd.DataFrame(np.round(measured, 1), columns=["bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                                          "body_mass_g"])
    frame["island"] = rng.choice(ISLANDS, rows)
    frame["sex"] = sex
    frame.loc[rng.random(rows) < 0.02, "sex"] = None  # a few unrecorded, as in field data
    frame["species"] = species
    return frame


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    make_species().to_parquet(path, index=False)
    print(f"wrote {path}")
