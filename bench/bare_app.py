"""The bench's peer: a bare ASGI app with the same model and nothing else (no guard, schema, log or metrics).

`uvicorn bench.bare_app:app --workers N` with `BARE_MODEL` set to an MLflow model directory (scikit-learn,
loaded with the pinned trusted types plus the JSON list `BARE_TRUSTED_TYPES`) or to a `.onnx` file
(onnxruntime), `BARE_FEATURES` to the JSON lists of numeric and categorical features and `BARE_TASK` to the
model's task. Body and answer are the platform's: `{"rows": [...]}` in, the task's predictions (and a
classifier's probabilities) out, the rows made into columns and scored by the same `services.serving.scoring`
code, so the onnxruntime app is the practical limit of what the service does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.contract import CLASSIFICATION
from services.serving.model_trust import load_trusted_model
from services.serving.onnx_model import load_onnx_model
from services.serving.scoring import columns, score

MODEL_PATH = Path(os.environ["BARE_MODEL"])
NUMERIC, CATEGORICAL = json.loads(os.environ["BARE_FEATURES"])
TASK = os.environ.get("BARE_TASK", CLASSIFICATION)
ON_ONNX = MODEL_PATH.suffix == ".onnx"
MODEL = (load_onnx_model(MODEL_PATH) if ON_ONNX
         else load_trusted_model(MODEL_PATH, extra_types=json.loads(os.environ.get("BARE_TRUSTED_TYPES", "[]"))))


async def predict(request: Request) -> JSONResponse:
    arrays = columns((await request.json())["rows"], NUMERIC, CATEGORICAL)
    predictions, probabilities = score(MODEL, arrays if ON_ONNX else pd.DataFrame(arrays), TASK)
    return JSONResponse({"predictions": predictions, **({"probabilities": probabilities} if probabilities else {})})


async def ready(_: Request) -> JSONResponse:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])
