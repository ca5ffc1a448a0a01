"""What `pipelines gc` may delete of monitoring's leftovers: retention arithmetic, only judged log files, which
report runs stay whatever their age, and the storage figures it prints."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.entities import Run, RunData, RunInfo, RunTag
from pydantic import ValidationError

from pipelines.config import PipelineConfig, PlatformConfig
from pipelines.config_model import LifecycleConfig
from pipelines.retention import (
    cutoff,
    day_is_past,
    is_report_of,
    protected,
    read_records,
    sweep_inference_logs,
    sweep_reports,
    sweep_snapshots,
    unjudged,
)
from pipelines.storage import human, tree_usage
from pipelines.volume_files import LocalTree

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def line(at: datetime, *, version: str = "1", model: str = "loans") -> str:
    return json.dumps({"request_id": "r", "row": 0, "timestamp": at.isoformat(), "model_name": model,
                       "model_version": version, "features": {"age": 30}, "prediction": 1}) + "\n"


def test_defaults_keep_monitoring_output_thirty_days_and_a_zero_is_refused_naming_the_key():
    limits = LifecycleConfig()
    assert (limits.keep_reports_days, limits.keep_snapshots_days, limits.keep_inference_days) == (30, 30, 30)
    assert cutoff(NOW, None) is None and cutoff(NOW, 1.5) == NOW - timedelta(hours=36)
    with pytest.raises(ValidationError, match="keep_inference_days"):
        LifecycleConfig(keep_inference_days=0)


@pytest.mark.parametrize(("day", "days", "past"), [
    (date(2026, 12, 2), 1, True),  # the whole of Dec 2 is before Dec 3 18:00
    (date(2026, 12, 3), 1, False),  # Dec 3 ends after Dec 3 18:00: a record of its evening is younger
    (date(2026, 12, 3), 0.25, True),  # Dec 3 ended before Dec 4 12:00
    (date(2026, 11, 3), 30, True),
    (date(2026, 11, 4), 30, False),
])
def test_a_log_file_is_past_retention_only_when_its_whole_day_is(day, days, past):
    assert day_is_past(day, cutoff(NOW, days)) is past


def records(*lines: str, tmp: Path) -> list:
    return list(read_records(lines))


def test_a_file_is_judged_only_when_each_record_is_within_its_versions_last_judged_window(tmp_path):
    judged_until = {"loans": {"1": NOW, "2": NOW - timedelta(hours=1)}}
    ends_of = lambda model: judged_until.get(model, {})  # noqa: E731
    at = NOW - timedelta(hours=2)
    assert unjudged(records(line(at), line(NOW), line(at, version="2"), tmp=tmp_path), ends_of) is None
    newer = records(line(at), line(NOW - timedelta(minutes=30), version="2"), tmp=tmp_path)
    assert unjudged(newer, ends_of).model_version == "2"  # v2 was judged only up to an hour ago
    assert unjudged(records(line(at, version="3"), tmp=tmp_path), ends_of).model_version == "3"  # never judged
    assert unjudged(records(line(at, model="other"), tmp=tmp_path), ends_of).model_name == "other"
    torn = records(line(at), '{"request_id": "torn", "times', tmp=tmp_path)  # a torn last line is no record
    assert unjudged(torn, ends_of) is None


class NoJudgedRuns:
    """A client whose monitoring experiment does not exist: nothing was ever judged."""

    def get_experiment_by_name(self, name):
        return None


def config_in(tmp: Path, **lifecycle: float) -> PipelineConfig:
    return PipelineConfig(model_name="loans", data={"target": "y", "numeric_features": ["age"]},
                          platform=PlatformConfig(state_dir=tmp / "state"), lifecycle=lifecycle)


def test_an_unjudged_log_file_survives_gc_however_old_and_a_dry_run_deletes_nothing(tmp_path):
    config = config_in(tmp_path, keep_inference_days=1)
    logs = config.platform.inference_log_dir
    logs.mkdir(parents=True)
    old = logs / "20261101-host-1.jsonl"
    old.write_text(line(datetime(2026, 11, 1, 9, tzinfo=UTC)))
    for dry_run in (True, False):
        swept = sweep_inference_logs(config, NoJudgedRuns(), NOW, dry_run=dry_run)
        assert swept.removed == [] and old.exists()
        assert swept.kept == [f"{old.name}: not judged yet (loans v1 record of 2026-11-01 09:00 UTC)"]


def test_snapshots_past_retention_go_a_dry_run_only_lists_them(tmp_path):
    config = config_in(tmp_path, keep_snapshots_days=2)
    snapshots = config.platform.state_dir / "monitoring" / "workspace" / "project-a" / "snapshots"
    snapshots.mkdir(parents=True)
    (snapshots.parent / "metadata.json").write_text(json.dumps({"id": "project-a", "name": "loans"}))
    old, new = snapshots / "old.json", snapshots / "new.json"
    old.write_text("{}" * 50)
    new.write_text("{}")
    aged = (NOW - timedelta(days=3)).timestamp()
    os.utime(old, (aged, aged))
    planned = sweep_snapshots(config, NOW, dry_run=True)
    assert (planned.removed, planned.freed_bytes) == (["project-a/old"], 100) and old.exists()
    assert sweep_snapshots(config, NOW, dry_run=False).removed == ["project-a/old"]
    assert not old.exists() and new.exists()
    assert sweep_snapshots(config_in(tmp_path, keep_snapshots_days=None), NOW + timedelta(days=9),
                           dry_run=False).removed == []  # unset: kept for ever


def run(run_id: str, started: int, version: str, **tags: str) -> Run:
    info = RunInfo(run_id, "0", "u", "FINISHED", started, started, "active", run_name=run_id)
    return Run(info, RunData(tags=[RunTag(k, v) for k, v in {"model_version": version, **tags}.items()]))


def test_the_newest_report_per_version_and_an_open_retrain_request_stay_whatever_their_age():
    runs = [run("a", 1, "1", retrain_status="requested", judged="true"), run("b", 2, "1", judged="true"),
            run("c", 3, "1", judged="true"), run("d", 1, "2", judged="true"),
            run("e", 0, "2", retrain_status="done", judged="true"),
            run("f", 4, "1")]  # failed halfway: no verdict, and no window end
    assert protected(runs) == {"c": "the newest report of v1", "a": "holds the open retrain request",
                               "d": "the newest report of v2"}


@pytest.mark.parametrize(("size", "shown"), [(0, "0 B"), (999, "999 B"), (1500, "1.5 kB"), (1_234_000_000, "1.2 GB")])
def test_sizes_read_as_a_person_reads_them(size, shown):
    assert human(size) == shown


def test_usage_counts_files_and_bytes_and_a_missing_directory_is_zero(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.html").write_text("x" * 10)
    (tmp_path / "a" / "y.txt").write_text("y" * 5)
    assert (tree_usage(LocalTree(tmp_path), "**/*.html").bytes, tree_usage(LocalTree(tmp_path)).items) == (10, 2)
    assert tree_usage(LocalTree(tmp_path / "absent")).shown() == "0 B in 0 files"


def test_a_judged_old_file_goes_and_the_unjudged_one_beside_it_stays(tmp_path, monkeypatch):
    config = config_in(tmp_path, keep_inference_days=1)
    logs = config.platform.inference_log_dir
    logs.mkdir(parents=True)
    judged_at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    judged, waiting, today = (logs / "20261101-a-1.jsonl", logs / "20261101-b-1.jsonl", logs / "20261204-a-1.jsonl")
    judged.write_text(line(judged_at - timedelta(hours=1)) + line(judged_at))
    waiting.write_text(line(judged_at + timedelta(seconds=1)))  # newer than the last judged window
    today.write_text(line(judged_at))
    monkeypatch.setattr("pipelines.retention.judged_windows", lambda client, experiment: lambda model: {"1": judged_at})
    swept = sweep_inference_logs(config, None, NOW, dry_run=False)
    assert (swept.removed, swept.freed_bytes) == ([judged.name], len(line(judged_at)) * 2)
    assert not judged.exists() and waiting.exists() and today.exists()
    assert [kept.split(":")[0] for kept in swept.kept] == [waiting.name]


def test_gc_prints_what_went_what_stayed_and_storage_before_and_after(tmp_path):
    from rich.console import Console

    from pipelines.lifecycle import Collection
    from pipelines.retention import Swept
    from pipelines.storage import Usage
    from pipelines.views import collected

    done = Collection(swept={"inference logs": Swept(["a.jsonl"], 2_000_000, ["b.jsonl: not judged yet (...)"])},
                      before={"inference logs": Usage(3_000_000, 2), "MLflow artifacts": Usage(None, note="on S3")},
                      after={"inference logs": Usage(1_000_000, 1), "MLflow artifacts": Usage(None, note="on S3")})
    console = Console(record=True, width=300)
    console.print(collected(config_in(tmp_path), done, dry_run=False))
    text = " ".join(console.export_text().replace("│", " ").split())
    assert "deleted inference logs 1 (2.0 MB): a.jsonl" in text and "kept inference logs b.jsonl: not judged" in text
    assert "storage inference logs 3.0 MB in 2 files -> 1.0 MB in 1 file, freed 2.0 MB" in text
    assert "storage MLflow artifacts on S3" in text and "keep_inference_days=30" in text


def test_a_verdict_whose_card_cannot_be_written_never_fails_the_monitoring_run(tmp_path, capsys):
    from pipelines.monitor import record_facts
    from services.monitoring.drift import Verdict
    from services.monitoring.results import MonitorResult, VersionResult

    class Gone:
        def __getattr__(self, name):
            raise ConnectionError("MLflow went away")

    judged = VersionResult("1", Verdict.OK, "OK: loans v1", 300, mlflow_run_id="run-1")
    record_facts(config_in(tmp_path), Gone(), MonitorResult(Verdict.OK, "OK", None, "run-1", None, False, [judged],
                                                            tmp_path))
    assert "no model card of v1 to note the verdict on: MLflow went away" in capsys.readouterr().err


def test_status_shows_storage_per_kind_of_this_machines_state_dir(tmp_path, monkeypatch):
    from pipelines.storage import storage

    monkeypatch.delenv("BENTOML_HOME", raising=False)
    config = config_in(tmp_path)
    state = config.platform.state_dir
    for path, size in (("inference/20261201-a-1.jsonl", 300), ("monitoring/reports/loans-v1-x.html", 2000),
                       ("monitoring/workspace/p/snapshots/s.json", 40), ("monitoring/workspace/p/project.json", 9),
                       ("bentoml/bentos/loans/v1/bento.yaml", 10), ("mlflow/artifacts/1/r/artifacts/a", 5)):
        (state / path).parent.mkdir(parents=True, exist_ok=True)
        (state / path).write_bytes(b"x" * size)
    used = storage(config)
    assert list(used) == ["bentos", "bentoml models", "release images", "monitoring reports", "Evidently snapshots",
                          "inference logs", "MLflow artifacts"]
    assert [(used[kind].bytes, used[kind].items) for kind in ("bentos", "monitoring reports", "Evidently snapshots",
                                                              "inference logs", "MLflow artifacts")] == [
        (10, 1), (2000, 1), (40, 1), (300, 1), (5, 1)]  # a project's own file is no snapshot
    assert used["monitoring reports"].shown() == "2.0 kB in 1 file"


def test_gc_of_one_model_leaves_another_models_snapshots_in_the_shared_workspace(tmp_path):
    config = config_in(tmp_path, keep_snapshots_days=2)
    workspace = config.platform.state_dir / "monitoring" / "workspace"
    aged = (NOW - timedelta(days=3)).timestamp()
    for project, model in (("p-loans", "loans"), ("p-other", "other")):
        (workspace / project / "snapshots").mkdir(parents=True)
        (workspace / project / "metadata.json").write_text(json.dumps({"id": project, "name": model}))
        old = workspace / project / "snapshots" / "old.json"
        old.write_text("{}")
        os.utime(old, (aged, aged))
    assert sweep_snapshots(config, NOW, dry_run=False).removed == ["p-loans/old"]
    assert (workspace / "p-other" / "snapshots" / "old.json").exists()


def test_a_report_file_is_the_models_only_by_its_whole_name():
    """`churn-v2` is a model name too: its reports are no reports of `churn`."""
    assert is_report_of("churn-v2-20261101T090000", "churn")
    assert is_report_of("churn-v2-20261101T090000-quality", "churn")
    assert not is_report_of("churn-v2-v3-20261101T090000", "churn")
    assert not is_report_of("churner-v2-20261101T090000", "churn")


def test_a_report_run_mlflow_refuses_to_delete_keeps_its_html_too(tmp_path, monkeypatch):
    from mlflow.exceptions import MlflowException

    from pipelines import retention

    config = config_in(tmp_path, keep_reports_days=1)
    reports = config.platform.state_dir / "monitoring" / "reports"
    reports.mkdir(parents=True)
    name = "loans-v1-20261101T090000"
    page = reports / f"{name}.html"
    page.write_text("<html/>")
    aged = (NOW - timedelta(days=3)).timestamp()
    os.utime(page, (aged, aged))
    refused, newest = run(name, 1, "1", judged="true"), run("loans-v1-20261203T090000", 2, "1", judged="true")
    monkeypatch.setattr(retention, "_report_runs", lambda client, experiment, model: [refused, newest])
    monkeypatch.setattr(retention, "_artifact_bytes", lambda client, run_id: 0)

    def forbidden(client, run):
        raise MlflowException("API request failed: 403 Forbidden")

    monkeypatch.setattr(retention, "_delete_run", forbidden)
    swept = sweep_reports(config, None, NOW, dry_run=False)
    assert swept.removed == [] and page.exists()
    assert f"run {name}: MLflow refused to delete it (API request failed: 403 Forbidden)" in swept.kept
