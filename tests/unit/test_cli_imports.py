"""Start-up cost is guarded by what gets imported. The CLI answers at once: importing its entry point loads
none of the heavy libraries; each command imports what it uses when it runs (`pipelines --help`,
`make help`, `make status` stay fast). A served bento starts sooner: the modules the service runs on the
ONNX runtime never import pandas (2.4 s in the server process and in each worker)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["mlflow", "bentoml", "evidently", "skops", "sklearn", "pandas", "onnxruntime", "skl2onnx", "pulumi"]


SERVICE = Path(__file__).parents[2] / "services" / "serving" / "service.py"


def project_imports(path: Path) -> list[str]:
    """The project modules a file imports (the service module itself cannot be imported without bento arguments)."""
    tree = ast.parse(path.read_text())
    return sorted({node.module for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services.")})


def loaded_by(modules: list[str], watched: list[str]) -> list[str]:
    """Which of `watched` a fresh interpreter has loaded after importing `modules`."""
    probe = f"import sys, json, {', '.join(modules)}; print(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    return json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_the_cli_entry_point_imports_no_heavy_library():
    assert loaded_by(["pipelines.cli"], HEAVY) == [], "import these inside the commands that use them"


def test_the_serving_code_imports_no_pandas_nor_training_libraries():
    serving_modules = project_imports(SERVICE)
    assert "services.serving.scoring" in serving_modules
    assert loaded_by(serving_modules, ["pandas", "sklearn", "skops", "mlflow"]) == []
