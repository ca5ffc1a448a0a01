"""Backups of the local platform that restore, and the schema step before MLflow starts, on real MLflow servers.

A source platform releases v1 (train, gate, bento, serve, audit record), then a backup is taken while a
second training run and serving traffic are in flight. The archive restores into a fresh platform whose own
MLflow server then holds the registry, runs, metrics, artifacts and audit records as they were.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipelines import platform
from pipelines.backup import BackupResult, create_backup
from pipelines.backup_stores import LocalStore
from pipelines.cli import app
from pipelines.config import REPO_ROOT, PipelineConfig, load_config
from pipelines.data import data_version
from pipelines.deploy import release_lock
from pipelines.snapshots import load_snapshot
from services.contract import AUDIT_EXPERIMENT, DATA_VERSION_TAG
from tests.archives import rewrite, root_of
from tests.integration.conftest import stop_all, write_test_config
from tests.load import SteadyLoad

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def run(*args: str, config: Path) -> None:
    code, output = cli(*args, "--config", str(config))
    assert code == 0, f"`pipelines {' '.join(args)}` exited {code}:\n{output}"


def fresh_platform(state: Path) -> tuple[PipelineConfig, Path]:
    path, _ = write_test_config(state)
    return load_config(path), path


@dataclass(frozen=True)
class Snapshot:
    """What a registry and its runs hold, comparable across servers."""

    aliases: dict[str, str]
    model_tags: dict[str, str]
    versions: dict[str, tuple[str, dict[str, str]]]  # version -> (run id, tags)
    runs: dict[str, tuple[dict, dict, dict]]  # run id -> (params, metrics, tags)
    audits: dict[str, dict[str, str]]  # audit run id -> tags

    @classmethod
    def of(cls, client: MlflowClient, name: str, experiment: str) -> Snapshot:
        model = client.get_registered_model(name)
        versions = {v.version: (v.run_id, dict(v.tags)) for v in client.search_model_versions(f"name='{name}'")}
        ids = [client.get_experiment_by_name(experiment).experiment_id]
        runs = {r.info.run_id: (r.data.params, r.data.metrics, _own_tags(r.data.tags))
                for r in client.search_runs(ids) if r.info.status == "FINISHED"}
        audit_ids = [client.get_experiment_by_name(AUDIT_EXPERIMENT).experiment_id]
        audits = {r.info.run_id: _own_tags(r.data.tags) for r in client.search_runs(audit_ids)}
        return cls(dict(model.aliases), dict(model.tags), versions, runs, audits)


def _own_tags(tags: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if not key.startswith("mlflow.log-model")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state_digest(config: PipelineConfig) -> dict[str, str]:
    """sha256 of every file of a local platform's MLflow state (database and artifacts)."""
    root = config.platform.state_dir / "mlflow"
    return {str(path.relative_to(root)): sha256(path) for path in sorted(root.rglob("*"))
            if path.is_file()}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineConfig, Path]]:
    """A platform with one release: v1 trained, gated, served as @champion, audited, tagged by hand."""
    config, path = fresh_platform(tmp_path_factory.mktemp("source"))
    try:
        run("platform", config=path)
        run("train", config=path)
        run("deploy", config=path)
        client = MlflowClient(config.tracking.uri)
        client.set_registered_model_tag(config.model_name, "owner", "backup-test")
        client.set_model_version_tag(config.model_name, "1", "reviewed", "yes")
        yield config, path
    finally:
        stop_all(config)


@pytest.fixture(scope="module")
def backup_in_flight(source, tmp_path_factory) -> tuple[BackupResult, Snapshot]:
    """A backup taken while a training run and serving traffic are in flight, and the registry before it."""
    config, path = source
    client = MlflowClient(config.tracking.uri)
    before = Snapshot.of(client, config.model_name, config.tracking.experiment)
    training = subprocess.Popen([sys.executable, "-m", "pipelines", "train", "--config", str(path)], cwd=REPO_ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        experiment_id = client.get_experiment_by_name(config.tracking.experiment).experiment_id
        deadline = time.monotonic() + 300
        while not client.search_runs([experiment_id], "attributes.status = 'RUNNING'"):
            assert training.poll() is None and time.monotonic() < deadline, "the second training never started"
            time.sleep(0.5)
        with SteadyLoad(config.platform.serving_url) as traffic:
            traffic.wait_for_answers()
            result = create_backup(LocalStore(config), tmp_path_factory.mktemp("backups"))
            traffic.wait_for_answers(traffic.sent + 20)
        assert traffic.failures == [], traffic.failures[:3]
        assert training.poll() is None or training.returncode == 0
    finally:
        assert training.wait(timeout=600) == 0
    print(f"backup of the demo state: {result.archive_bytes / 2**20:.1f} MiB archive "
          f"({result.manifest.total_bytes / 2**20:.1f} MiB in {len(result.manifest.files)} files) "
          f"in {result.seconds:.1f} s")
    return result, before


@pytest.fixture(scope="module")
def restored(backup_in_flight, tmp_path_factory) -> Iterator[tuple[PipelineConfig, Path]]:
    """A fresh platform the backup was restored into, its MLflow server started on the restored state."""
    backup, _ = backup_in_flight
    config, path = fresh_platform(tmp_path_factory.mktemp("restored"))
    started = time.monotonic()
    run("restore", str(backup.archive), config=path)
    print(f"restore into a fresh platform: {time.monotonic() - started:.1f} s")
    try:
        platform.start_mlflow(config)
        yield config, path
    finally:
        stop_all(config)


def test_the_registry_runs_and_audit_records_are_restored(backup_in_flight, restored):
    _, before = backup_in_flight
    config, _ = restored
    after = Snapshot.of(MlflowClient(config.tracking.uri), config.model_name, config.tracking.experiment)
    assert after.aliases["champion"] == before.aliases["champion"] == "1"
    assert after.model_tags["owner"] == "backup-test"
    assert after.versions["1"] == before.versions["1"] and after.versions["1"][1]["reviewed"] == "yes"
    # Everything finished before the backup is there as it was; the in-flight run may or may not be.
    assert {run_id: after.runs[run_id] for run_id in before.runs} == before.runs
    assert after.audits == before.audits and after.audits


def test_every_restored_version_loads_and_its_snapshot_matches_its_data_version(restored):
    config, _ = restored
    mlflow.set_tracking_uri(config.tracking.uri)
    client = MlflowClient(config.tracking.uri)
    checked = []
    for version in client.search_model_versions(f"name='{config.model_name}'"):  # the in-flight one too, if there
        model = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version.version}")
        snapshot = load_snapshot(version.run_id)
        assert len(model.predict(snapshot.drop(columns=[config.data.target]).head(5))) == 5
        if DATA_VERSION_TAG in version.tags:  # an in-flight version may have been dumped before its tags
            assert data_version(snapshot) == version.tags[DATA_VERSION_TAG]
            checked.append(version.version)
    assert "1" in checked


def test_the_restored_database_is_current_and_the_schema_step_is_idempotent(restored):
    config, _ = restored
    database = config.platform.state_dir / "mlflow" / "mlflow.db"
    platform.mlflow_process(config).stop()
    unchanged = sha256(database)
    assert "is current" in platform.prepare_backend_store(f"sqlite:///{database}")
    assert sha256(database) == unchanged


def test_a_non_empty_platform_is_refused_unless_forced(backup_in_flight, restored):
    backup, _ = backup_in_flight
    _, path = restored
    code, output = cli("restore", str(backup.archive), "--config", str(path))
    assert code == 1 and "is not empty" in output, output
    code, output = cli("restore", str(backup.archive), "--config", str(path), "--force")
    assert code == 0 and "previous state" in output, output


def test_a_restore_that_fails_midway_leaves_the_live_platform_serving_as_it_was(backup_in_flight, restored,
                                                                                 tmp_path):
    """An archive that passes every check but whose database dump is no database: the restore fails while it
    writes beside the live state, so the live database and artifacts are those of before, and serve."""
    backup, _ = backup_in_flight
    config, path = restored
    platform.start_mlflow(config)  # idempotent: an earlier test may have stopped it
    client = MlflowClient(config.tracking.uri)
    before = Snapshot.of(client, config.model_name, config.tracking.experiment)
    broken = tmp_path / backup.archive.name
    shutil.copy(backup.archive, broken)
    rewrite(broken, {f"{root_of(broken)}/database/mlflow.sqlite": b"not a database" * 4096}, manifest_too=True)
    stop_all(config)
    live = state_digest(config)
    code, output = cli("restore", str(broken), "--config", str(path), "--force")
    assert code != 0 and "the live state was not touched" in output, output
    assert state_digest(config) == live
    platform.start_mlflow(config)
    assert Snapshot.of(client, config.model_name, config.tracking.experiment) == before


def test_a_restore_is_refused_while_a_deploy_holds_the_release_lock(backup_in_flight, restored):
    backup, _ = backup_in_flight
    config, path = restored
    stop_all(config)
    live = state_digest(config)
    holding, done = threading.Event(), threading.Event()

    def deploy_in_progress() -> None:  # another thread, as another process would: the lock is per thread
        with release_lock(config):
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=deploy_in_progress)
    holder.start()
    try:
        assert holding.wait(10)
        code, output = cli("restore", str(backup.archive), "--config", str(path), "--force")
    finally:
        done.set()
        holder.join()
    assert code == 1 and "another deploy or rollback is running" in output, output
    assert state_digest(config) == live


def test_a_schema_this_mlflow_cannot_read_is_refused_untouched(restored):
    config, _ = restored
    stop_all(config)
    database = config.platform.state_dir / "mlflow" / "mlflow.db"
    with closing(sqlite3.connect(database)) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")  # what a newer MLflow would leave
        db.commit()
    unchanged = sha256(database)
    with pytest.raises(platform.PlatformError, match="does not know .*refusing to start, nothing was changed"):
        platform.start_mlflow(config)
    assert sha256(database) == unchanged
    assert platform.mlflow_process(config).pid() is None
