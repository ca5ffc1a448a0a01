"""The BentoML service: one model version from the MLflow registry behind a typed `POST /predict`.

Which model, its version and its feature schema are bento arguments fixed at build time
(`pipelines.bento`), so a bento — and the image made from it — always serves exactly one version.
BentoML itself answers `/livez`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import bentoml
import mlflow.sklearn
import pandas as pd
from pydantic import BaseModel, Field

from services.contract import INFERENCE_LOG_ENV, REQUEST_ID_HEADER, InferenceRecord, JsonLogFormatter
from services.serving.inference_log import InferenceLog
from services.serving.request_schema import row_model


class ServingArgs(BaseModel):
    model_tag: str
    model_name: str
    model_version: str
    numeric_features: str  # JSON lists: bento arguments are strings on the command line
    categorical_features: str
    max_batch_rows: int = 1000
    workers: int = 1


args = bentoml.use_arguments(ServingArgs)
NUMERIC: list[str] = json.loads(args.numeric_features)
CATEGORICAL: list[str] = json.loads(args.categorical_features)


log = logging.getLogger("serving")
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(JsonLogFormatter())
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False

Row = row_model(NUMERIC, CATEGORICAL)


class Prediction(BaseModel):
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    model_version: str
    request_id: str


predictions_total = bentoml.metrics.Counter(
    name="predictions_total", documentation="Rows predicted", labelnames=["model_version"]
)
log_failures_total = bentoml.metrics.Counter(
    name="inference_log_failures_total", documentation="Requests whose rows could not be logged",
    labelnames=["model_version"],
)


@bentoml.service(workers=args.workers, traffic={"timeout": 30})
class Serving:
    model_ref = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        self.model = mlflow.sklearn.load_model(self.model_ref.path_of("mlflow_model"))
        self.inference_log = InferenceLog(Path(os.environ.get(INFERENCE_LOG_ENV, "inference-log")))
        log.info("model loaded", extra={"fields": {"model": args.model_name, "model_version": args.model_version}})

    @bentoml.api
    def predict(
        self,
        rows: Annotated[list[Row], Field(min_length=1, max_length=args.max_batch_rows)],  # type: ignore[valid-type]
        ctx: bentoml.Context,
    ) -> Prediction:
        started = time.perf_counter()
        request_id = ctx.request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
        records = [row.model_dump(by_alias=True) for row in rows]
        frame = pd.DataFrame.from_records(records, columns=[*NUMERIC, *CATEGORICAL]).astype(
            {name: "float64" for name in NUMERIC}
        )
        probabilities = None
        if hasattr(self.model, "predict_proba"):
            # One pass over the model: the label is the most probable class (as `predict` does for
            # forests, boosting and logistic regression), which halves the latency of tree ensembles.
            proba = self.model.predict_proba(frame)
            labels = self.model.classes_[proba.argmax(axis=1)].tolist()
            classes = [str(c) for c in self.model.classes_]
            probabilities = [dict(zip(classes, map(float, p), strict=True)) for p in proba]
        else:
            labels = self.model.predict(frame).tolist()
        self._log_rows(request_id, records, labels, probabilities)
        ctx.response.headers[REQUEST_ID_HEADER] = request_id
        log.info("predicted", extra={"fields": {
            "request_id": request_id, "model_version": args.model_version, "rows": len(records),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2)}})
        return Prediction(predictions=labels, probabilities=probabilities, model_version=args.model_version,
                          request_id=request_id)

    def _log_rows(
        self, request_id: str, records: list[dict], labels: list, probabilities: list[dict] | None
    ) -> None:
        now = datetime.now(UTC)
        entries = [
            InferenceRecord(request_id=request_id, row=i, timestamp=now, model_name=args.model_name,
                            model_version=args.model_version, features=features, prediction=labels[i],
                            probabilities=probabilities[i] if probabilities else None).to_json()
            for i, features in enumerate(records)
        ]
        try:
            self.inference_log.append(entries, now)
        except OSError as exc:
            # Serving stays up; the failure is counted and logged loudly for the alert to pick up.
            log_failures_total.labels(model_version=args.model_version).inc()
            log.error("inference log write failed", extra={"fields": {"request_id": request_id, "error": str(exc)}})
        predictions_total.labels(model_version=args.model_version).inc(len(entries))
