"""Sample traffic for the demo: rows of a version's frozen eval set sent to `/predict`, part of them shifted.

The shift is the kind monitoring must catch: numeric features rescaled and moved, so the served
population no longer looks like the training snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd

from pipelines.data import to_records
from pipelines.registry import ResolvedVersion


@dataclass(frozen=True)
class TrafficResult:
    requests: int
    rows: int
    drifted_rows: int
    failed_requests: int


def shift(frame: pd.DataFrame, numeric: list[str], seed: int) -> pd.DataFrame:
    """Move and rescale just over half of the numeric features."""
    shifted = frame.copy()
    rng = np.random.default_rng(seed)
    for column in numeric[: len(numeric) // 2 + 1]:
        values = shifted[column].astype(float)
        shifted[column] = values * 1.5 + values.std() * (1.0 + rng.random(len(values)) * 0.2)
    return shifted


def send(url: str, frame: pd.DataFrame, batch_rows: int) -> tuple[int, int]:
    """POST the rows in batches; (requests sent, requests that failed)."""
    rows = to_records(frame)
    failed = 0
    batches = range(0, len(rows), batch_rows)
    with httpx.Client(timeout=30.0) as client:
        for start in batches:
            response = client.post(f"{url}/predict", json={"rows": rows[start : start + batch_rows]})
            failed += response.status_code != 200
    return len(batches), failed


def sample_traffic(
    serving: ResolvedVersion, url: str, rows: int = 800, drifted_share: float = 0.5, batch_rows: int = 20
) -> TrafficResult:
    """Send rows shaped like the serving version's schema (which may differ from today's config)."""
    data = serving.data
    features = serving.holdout[data.features]
    sample = features.sample(n=rows, replace=rows > len(features), random_state=data.seed)
    drifted = int(rows * drifted_share)
    clean_part, drift_part = sample.iloc[: rows - drifted], sample.iloc[rows - drifted :]
    traffic = pd.concat([clean_part, shift(drift_part, data.numeric_features, data.seed)])
    requests, failed = send(url, traffic, batch_rows)
    return TrafficResult(requests=requests, rows=rows, drifted_rows=drifted, failed_requests=failed)
