"""The bench's minimal BentoML service: the bare app's model and scoring in a BentoML service, and nothing else.

`bentoml serve bench.bare_bento:BareBento` with the bare app's environment (`bench/bare_app.py`: `BARE_MODEL`,
`BARE_FEATURES`, `BARE_TASK`) and `BARE_WORKERS`. One typed async API, as the platform's service has, but no guard,
row schema, inference log, metrics of its own or card: what BentoML's request path costs around the same model
when a service is written the plain way (untyped rows in, a dict out).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from bench.bare_app import CATEGORICAL, MODEL, NUMERIC, ON_ONNX, TASK
from services.serving.scoring import columns, score


@bentoml.service(workers=int(os.environ.get("BARE_WORKERS", "1")), tracing={"excluded_urls": ["/predict$"]})
class BareBento:
    @bentoml.api
    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import pandas as pd  # the bare app imported it already

        arrays = columns(rows, NUMERIC, CATEGORICAL)
        predictions, probabilities = score(MODEL, arrays if ON_ONNX else pd.DataFrame(arrays), TASK)
        return {"predictions": predictions, **({"probabilities": probabilities} if probabilities else {})}
