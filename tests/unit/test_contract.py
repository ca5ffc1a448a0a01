"""The shared contract: what serving writes to the inference log is exactly what monitoring reads."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime

from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from services.contract import DEFAULT_MODEL_NAME, SMOKE_LOG_SUBDIR, JsonLogFormatter
from services.inference_record import InferenceRecord
from services.monitoring.inference_log import WindowSpec, read_window
from services.serving.inference_log import InferenceLog

WHEN = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def served(request_id: str, row: int) -> InferenceRecord:
    """A record as `services.serving.service` builds it for one predicted row."""
    return InferenceRecord(
        request_id=request_id, row=row, timestamp=WHEN, model_name="loans", model_version="3",
        features={"age": 41.0, "region": "east", "income": None}, prediction=1,
        probabilities={"0": 0.25, "1": 0.75},
    )


def test_the_written_line_has_exactly_the_record_fields(tmp_path):
    path = InferenceLog(tmp_path).append([served("a", 0).to_json()], WHEN)
    written = json.loads(path.read_text())
    assert set(written) == {field.name for field in dataclasses.fields(InferenceRecord)}


def test_the_monitoring_reader_gets_back_what_serving_wrote(tmp_path):
    rows = [served("req-1", 0), served("req-1", 1)]
    InferenceLog(tmp_path).append([record.to_json() for record in rows], WHEN)
    InferenceLog(tmp_path / SMOKE_LOG_SUBDIR).append([served("release-check", 0).to_json()], WHEN)

    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=100)

    assert scan.skipped_lines == 0 and scan.versions["3"].rows == 2
    assert sorted(scan.versions["3"].sample, key=lambda r: r.row) == rows
    assert scan.versions["3"].features().to_dict("records")[0] == rows[0].features


def test_log_lines_of_every_service_share_one_shape():
    record = logging.LogRecord("serving", logging.INFO, __file__, 1, "predicted", None, None)
    record.fields = {"request_id": "a", "rows": 2}
    line = json.loads(JsonLogFormatter().format(record))
    assert list(line)[:4] == ["ts", "level", "logger", "event"]
    assert line["level"] == "info" and line["event"] == "predicted" and line["rows"] == 2


def test_the_default_model_name_is_the_one_the_demo_config_trains():
    # A stack file without modelName, and a monitoring job without MODEL_NAME, mean the demo's model.
    assert load_config(DEFAULT_CONFIG_PATH).model_name == DEFAULT_MODEL_NAME
