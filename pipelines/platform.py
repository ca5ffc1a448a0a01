"""The embedded platform: its background servers (`pipelines.processes`), started once and probed.

`make platform` starts a real `mlflow server` (SQLite + served artifacts, in the state dir or, by config, in
an S3 bucket); deploy starts `bentoml serve`; the monitoring UI is one more process.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import psutil

from pipelines.config import PipelineConfig
from pipelines.errors import CannotRun
from pipelines.object_store import check_access
from pipelines.processes import Process, command_of

PROBE_TIMEOUT_S = 3.0  # a probe of a crash-looping server can hang; never wait on it unbounded


class PlatformError(CannotRun):
    """A background process could not be started, or never became healthy."""


def url_ok(url: str, timeout_s: float = PROBE_TIMEOUT_S, headers: Mapping[str, str] | None = None,
           server_name: str | None = None) -> bool:
    try:
        return request("GET", url, timeout_s, headers, server_name).status_code == 200
    except httpx.HTTPError:
        return False


def request(method: str, url: str, timeout_s: float, headers: Mapping[str, str] | None = None,
            server_name: str | None = None, **content: Any) -> httpx.Response:
    """One HTTP request. With `server_name` it goes to the URL's address but as that host (SNI and `Host`), and
    TLS verifies the certificate against that name: a stack's front at 127.0.0.1 holds a certificate for the
    name its clients use, not for the address."""
    as_host = {"host": server_name} if server_name else {}
    tls_name = {"sni_hostname": server_name} if server_name else {}
    with httpx.Client(timeout=timeout_s) as client:
        return client.request(method, url, headers={**(headers or {}), **as_host}, extensions=tls_name, **content)


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


def _listener_hint(port: int) -> str:
    """` (pid N: its command)` for the process listening on `port`, where this user may see it."""
    try:
        pids = sorted(conn.pid for conn in psutil.net_connections("tcp") if conn.pid and conn.laddr
                      and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN)
        return f" (pid {pids[0]}: {command_of(psutil.Process(pids[0]))})" if pids else ""
    except psutil.Error:
        return ""


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
    if process.pid() is not None:
        if url_ok(probe):
            return  # ours, serving (perhaps a worker adopted after its server died)
        process.stop()  # ours but not answering (hung, or left half-started): start it afresh
    if port_in_use(host, port):
        raise PlatformError(f"port {host}:{port} is taken by another program{_listener_hint(port)}; "
                            f"stop it or set {port_setting} in the pipeline config")
    process.start(command, env)
    wait_until(lambda: url_ok(probe), process, timeout_s, what)


def mlflow_process(config: PipelineConfig) -> Process:
    return Process("mlflow", config.platform.state_dir)


def start_mlflow(config: PipelineConfig) -> str:
    """Start the local MLflow server unless it already answers; return its URL. Idempotent."""
    platform = config.platform
    store = platform.state_dir / "mlflow"
    backend_uri = f"sqlite:///{store / 'mlflow.db'}"
    process = mlflow_process(config)
    starting = process.pid() is None and not port_in_use(platform.host, platform.mlflow_port)
    if platform.artifacts_location is None:
        (store / "artifacts").mkdir(parents=True, exist_ok=True)
    elif starting:
        # Before anything is written: a bucket that is missing or refuses the keys fails here, naming it, not
        # in the first run that logs an artifact. The server reads the same AWS_* environment.
        check_access(platform.artifacts_location, "platform.artifacts_destination")
    store.mkdir(parents=True, exist_ok=True)
    # `mlflow db upgrade` before the server starts (never under a running one): a schema this MLflow cannot
    # read stops here, untouched.
    if starting:
        prepare_backend_store(backend_uri)
    serve_once(
        process,
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", platform.host,
            "--port", str(platform.mlflow_port),
            "--backend-store-uri", backend_uri,
            "--serve-artifacts",
            "--artifacts-destination", platform.artifacts_destination or str(store / "artifacts"),
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
