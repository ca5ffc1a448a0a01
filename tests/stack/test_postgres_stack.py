"""The stack with `trackingBackend: postgres` on Docker: the Postgres image built from services/postgres,
state that survives replacing both containers, a password that stays a file, a backup that restores, and a
restore that fails without touching the live database.

One module-scoped stack serves every test here; the tests run in file order and build on each other's state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from mlflow.tracking import MlflowClient

from pipelines.backup import BackupError, RestoreRefused, create_backup, restore_backup
from pipelines.backup_stack import StackStore
from tests.archives import members, rewrite, root_of
from tests.stack.conftest import running_stack
from tests.stack.harness import DockerStack

pytestmark = pytest.mark.timeout(1200)
POSTGRES_PASSWORD = "pg-stack:test\\9d3f"  # ':' and '\' on purpose: the .pgpass line must escape them
MODEL = "pg-model"


@pytest.fixture(scope="module")
def pg_platform(docker_client: docker.DockerClient, base_image: str) -> Iterator[DockerStack]:
    with running_stack(docker_client, base_image, {"trackingBackend": "postgres"},
                       {"postgresPassword": POSTGRES_PASSWORD}) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(pg_platform: DockerStack) -> MlflowClient:
    return MlflowClient(tracking_uri=pg_platform.declared.exports["mlflow_url"])


@pytest.fixture(scope="module")
def store(pg_platform: DockerStack) -> StackStore:
    return StackStore(pg_platform.declared.config["namePrefix"], pg_platform.client)


def log_run(client: MlflowClient, experiment: str, accuracy: float) -> str:
    experiment_id = client.create_experiment(experiment)
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "backend", "postgres")
    client.log_metric(run.info.run_id, "accuracy", accuracy)
    client.log_text(run.info.run_id, f"accuracy {accuracy}", "notes/report.txt")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def registry_state(client: MlflowClient) -> dict:
    model = client.get_registered_model(MODEL)
    versions = {v.version: (v.run_id, v.tags) for v in client.search_model_versions(f"name='{MODEL}'")}
    return {"aliases": dict(model.aliases), "tags": model.tags, "versions": versions}


def test_mlflow_runs_on_the_postgres_image_built_here(pg_platform):
    postgres = pg_platform.container("postgres")
    postgres.reload()
    assert postgres.attrs["State"]["Health"]["Status"] == "healthy"
    assert f"{pg_platform.declared.config['namePrefix']}-postgres:latest" in postgres.image.tags
    assert postgres.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    server = postgres.exec_run(["psql", "-At", "-U", "mlflow", "-d", "mlflow", "-c", "SELECT version()"])
    assert server.output.decode().startswith("PostgreSQL 15"), server.output.decode()
    tables = postgres.exec_run(["psql", "-At", "-U", "mlflow", "-d", "mlflow", "-c",
                                "SELECT count(*) FROM alembic_version"])
    assert tables.output.decode().strip() == "1"  # MLflow's schema lives in Postgres, migrated at start


def test_a_run_and_aliased_versions_survive_replacing_mlflow_and_postgres(pg_platform, client):
    run_ids = [log_run(client, f"pg-{n}", 0.8 + n / 100) for n in range(2)]
    client.create_registered_model(MODEL, tags={"owner": "stack-test"})
    for run_id in run_ids:
        client.create_model_version(MODEL, f"runs:/{run_id}/notes", run_id, tags={"data_version": run_id[:8]})
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "previous", "1")
    before = registry_state(client)

    for alias in ("postgres", "mlflow"):  # Postgres first: MLflow must reconnect to the new one
        pg_platform.replace(pg_platform.declared.container(alias).name)

    assert registry_state(client) == before
    run = client.get_run(run_ids[1])
    assert run.data.params == {"backend": "postgres"} and run.data.metrics == {"accuracy": 0.81}
    assert Path(client.download_artifacts(run_ids[1], "notes/report.txt")).read_text() == "accuracy 0.81"


def test_the_password_is_only_a_file(pg_platform):
    outputs = json.dumps(pg_platform.declared.exports, default=str)
    assert POSTGRES_PASSWORD not in outputs
    for alias in ("postgres", "mlflow"):
        container = pg_platform.container(alias)
        container.reload()
        assert POSTGRES_PASSWORD not in json.dumps(container.attrs), f"password in docker inspect of {alias}"
        assert POSTGRES_PASSWORD not in container.exec_run(["env"]).output.decode(), f"password in env of {alias}"
        assert POSTGRES_PASSWORD not in container.logs().decode(errors="replace"), f"password in logs of {alias}"
    mode = pg_platform.container("postgres").exec_run(["stat", "-c", "%a %u", "/run/postgres-password"])
    assert mode.output.decode().split() == ["600", "10001"]


def psql(stack: DockerStack, sql: str, database: str = "mlflow") -> str:
    done = stack.container("postgres").exec_run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "mlflow",
                                                 "-d", database, "-c", sql])
    assert done.exit_code == 0, done.output.decode()
    return done.output.decode().strip()


def kept_aside(stack: DockerStack, store: StackStore) -> list[str]:
    """What a restore keeps aside until it finishes or is put back: databases, and files on both volumes."""
    databases = psql(stack, "SELECT datname FROM pg_database", "postgres").split()
    files = stack.container("mlflow").exec_run(["ls", "-A", store.artifacts_dir, store.backend_dir]).output.decode()
    return [name for name in databases + files.split() if name.endswith(("_replaced", "_restoring"))
            or name.endswith((".replaced", ".replacing", ".added", ".restoring"))]


def test_a_backup_restores_the_registry_runs_and_artifacts(pg_platform, client, store, tmp_path):
    before = registry_state(client)
    kept_run = client.search_runs([client.get_experiment_by_name("pg-0").experiment_id])[0].info.run_id
    backup = create_backup(store, tmp_path)
    print(f"stack backup (postgres): {backup.archive_bytes / 2**20:.1f} MiB archive in {backup.seconds:.1f} s")
    assert backup.manifest.backend == "postgres" and "database/mlflow.pgdump" in backup.manifest.files
    assert any(path.startswith("artifacts/") for path in backup.manifest.files)

    # What happens after the backup: a new run, the aliases moved, a version deleted.
    later_run = log_run(client, "pg-later", 0.5)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.delete_model_version(MODEL, "2")

    with pytest.raises(RestoreRefused, match="is not empty"):
        restore_backup(store, backup.archive)
    assert client.get_run(later_run).info.run_id == later_run  # refused: nothing moved

    restored = restore_backup(store, backup.archive, force=True, safety_directory=tmp_path / "safety")
    print(f"stack restore (postgres, forced, MLflow restarted): {restored.seconds:.1f} s")
    assert restored.safety_backup is not None and restored.safety_backup.exists()
    assert registry_state(client) == before
    assert client.get_experiment_by_name("pg-later") is None
    assert client.get_run(kept_run).data.metrics == {"accuracy": 0.8}
    assert Path(client.download_artifacts(kept_run, "notes/report.txt")).read_text() == "accuracy 0.8"
    assert kept_aside(pg_platform, store) == []  # MLflow serves the restored state: the old one is dropped


def test_a_restore_that_fails_midway_leaves_the_live_database_serving(pg_platform, client, store, tmp_path):
    """A dump that passes every check but that pg_restore cannot read: it fails while it is restored into a
    database beside the live one, so the live database is never dropped and MLflow serves it as before."""
    backup = create_backup(store, tmp_path)
    rewrite(backup.archive, {f"{root_of(backup.archive)}/database/mlflow.pgdump": b"not a dump" * 1000},
            manifest_too=True)
    before = registry_state(client)
    with pytest.raises(BackupError, match="pg_restore.*the live state was not touched"):
        restore_backup(store, backup.archive, force=True, safety_directory=tmp_path / "safety")
    assert registry_state(client) == before
    databases = pg_platform.container("postgres").exec_run(
        ["psql", "-At", "-U", "mlflow", "-d", "postgres", "-c", "SELECT datname FROM pg_database"])
    assert "mlflow_restoring" not in databases.output.decode().split()  # the half-restored one is gone


def test_a_restore_mlflow_cannot_start_on_is_put_back_and_the_live_state_serves(pg_platform, client, store, tmp_path):
    """A dump pg_restore reads whose schema revision MLflow refuses at start (its manifest says otherwise): the
    swap is done, MLflow fails on it, so the database and files kept aside go back and MLflow serves them."""
    revision = psql(pg_platform, "SELECT version_num FROM alembic_version")
    psql(pg_platform, "UPDATE alembic_version SET version_num = 'fffffffffff0'")
    try:
        backup = create_backup(store, tmp_path)
    finally:
        psql(pg_platform, f"UPDATE alembic_version SET version_num = '{revision}'")
    manifest_name = f"{root_of(backup.archive)}/manifest.json"
    manifest = json.loads(members(backup.archive)[manifest_name])
    rewrite(backup.archive, {manifest_name: json.dumps({**manifest, "schema_revision": revision}).encode()})
    log_run(client, "pg-after-backup", 0.7)
    before = registry_state(client)
    with pytest.raises(BackupError, match=r"(?s)does not know.*back in place and MLflow serves it"):
        restore_backup(store, backup.archive, force=True, safety_directory=tmp_path / "safety")
    assert registry_state(client) == before
    assert client.get_experiment_by_name("pg-after-backup") is not None
    assert kept_aside(pg_platform, store) == []


def test_a_database_an_unfinished_restore_kept_aside_refuses_the_next_restore(pg_platform, client, store, tmp_path):
    backup = create_backup(store, tmp_path)
    psql(pg_platform, "CREATE DATABASE mlflow_replaced", "postgres")  # as a restore that died before its end
    try:
        with pytest.raises(BackupError, match="did not finish: the database mlflow_replaced may hold the only"):
            restore_backup(store, backup.archive, force=True, safety_directory=tmp_path / "safety")
        assert not (tmp_path / "safety").exists()  # refused before anything, the safety backup included
    finally:
        psql(pg_platform, "DROP DATABASE mlflow_replaced", "postgres")
