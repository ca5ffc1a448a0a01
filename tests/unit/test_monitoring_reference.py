"""The training snapshot is read in batches and sampled as it goes: a large table cannot exhaust the job's memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS, FEATURES, SAMPLE = 2_000_000, 5, 5_000
MIB = 2**20

# Run in a fresh process: the peaks it reads (Arrow's memory pool, tracemalloc for numpy) are per process.
PROBE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from types import SimpleNamespace
    import pyarrow as pa
    from mlflow.exceptions import MlflowException
    from services.monitoring.reference import load_reference

    class Client:  # what load_reference asks of MLflow: a version's run, its target tag, its artifacts
        def get_model_version(self, name, version):
            return SimpleNamespace(run_id="run-1")
        def get_run(self, run_id):
            return SimpleNamespace(data=SimpleNamespace(tags={"target": "y"}))
        def download_artifacts(self, run_id, artifact, dst):
            if artifact == "data/snapshot.parquet":
                return sys.argv[1]
            raise MlflowException("no such artifact")  # no recorded config: the schema comes from the snapshot

    tracemalloc.start()
    reference = load_reference(Client(), "loans", "1", max_rows=int(sys.argv[2]), seed=0)
    frame = reference.frame
    print(json.dumps({
        "columns": list(frame.columns), "rows": len(frame), "first": float(frame["x0"].min()),
        "last": float(frame["x0"].max()), "arrow_peak": pa.default_memory_pool().max_memory(),
        "numpy_peak": tracemalloc.get_traced_memory()[1],
    }))
    """
)


def test_a_large_snapshot_is_sampled_in_bounded_memory(tmp_path):
    """Item 5: the reference is a uniform sample read batch by batch, never the whole table in memory."""
    columns = {f"x{i}": np.arange(ROWS, dtype=np.float64) * (i + 1) for i in range(FEATURES)}
    table = pd.DataFrame({**columns, "y": np.arange(ROWS) % 2})  # 2M rows x 6 columns: about 92 MiB in memory
    snapshot = tmp_path / "snapshot.parquet"
    table.to_parquet(snapshot)  # as pipelines.data writes it: row groups of up to 1Mi rows
    del table, columns

    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(snapshot), str(SAMPLE)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True,
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])

    assert probe["columns"] == [f"x{i}" for i in range(FEATURES)] and probe["rows"] == SAMPLE  # the target is not
    assert probe["first"] < ROWS * 0.01 and probe["last"] > ROWS * 0.99  # drawn from the whole table
    # The whole table would be ~92 MiB in Arrow and ~76 MiB of feature columns in pandas.
    assert probe["arrow_peak"] < 32 * MIB, probe
    assert probe["numpy_peak"] < 32 * MIB, probe
