"""The CLI answers at once: importing its entry point loads none of the heavy libraries; each command
imports what it uses when it runs (`pipelines --help`, `make help`, `make status` stay fast)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["mlflow", "bentoml", "evidently", "skops", "sklearn", "pandas", "onnxruntime", "skl2onnx", "pulumi"]


def test_the_cli_entry_point_imports_no_heavy_library():
    probe = f"import sys, json, pipelines.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(loaded) == [], "import these inside the commands that use them"
