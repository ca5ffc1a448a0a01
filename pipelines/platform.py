"""The embedded platform: background processes with pid and log files under the state dir.

`make platform` starts a real `mlflow server` (SQLite + served artifacts); deploy starts `bentoml serve`;
the monitoring UI is one more process. Each runs in its own session so stopping it stops its workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from pipelines.config import PipelineConfig
from pipelines.errors import CannotRun

PROBE_TIMEOUT_S = 3.0  # a probe of a crash-looping server can hang; never wait on it unbounded


class PlatformError(CannotRun):
    """A background process could not be started, or never became healthy."""


@dataclass(frozen=True)
class Process:
    """A named background process whose pid and log live under `<state_dir>/run` and `<state_dir>/logs`."""

    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid if our process is alive; a stale pid file (dead process, or a reused pid) is removed."""
        try:
            pid_text, started = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _start_time(pid) == started:
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, command: list[str], env: Mapping[str, str] | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(command)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        # The start time tells our process from a later one that got the same pid (after a reboot, say).
        self.pid_file.write_text(f"{child.pid} {_start_time(child.pid)}")
        return child.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop the process group (the server and its workers); True if something was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        _signal_group(pid, signal.SIGKILL)  # whatever of the group is left: workers outliving their server
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _alive(pid: int) -> bool:
    # Reap it if it is our own child. A zombie is not alive either: it exited, and the process that started
    # it (a bench, a test session, an earlier `deploy` in the same process) has not reaped it yet.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_time(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return "gone"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def url_ok(url: str, timeout_s: float = PROBE_TIMEOUT_S, headers: Mapping[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s, headers=headers).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(ready: Callable[[], bool], process: Process | None, timeout_s: float, what: str) -> None:
    """Poll `ready` until it holds; fail early, with the log tail, if our own process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.pid() is None:
            raise PlatformError(f"{what} exited during start-up; {_log_hint(process)}")
        time.sleep(0.5)
    raise PlatformError(f"{what} not ready after {timeout_s:.0f}s" + (f"; {_log_hint(process)}" if process else ""))


def _log_hint(process: Process) -> str:
    return f"last lines of {process.log_file}:\n{process.log_tail()}"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_once(
    process: Process, command: list[str], *, host: str, port: int, port_setting: str, probe: str,
    timeout_s: float, what: str, env: Mapping[str, str] | None = None,
) -> None:
    """Start a background server unless ours already answers at `probe`; wait until it does. Idempotent."""
    if process.pid() is not None and url_ok(probe):
        return
    if port_in_use(host, port):
        raise PlatformError(
            f"port {host}:{port} is taken by another program; stop it or set {port_setting} in the pipeline config"
        )
    process.start(command, env)
    wait_until(lambda: url_ok(probe), process, timeout_s, what)


def mlflow_process(config: PipelineConfig) -> Process:
    return Process("mlflow", config.platform.state_dir)


def start_mlflow(config: PipelineConfig) -> str:
    """Start the local MLflow server unless it already answers; return its URL. Idempotent."""
    platform = config.platform
    store = platform.state_dir / "mlflow"
    (store / "artifacts").mkdir(parents=True, exist_ok=True)
    backend_uri = f"sqlite:///{store / 'mlflow.db'}"
    process = mlflow_process(config)
    # `mlflow db upgrade` before the server starts (never under a running one): a schema this MLflow cannot
    # read stops here, untouched.
    if process.pid() is None and not port_in_use(platform.host, platform.mlflow_port):
        prepare_backend_store(backend_uri)
    serve_once(
        process,
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", platform.host,
            "--port", str(platform.mlflow_port),
            "--backend-store-uri", backend_uri,
            "--serve-artifacts",
            "--artifacts-destination", str(store / "artifacts"),
            "--workers", "1",
        ],
        host=platform.host, port=platform.mlflow_port, port_setting="platform.mlflow_port",
        probe=f"{platform.mlflow_url}/health", timeout_s=platform.startup_timeout_s,
        what=f"MLflow server on {platform.mlflow_url}",
        # The job runner alone costs ~2 GB RSS and nothing here uses it.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    return platform.mlflow_url


def prepare_backend_store(uri: str) -> str:
    """Create, upgrade or keep the MLflow schema of the store at `uri` (services/tracking/schema.py)."""
    from services.tracking.schema import SchemaError, prepare

    try:
        return prepare(uri)
    except SchemaError as exc:
        raise PlatformError(f"MLflow backend store {uri}: {exc}") from None


def resident_memory_mib(pid: int) -> float:
    """RSS of a process and all its descendants, for the status table."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.Error:
        return 0.0


def require_mlflow(config: PipelineConfig) -> None:
    """Fail fast, naming the fix, when the configured MLflow server does not answer."""
    uri = config.tracking.resolved_uri
    if uri.startswith("http") and not url_ok(f"{uri.rstrip('/')}/health"):
        raise PlatformError(
            f"no MLflow server answers at {config.tracking.display_uri}; start one with `make platform`")
