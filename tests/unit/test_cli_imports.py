"""Start-up cost is guarded by what gets imported. The CLI answers at once: importing its entry point loads
none of the heavy libraries; each command imports what it uses when it runs (`pipelines --help`,
`make help`, `make status` stay fast). A served bento starts sooner: the modules the service runs on the
ONNX runtime never import pandas (2.4 s in the server process and in each worker)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["mlflow", "bentoml", "evidently", "skops", "sklearn", "pandas", "onnxruntime", "skl2onnx", "pulumi"]


# What services/serving/service.py imports of the project (the service module itself needs bento arguments).
SERVING_MODULES = ["services.access", "services.contract", "services.serving.guard", "services.serving.inference_log",
                   "services.serving.model_trust", "services.serving.onnx_model", "services.serving.request_schema",
                   "services.serving.scoring"]


def loaded_by(modules: list[str], watched: list[str]) -> list[str]:
    """Which of `watched` a fresh interpreter has loaded after importing `modules`."""
    probe = f"import sys, json, {', '.join(modules)}; print(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    return json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_the_cli_entry_point_imports_no_heavy_library():
    assert loaded_by(["pipelines.cli"], HEAVY) == [], "import these inside the commands that use them"


def test_the_serving_code_imports_no_pandas_nor_training_libraries():
    assert loaded_by(SERVING_MODULES, ["pandas", "sklearn", "skops", "mlflow"]) == []
