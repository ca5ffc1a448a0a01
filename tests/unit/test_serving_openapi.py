"""The OpenAPI document of `POST /predict` shows the response of the task the bento serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The service reads its bento arguments at import: a fresh interpreter per task, given them as `bentoml serve`
# would, prints the response schema BentoML derived from `predict`'s return annotation.
PROBE = """
import json, sys
from bentoml._internal.configuration.containers import BentoMLContainer
BentoMLContainer.bento_arguments.set({"model_tag": "m:v1", "model_name": "m", "model_version": "1",
                                      "task": sys.argv[1], "numeric_features": '["x"]', "categorical_features": "[]"})
from services.serving.service import Serving
spec = json.loads(json.dumps(Serving.openapi_spec.asdict()))
print(json.dumps(spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]))
"""


def response_schema(task: str, tmp_path: Path) -> dict:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "-c", PROBE, task], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_regression_bento_documents_numbers_and_no_probabilities(tmp_path):
    schema = response_schema("regression", tmp_path)
    assert schema["properties"]["predictions"]["items"] == {"type": "number"}
    assert "probabilities" not in schema["properties"]


def test_a_classification_bento_documents_labels_and_a_probability_per_class(tmp_path):
    schema = response_schema("classification", tmp_path)
    assert set(schema["properties"]) == {"predictions", "probabilities", "model_version", "request_id"}
    probability = schema["properties"]["probabilities"]["items"]
    assert probability == {"type": "object", "additionalProperties": {"type": "number"}}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_response_carries_the_version_and_request_id(task, tmp_path):
    assert {"model_version", "request_id"} <= set(response_schema(task, tmp_path)["required"])
