"""A stack restore that fails after the swap began puts the live state back whatever raised: Docker's and
HTTP's own errors too, not only BackupError (the Docker parts themselves run in tests/stack)."""

from __future__ import annotations

import pytest

from pipelines.backup import BackupError
from pipelines.backup_stack import StackStore


class Recorded:
    """A StackStore whose Docker steps are recorded; `fail_at` raises the error a Docker step would."""

    def __init__(self, fail_at: str, error: Exception) -> None:
        self.steps: list[str] = []
        self.fail_at, self.error = fail_at, error
        store = StackStore.__new__(StackStore)
        store.postgres = self.postgres()
        store.mlflow = self.container()
        for name in ("_restore_beside", "_wait_healthy", "_finish"):
            setattr(store, name, self.step(name))
        store._run_files_helper = lambda phase, *args: self.step(f"files {phase}")()
        self.store = store

    def step(self, name: str):
        def run(*args, **kwargs) -> None:
            self.steps.append(name)
            if name == self.fail_at:
                self.fail_at = ""  # once: the put-back's own start succeeds
                raise self.error
        return run

    def postgres(self):
        recorded = self

        class Postgres:
            replaced = "mlflow_replaced"

            def swap(self) -> None:
                recorded.step("postgres swap")()

            def unswap(self) -> None:
                recorded.step("postgres unswap")()

        return Postgres()

    def container(self):
        recorded = self

        class Container:
            def stop(self, timeout: int) -> None:
                recorded.steps.append("stop mlflow")

            def start(self) -> None:
                recorded.step("start mlflow")()

        return Container()


@pytest.mark.parametrize("error", [
    pytest.param(RuntimeError("500 Server Error: port is already allocated"), id="docker APIError-like"),
    pytest.param(ConnectionError("Connection aborted"), id="requests ConnectionError-like"),
])
def test_a_start_that_fails_with_dockers_own_error_puts_the_live_state_back(error):
    recorded = Recorded("start mlflow", error)
    with pytest.raises(BackupError, match="back in place and MLflow serves it") as raised:
        recorded.store.load(backup=None)
    assert str(error) in str(raised.value)
    assert recorded.steps == ["_restore_beside", "stop mlflow", "postgres swap", "files swap", "start mlflow",
                              "stop mlflow", "files revert", "postgres unswap", "start mlflow", "_wait_healthy"]
