"""The BentoML service: one model version from the MLflow registry behind a typed `POST /predict`.

Which model, its version, its task and its feature schema are bento arguments fixed at build time
(`pipelines.bento`), so a bento — and the image made from it — always serves exactly one version. The
response is the task's (`Prediction`, chosen at import, so the OpenAPI document shows the shape served):
a regression's values, or a classification's labels and a probability per class label.
BentoML itself answers `/livez`, `/readyz` and `/metrics`; `GET /card` is the version's model card (`card`).

What a client may send is bounded before the model sees it: the body (`guard.RequestGuard`: size, media
type, JSON without repeated keys), every row (`request_schema`: strict types, bounded numbers and
strings) and the request id; a model that still fails on accepted rows answers 422 naming them
(`scoring`). The model is the ONNX file the gate checked, run by onnxruntime (`onnx_model`), or, for a
version that has none, the scikit-learn model loaded with the pinned trusted types plus those its config
listed, and the team's code it was logged with only when that hashes to the version's digest (`model_trust`).
A request carrying the deploy's smoke token is logged apart, in the inference log's `SMOKE_LOG_SUBDIR`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, Field

from services.access import serving_grants
from services.contract import (
    CLASSIFICATION,
    DRAIN_FILE_ENV,
    INFERENCE_LOG_ENV,
    MODEL_INFO_METRIC,
    ONNX_RUNTIME,
    REGRESSION,
    REQUEST_ID_HEADER,
    SKLEARN_RUNTIME,
    SMOKE_LOG_SUBDIR,
    SMOKE_TOKEN_HEADER,
    JsonLogFormatter,
    TaskName,
)
from services.inference_record import InferenceRecord
from services.serving.card import CardEndpoint, bento_card_file
from services.serving.guard import Refusal, SmokeToken, check_request_id, serving_middlewares
from services.serving.inference_log import InferenceLog
from services.serving.model_trust import load_trusted_model
from services.serving.onnx_model import ONNX_FILE, load_onnx_model
from services.serving.request_schema import DEFAULT_MAX_ABS, row_model
from services.serving.scoring import RowsRefused, columns, score


class ServingArgs(BaseModel):
    model_tag: str
    model_name: str
    model_version: str
    task: TaskName = CLASSIFICATION
    numeric_features: str  # JSON lists: bento arguments are strings on the command line
    categorical_features: str
    trusted_types: str = "[]"  # the skops types the version's config lists beyond the pin (model.trusted_types)
    code_sha256: str = ""  # the digest of the team's code logged with the model, "" when it has none
    max_batch_rows: int = 1000
    max_abs_value: float = DEFAULT_MAX_ABS
    max_body_bytes: int = 4 * 1024 * 1024
    workers: int | Literal["cpu_count"] = 1
    runtime: str = SKLEARN_RUNTIME
    onnx_sha256: str = ""  # the ONNX file the gate checked (runtime onnxruntime)


args = bentoml.use_arguments(ServingArgs)
NUMERIC: list[str] = json.loads(args.numeric_features)
CATEGORICAL: list[str] = json.loads(args.categorical_features)
TRUSTED_TYPES: list[str] = json.loads(args.trusted_types)


log = logging.getLogger("serving")
_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(JsonLogFormatter())
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False

Row = row_model(NUMERIC, CATEGORICAL, max_abs=args.max_abs_value)


class Regression(BaseModel):
    predictions: list[float] = Field(description="the predicted value of each row, in request order")
    model_version: str
    request_id: str


class Classification(BaseModel):
    predictions: list[Any] = Field(description="the predicted class label of each row, in request order")
    probabilities: list[dict[str, float]] | None = Field(
        None, description="per row, the probability of each class label (absent for a model without them)")
    model_version: str
    request_id: str


# BentoML builds the OpenAPI schema from `predict`'s return annotation, read in this module's namespace.
Prediction = Regression if args.task == REGRESSION else Classification


predictions_total = bentoml.metrics.Counter(
    name="predictions_total", documentation="Rows predicted", labelnames=["model_version"]
)
log_failures_total = bentoml.metrics.Counter(
    name="inference_log_failures_total", documentation="Requests whose rows could not be logged",
    labelnames=["model_version"],
)
# 1 per server, naming what it serves: the stack's Prometheus finds servers by their network alias only and joins
# BentoML's request metrics with this (services/prometheus/rules). `max` across workers: one series, no pid label.
model_info = bentoml.metrics.Gauge(
    name=MODEL_INFO_METRIC, documentation="The model and version this server serves (always 1)",
    labelnames=["model_name", "model_version"], multiprocess_mode="max",
)


# No tracing exporter ships with the platform, so BentoML's spans for each request would go nowhere, at about a
# fifth of the service's CPU per request. A fork that sets `tracing.exporter_type` drops this exclusion.
# (A regex searched in the request's URL, which has no query string.)
@bentoml.service(workers=args.workers, traffic={"timeout": 30}, tracing={"excluded_urls": ["/predict$"]})
class Serving:
    model_ref = bentoml.models.BentoModel(args.model_tag)

    def __init__(self) -> None:
        self.model = _load_model(Path(self.model_ref.path_of("mlflow_model")))
        log_dir = Path(os.environ.get(INFERENCE_LOG_ENV, "inference-log"))
        self.inference_log = InferenceLog(log_dir)
        self.smoke_token = SmokeToken.from_env()
        self.smoke_log = InferenceLog(log_dir / SMOKE_LOG_SUBDIR) if self.smoke_token.configured else None
        model_info.labels(model_name=args.model_name, model_version=args.model_version).set(1)
        log.info("model loaded", extra={"fields": {"model": args.model_name, "model_version": args.model_version,
                                                   "runtime": args.runtime,
                                                   "smoke_marking": self.smoke_token.configured}})

    def __is_ready__(self) -> bool:
        # BentoML's /readyz asks this: a draining container stops being ready while it still answers.
        drain_file = os.environ.get(DRAIN_FILE_ENV)
        return not (drain_file and Path(drain_file).exists())

    # An async API: the request is scored on the event loop, without BentoML's hop to its one API thread and
    # back, which cost more than the ONNX model itself (`_score_records` moves only the slow runtime off the loop).
    @bentoml.api
    async def predict(
        self,
        rows: Annotated[list[Row], Field(min_length=1, max_length=args.max_batch_rows)],  # type: ignore[valid-type]
        ctx: bentoml.Context,
    ) -> Prediction:
        started = time.perf_counter()
        try:
            request_id = check_request_id(ctx.request.headers.get(REQUEST_ID_HEADER)) or str(uuid.uuid4())
            smoke = self.smoke_token.marks(ctx.request.headers.get(SMOKE_TOKEN_HEADER))
        except Refusal as refusal:
            raise BentoMLException(refusal.message, error_code=refusal.status) from None
        records = [row.model_dump(by_alias=True) for row in rows]
        try:
            predictions, probabilities = await _score_records(self.model, records)
        except RowsRefused as refused:
            log.warning("rows refused by the model", extra={"fields": {
                "request_id": request_id, "model_version": args.model_version, "rows": refused.rows,
                "error": str(refused)}})
            raise BentoMLException(str(refused), error_code=HTTPStatus.UNPROCESSABLE_ENTITY) from None
        self._log_rows(self.smoke_log if smoke else self.inference_log, request_id, records, predictions,
                       probabilities)
        ctx.response.headers[REQUEST_ID_HEADER] = request_id
        log.info("predicted", extra={"fields": {
            "request_id": request_id, "model_version": args.model_version, "rows": len(records),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2)}})
        answer = {"predictions": predictions, "model_version": args.model_version, "request_id": request_id}
        return Prediction(**answer) if probabilities is None else Prediction(**answer, probabilities=probabilities)

    def _log_rows(
        self, inference_log: InferenceLog, request_id: str, records: list[dict], predictions: list,
        probabilities: list[dict] | None,
    ) -> None:
        now = datetime.now(UTC)
        entries = [
            InferenceRecord(request_id=request_id, row=i, timestamp=now, model_name=args.model_name,
                            model_version=args.model_version, features=features, prediction=predictions[i],
                            probabilities=probabilities[i] if probabilities else None).to_json()
            for i, features in enumerate(records)
        ]
        try:
            inference_log.append(entries, now)
        except OSError as exc:
            # Serving stays up; the failure is counted and logged loudly for the alert to pick up.
            log_failures_total.labels(model_version=args.model_version).inc()
            log.error("inference log write failed", extra={"fields": {"request_id": request_id, "error": str(exc)}})
        predictions_total.labels(model_version=args.model_version).inc(len(entries))


# A forest's predict_proba takes tens of milliseconds: it runs in this thread, so the event loop goes on
# reading requests, one batch at a time per worker (the workers already use every core).
_SCIKIT_LEARN_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scikit-learn")


async def _score_records(model: Any, records: list[dict]) -> tuple[list[Any], list[dict[str, float]] | None]:
    """Score the rows as the runtime reads them. The ONNX model takes one array per column, on the event loop
    (about 0.1 ms, less than a thread hop), and the service never imports pandas (2.4 s of each serving
    process's start); a scikit-learn pipeline reads a DataFrame, in its own thread."""
    arrays = columns(records, NUMERIC, CATEGORICAL)
    if args.runtime == ONNX_RUNTIME:
        return score(model, arrays, args.task)
    import pandas as pd  # loaded at start by `_load_model` for this runtime

    batch = pd.DataFrame(arrays, columns=[*NUMERIC, *CATEGORICAL], copy=False)
    return await asyncio.get_running_loop().run_in_executor(_SCIKIT_LEARN_THREAD, score, model, batch, args.task)


def _load_model(model_dir: Path) -> Any:
    """The model as the gate checked it; anything else stops the worker (the server never becomes ready)."""
    if args.runtime == SKLEARN_RUNTIME:
        import pandas  # noqa: F401  the pipeline scores DataFrames: pay the import at start, not at the first request

        # Only the pinned trusted types and the config's load, whatever the artifact declares.
        return load_trusted_model(model_dir, TRUSTED_TYPES, args.code_sha256)
    if args.runtime != ONNX_RUNTIME:
        raise ValueError(f"unknown runtime {args.runtime!r}; expected {ONNX_RUNTIME!r} or {SKLEARN_RUNTIME!r}")
    onnx = (model_dir / ONNX_FILE).read_bytes()
    if hashlib.sha256(onnx).hexdigest() != args.onnx_sha256:
        raise ValueError(f"{model_dir / ONNX_FILE} is not the ONNX file the gate checked (sha256 differs)")
    return load_onnx_model(onnx)


# Outside the typed API: with a serving token (the stack's `servingToken`, as a file) everything but the health
# probes needs it or the model's team's token, checked first; then the body's size, media type and JSON.
for _middleware, _options in serving_middlewares(args.max_body_bytes, serving_grants()):
    Serving.add_asgi_middleware(_middleware, **_options)
Serving.add_asgi_middleware(CardEndpoint, card_file=bento_card_file())  # inside the credential check
