"""tests/infra: the Pulumi program under mocks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.infra import program


@pytest.fixture(autouse=True)
def _collect_a_failed_runs_garbage() -> Iterator[None]:
    """After a test whose program run failed, collect its garbage here, between tests (program.py says why)."""
    yield
    if program.failed_run_garbage:
        program.failed_run_garbage = False
        gc.collect()
