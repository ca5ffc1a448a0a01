"""The local platform keeps track of its own MLflow when the `mlflow server` parent dies (kill -9 of the pid in
its pid file): the uvicorn worker it leaves serving the port is still the platform's own. `status` reports
it, `platform` adopts it, `down` stops it and frees the port. A real MLflow started by `pipelines.platform`."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from typer.testing import CliRunner

from pipelines import platform
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.processes import alive
from tests.integration.conftest import stop_all, write_test_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})  # wide: one table row a line
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result.output


def test_an_mlflow_whose_server_process_was_killed_is_recognised_adopted_and_stopped(tmp_path):
    config_path, _ = write_test_config(tmp_path)
    config = load_config(config_path)
    settings = config.platform
    platform.start_mlflow(config)
    leader = int(platform.mlflow_process(config).pid_file.read_text().split()[0])
    try:
        os.kill(leader, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(leader) and time.monotonic() < deadline:  # reaps it: it is this test's child
            time.sleep(0.1)
        assert platform.url_ok(f"{settings.mlflow_url}/health"), "the worker no longer serves: nothing to recover"

        status = cli("status", "--config", str(config_path))
        assert f"{settings.mlflow_url} up (pid" in status, status
        worker = platform.mlflow_process(config).pid()
        assert worker is not None and worker != leader

        cli("platform", "--config", str(config_path))
        assert platform.mlflow_process(config).pid() == worker  # adopted, not a second server

        down = cli("down", "--config", str(config_path))
        assert "MLflow: stopped" in down, down
        assert not platform.port_in_use(settings.host, settings.mlflow_port)
        assert platform.mlflow_process(config).pid() is None
    finally:
        stop_all(config)
        with contextlib.suppress(ProcessLookupError):  # whatever survived a failed run: its group is the leader's
            os.killpg(leader, signal.SIGKILL)
