"""`pipelines gc` against a real MLflow after real monitoring runs: what it deletes, what it keeps, the storage
figures, and the retrain request as an audit record that verifies and a verdict as a card fact."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from pipelines.audit import AuditTrail
from pipelines.config import DataConfig, PipelineConfig, PlatformConfig
from pipelines.lifecycle import collect
from pipelines.monitor import run_monitor
from pipelines.views import collected
from services.contract import CHAMPION_ALIAS
from tests.integration.test_monitoring import (
    CATEGORICAL,
    NUMERIC,
    TARGET,
    _holdout_draw,
    _log_traffic,
    _shifted,
    _train_like_the_release,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _shown(config: PipelineConfig, done, *, dry_run: bool) -> str:
    console = Console(record=True, width=400)
    console.print(collected(config, done, dry_run=dry_run))
    return " ".join(console.export_text().replace("│", " ").split())


def test_gc_deletes_only_what_monitoring_judged_and_keeps_the_request_and_the_newest_verdict(
    mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    model_name = f"retention-{uuid.uuid4().hex[:8]}"  # v1 @champion, its audit chain and reports of its own
    trained = _train_like_the_release(mlflow_server, model_name)
    assert trained.version == "1" and MlflowClient(mlflow_server).get_model_version_by_alias(
        model_name, CHAMPION_ALIAS).version == "1"
    config = PipelineConfig(
        model_name=model_name,
        data=DataConfig(target=TARGET, numeric_features=NUMERIC, categorical_features=CATEGORICAL),
        platform=PlatformConfig(state_dir=tmp_path / "state"),
        lifecycle={"keep_inference_days": 1, "keep_reports_days": 1 / 86400, "keep_snapshots_days": 1 / 86400},
    )
    logs, now = config.platform.inference_log_dir, datetime.now(UTC)
    runs = []
    for days_ago, traffic in ((5, _shifted), (4, _shifted), (3, lambda frame: frame)):
        _log_traffic(logs, model_name, traffic(_holdout_draw(trained, 400, seed=days_ago)),
                     start=now - timedelta(days=days_ago))
        runs.append(run_monitor(config))
    asked, again, calm = runs
    assert asked.retrain_requested and not again.retrain_requested and str(calm.verdict) == "OK", calm.summary
    # Logged after the last run, into the file of three days ago: that file holds records no run has judged.
    late = now - timedelta(days=3) + timedelta(seconds=1)
    _log_traffic(logs, model_name, _holdout_draw(trained, 50, seed=9), start=late)
    files = sorted(path.name for path in logs.glob("*.jsonl"))
    judged_files, waiting = files[:2], files[2]
    judged_bytes = sum((logs / name).stat().st_size for name in judged_files)
    time.sleep(1.5)  # every report run and snapshot is now past its 1-second retention

    planned = collect(config, dry_run=True)
    assert planned.swept["inference logs"].removed == judged_files and planned.after == {}
    assert sorted(path.name for path in logs.glob("*.jsonl")) == files  # a dry run deletes nothing
    assert "would delete inference logs 2" in _shown(config, planned, dry_run=True)

    done = collect(config, dry_run=False)
    client = MlflowClient(mlflow_server)
    assert sorted(path.name for path in logs.glob("*.jsonl")) == [waiting]
    assert done.swept["inference logs"].kept[0].startswith(f"{waiting}: not judged yet")
    reports = done.swept["monitoring reports"]
    assert f"run {client.get_run(again.mlflow_run_id).info.run_name}" in reports.removed
    assert client.get_run(again.mlflow_run_id).info.lifecycle_stage == "deleted"
    assert not client.list_artifacts(again.mlflow_run_id)  # its artifacts left the store too
    assert not again.report_path.exists() and asked.report_path.exists() and calm.report_path.exists()
    for kept in (asked, calm):  # the open retrain request, the newest verdict
        assert client.get_run(kept.mlflow_run_id).info.lifecycle_stage == "active"
    assert done.swept["Evidently snapshots"].removed
    assert done.after["Evidently snapshots"].items == 0 < done.before["Evidently snapshots"].items
    before, after = done.before["inference logs"], done.after["inference logs"]
    assert before.bytes - after.bytes == judged_bytes and (before.items, after.items) == (3, 1)
    shown = _shown(config, done, dry_run=False)
    assert "storage inference logs" in shown and "freed" in shown and "storage MLflow artifacts" in shown

    trail = AuditTrail.of(config, client)
    (request,) = [r for r in trail.timeline() if r["action"] == "retrain-request"]
    assert (request["model_version"], request["outcome"], request["verdict"]) == ("1", "opened", "DRIFT")
    assert request["who"] and request["report_run_id"] == asked.mlflow_run_id
    assert trail.verify().intact
    description = client.get_model_version(model_name, "1").description
    assert description.count("monitoring DRIFT") == 2 and "monitoring OK" in description.split("## Later facts")[1]
