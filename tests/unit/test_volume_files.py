"""The files gc sweeps through a helper container (pipelines.volume_files) list, read and delete as local ones do, and
the retention rules apply to whatever trees they are given; the job's retrain request is an audit record of the
job's user (services/monitoring/retrain.py), and a record it cannot write never fails its run."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from pipelines import volume_files
from pipelines.errors import CannotRun
from pipelines.retention import sweep_inference_logs, sweep_reports, sweep_snapshots
from pipelines.volume_files import ContainerTree, LocalTree, Trees, _job_of, check_stack_registry
from services.audit_chain import verify
from services.audit_store import MlflowAuditStore
from services.contract import AUDIT_EXPERIMENT
from services.monitoring.retrain import audit_retrain_request
from tests.unit.test_retention import NOW, config_in, line

OLD = (NOW - timedelta(days=60)).timestamp()


class LocalContainer:
    """What ContainerTree asks of a container, done on this machine: exec_run runs the command, get_archive tars."""

    name = "helper"

    def exec_run(self, command: list[str], demux: bool) -> SimpleNamespace:
        done = subprocess.run(command, capture_output=True, check=False)
        return SimpleNamespace(exit_code=done.returncode, output=(done.stdout, done.stderr))

    def get_archive(self, path: str) -> tuple[list[bytes], dict]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(path, arcname=Path(path).name)
        return [buffer.getvalue()], {}


def write(path: Path, text: str, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_container_tree_lists_reads_and_deletes_as_a_local_one(tmp_path):
    write(tmp_path / "20261101-a-1.jsonl", "one\ntwo\n", OLD)
    write(tmp_path / "smoke" / "20261101-a-1.jsonl", "smoke\n")
    remote, local = ContainerTree(LocalContainer(), str(tmp_path)), LocalTree(tmp_path)
    assert remote.files("*.jsonl") == local.files("*.jsonl") and len(remote.files("**/*.jsonl")) == 2
    assert list(remote.lines("20261101-a-1.jsonl")) == ["one\n", "two\n"]
    remote.delete("20261101-a-1.jsonl")
    assert [entry.name for entry in local.files("**/*")] == ["smoke/20261101-a-1.jsonl"]
    assert ContainerTree(LocalContainer(), str(tmp_path / "absent")).files("*") == []


def test_the_sweeps_work_on_the_trees_they_are_given_not_the_state_dir(tmp_path, monkeypatch):
    config = config_in(tmp_path, keep_inference_days=1, keep_reports_days=1, keep_snapshots_days=1)
    logs, reports, workspace = (tmp_path / "volume" / name for name in ("logs", "reports", "workspace"))
    judged_at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    write(logs / "20261101-a-1.jsonl", line(judged_at), OLD)
    write(logs / "20261101-b-1.jsonl", line(judged_at + timedelta(minutes=1)), OLD)  # not judged yet
    write(reports / "loans-v1-20261101T000000.html", "old", OLD)
    write(reports / "loans-v1-20261204T000000.html", "young")
    write(workspace / "p1" / "metadata.json", '{"name": "loans"}')
    write(workspace / "p1" / "snapshots" / "s.json", "{}", OLD)
    write(workspace / "p2" / "metadata.json", '{"name": "churn"}')  # another model's project
    write(workspace / "p2" / "snapshots" / "s.json", "{}", OLD)
    trees = Trees(*(ContainerTree(LocalContainer(), str(path)) for path in (logs, reports, workspace)))
    monkeypatch.setattr("pipelines.retention.judged_windows", lambda client, experiment: lambda model: {"1": judged_at})
    monkeypatch.setattr("pipelines.retention._report_runs", lambda client, experiment, model: [])

    assert sweep_inference_logs(config, None, NOW, dry_run=False, trees=trees).removed == ["20261101-a-1.jsonl"]
    assert sweep_reports(config, None, NOW, dry_run=False, trees=trees).removed == ["loans-v1-20261101T000000.html"]
    assert sweep_snapshots(config, NOW, dry_run=False, trees=trees).removed == ["p1/s"]
    left = {path.relative_to(tmp_path / "volume").as_posix() for path in (tmp_path / "volume").rglob("*.*")}
    assert left == {"logs/20261101-b-1.jsonl", "reports/loans-v1-20261204T000000.html", "workspace/p1/metadata.json",
                    "workspace/p2/metadata.json", "workspace/p2/snapshots/s.json"}


def test_a_stack_without_the_models_monitoring_job_is_named_with_the_containers_looked_for():
    class NoContainers:
        class containers:  # noqa: N801  the Docker SDK's attribute
            @staticmethod
            def get(name: str):
                raise LookupError(name)

    with pytest.raises(CannotRun, match="of model 'loans' .* mlops-monitoring, mlops-monitoring-loans"):
        _job_of(NoContainers(), "mlops", "loans")


def test_the_jobs_retrain_request_is_a_record_of_the_models_chain_naming_the_jobs_user(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "monitoring")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_experiment(AUDIT_EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    failure = audit_retrain_request(client, "http://mlflow:5000", "loans", version="3", verdict="DRIFT",
                                    reason="2 of 5 columns drifted", drifted_columns=["age", "income"],
                                    report_run_id="r1", report_url="http://mlflow:5000/#/runs/r1")
    assert failure == ""
    stored = MlflowAuditStore(client, "http://mlflow:5000").records("loans")
    (record,) = [item.record for item in stored]
    assert {key: record[key] for key in ("who", "via", "action", "model_version", "outcome", "drifted_columns")} == {
        "who": "monitoring", "via": "monitoring job", "action": "retrain-request", "model_version": "3",
        "outcome": "opened", "drifted_columns": "age, income"}
    assert verify("loans", stored).intact


def test_a_retrain_request_opened_by_the_cli_names_its_actor(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_experiment(AUDIT_EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    actor = {"who": "octocat", "via": "github-actions", "platform_git_sha": "abc123"}
    assert audit_retrain_request(client, "http://127.0.0.1:5000", "loans", version="3", verdict="DRIFT", reason="",
                                 drifted_columns=[], report_run_id="r1", report_url="", who=actor) == ""
    (stored,) = MlflowAuditStore(client, "http://127.0.0.1:5000").records("loans")
    assert {key: stored.record[key] for key in actor} == actor


def test_a_retrain_request_whose_record_cannot_be_written_says_why_instead_of_failing():
    class Down:
        def __getattr__(self, name):
            raise ConnectionError("MLflow is down")

    failure = audit_retrain_request(Down(), "http://mlflow:5000", "loans", version="3", verdict="DRIFT", reason="",
                                    drifted_columns=[], report_run_id="r1", report_url="")
    assert failure == "MLflow is down"


def test_a_retrain_request_whose_writer_cannot_be_named_says_why_instead_of_failing(monkeypatch):
    def unreadable():
        raise OSError("~/.mlflow/credentials: permission denied")

    monkeypatch.setattr("services.monitoring.retrain.read_mlflow_creds", unreadable)
    failure = audit_retrain_request(object(), "http://mlflow:5000", "loans", version="3", verdict="DRIFT", reason="",
                                    drifted_columns=[], report_run_id="r1", report_url="")  # type: ignore[arg-type]
    assert failure == "~/.mlflow/credentials: permission denied"


def _registry_and_job(tmp_path, monkeypatch, stacks_registered_at: str | None) -> MlflowClient:
    """A registry holding model `loans`, and a stack job whose MLflow says it registered the model at the given time
    (None: the same time as this registry, i.e. the same registry)."""
    registry = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry.create_registered_model("loans")
    here = str(registry.get_registered_model("loans").creation_timestamp)
    monkeypatch.setattr(volume_files, "docker_client", lambda: None)
    monkeypatch.setattr(volume_files, "_job_of", lambda client, prefix, model: "the job")
    monkeypatch.setattr(volume_files, "run_in", lambda job, command, what: f"{stacks_registered_at or here}\n")
    return registry


def test_gc_on_a_stack_goes_on_with_the_registry_its_job_writes_to(tmp_path, monkeypatch):
    check_stack_registry("mlops-dev", "loans", _registry_and_job(tmp_path, monkeypatch, None), "http://127.0.0.1:5000")


def test_gc_on_a_stack_refuses_a_registry_other_than_the_one_its_job_writes_to(tmp_path, monkeypatch):
    """Judged by another registry's runs, every report of the stack would look orphaned: refused before anything."""
    registry = _registry_and_job(tmp_path, monkeypatch, "1700000000000")
    with pytest.raises(CannotRun, match="the registry at http://127.0.0.1:5000 is not the stack 'mlops-dev''s MLflow"):
        check_stack_registry("mlops-dev", "loans", registry, "http://127.0.0.1:5000")


def test_gc_on_a_stack_names_a_model_missing_from_the_registry(tmp_path):
    registry = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(CannotRun, match="model 'loans' is not in the registry at http://127.0.0.1:5000"):
        check_stack_registry("mlops-dev", "loans", registry, "http://127.0.0.1:5000")


def test_gc_on_a_stack_names_what_a_job_it_cannot_sweep_lacks(monkeypatch):
    job = SimpleNamespace(name="mlops-dev-monitoring", attrs={"Config": {"Env": ["MODEL_NAME=loans"]}, "Mounts": []})
    monkeypatch.setattr(volume_files, "docker_client", lambda: None)
    monkeypatch.setattr(volume_files, "_job_of", lambda client, prefix, model: job)
    trees = volume_files.stack_trees("mlops-dev", "loans")
    with pytest.raises(CannotRun, match="mlops-dev-monitoring sets no INFERENCE_LOG_DIR, MONITORING_REPORTS_DIR"):
        trees.__enter__()
