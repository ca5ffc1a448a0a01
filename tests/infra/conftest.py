"""tests/infra: the Pulumi program under mocks."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.infra import program


@pytest.fixture(autouse=True)
def _collect_a_failed_runs_garbage() -> Iterator[None]:
    """After a test whose program run failed, collect its garbage here, between tests (program.py says why)."""
    yield
    if program.failed_run_garbage:
        program.failed_run_garbage = False
        gc.collect()


@pytest.fixture
def pipeline_config(tmp_path: Path) -> Callable[..., str]:
    """Writes a pipeline config with this `monitoring:` section (and top-level keys); its path, for pipelineConfig."""
    def write(monitoring: object, **top: object) -> str:
        path = tmp_path / f"pipeline-{len(list(tmp_path.glob('pipeline-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump({**top, "monitoring": monitoring}))
        return str(path)

    return write
