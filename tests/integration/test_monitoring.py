"""The monitoring job against a real MLflow server, a real registered model and a real Evidently workspace."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
from evidently.ui.workspace import Workspace
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import DataConfig, PipelineConfig, PlatformConfig
from pipelines.data import load_versioned
from pipelines.demo_data import make_loans
from pipelines.monitor import (
    monitor_settings,
    run_monitor,
    start_monitoring_ui,
    stop_monitoring_ui,
    ui_process,
)
from pipelines.platform import free_port
from pipelines.snapshots import load_snapshot
from pipelines.train import train
from services.contract import CHAMPION_ALIAS, DATA_VERSION_TAG, HOLDOUT_ARTIFACT
from services.monitoring.alert import AlertSettings
from services.monitoring.drift import Verdict, prepare, run_drift_report
from services.monitoring.job import run_forever, run_once
from services.monitoring.margins import METRIC as MARGIN_METRIC
from services.monitoring.observability import heartbeat_age_s, job_logger
from services.monitoring.records import add_to_workspace
from services.monitoring.reference import FeatureSchema
from services.monitoring.retrain import (
    CLOSED,
    CLOSED_BY,
    OPEN,
    REQUESTED_AT,
    STATUS,
    close_retrain_request,
    last_retrain_request,
)
from services.monitoring.settings import MonitorSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TARGET = "defaulted"
NUMERIC = ["age", "income", "loan_amount", "credit_score", "debt_ratio"]
CATEGORICAL = ["employment", "region", "purpose"]
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    model_uri: str
    holdout: pd.DataFrame
    data_version: str


def _train_like_the_release(tracking_uri: str, name: str, source: str = "demo") -> TrainedModel:
    """The release's own training run (snapshot, holdout, config, tags), registered and aliased @champion."""
    config = PipelineConfig(
        model_name=name,
        data=DataConfig(source=source, target=TARGET, numeric_features=NUMERIC, categorical_features=CATEGORICAL,
                        sensitive_features=["applicant_group"]),
        model={"params": {"n_estimators": 20}},
        tracking={"uri": tracking_uri},
    )
    result = train(config, load_versioned(config))
    client = MlflowClient(tracking_uri)
    client.set_registered_model_alias(name, "champion", result.model_version)
    return TrainedModel(
        name=name,
        version=result.model_version,
        model_uri=client.get_model_version(name, result.model_version).source,
        holdout=load_snapshot(result.run_id, HOLDOUT_ARTIFACT),
        data_version=result.data_version,
    )


@pytest.fixture(scope="module")
def trained(mlflow_server: str) -> TrainedModel:
    return _train_like_the_release(mlflow_server, "monitoring-test")


@pytest.fixture
def model_name(trained: TrainedModel, mlflow_server: str) -> Iterator[str]:
    """The trained model under a fresh name per test (v1, @champion, with its data version), so retrain tags
    and windows never leak between tests."""
    name = f"monitoring-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(mlflow_server)
    assert _register_like_training(mlflow_server, name, trained) == "1"
    MlflowClient(mlflow_server).set_registered_model_alias(name, CHAMPION_ALIAS, "1")
    yield name


def _register_like_training(tracking_uri: str, name: str, trained: TrainedModel) -> str:
    """Another version of the same trained model, tagged with its data version as training tags it."""
    version = mlflow.register_model(trained.model_uri, name).version
    MlflowClient(tracking_uri).set_model_version_tag(name, version, DATA_VERSION_TAG, trained.data_version)
    return version


def _settings(tracking_uri: str, name: str, tmp: Path, alert: AlertSettings | None = None,
              **policy: object) -> MonitorSettings:
    return MonitorSettings(
        alert=alert,
        tracking_uri=tracking_uri,
        model_name=name,
        inference_log_dir=tmp / "inference",
        workspace_dir=tmp / "monitoring" / "workspace",
        reports_dir=tmp / "monitoring" / "reports",
        heartbeat_file=tmp / "monitoring" / "heartbeat",
        log_index_file=tmp / "monitoring" / "log-index.json",
    ).overridden(**policy)


def _log_traffic(
    log_dir: Path, name: str, frame: pd.DataFrame, *, version: str = "1", start: datetime | None = None
) -> list[str]:
    """Append rows as serving does (docs/contracts.md), one request per row; the request ids."""
    log_dir.mkdir(parents=True, exist_ok=True)
    start = start or datetime.now(UTC)
    ids = []
    with (log_dir / f"{start:%Y%m%d}-test-{os.getpid()}.jsonl").open("a") as handle:
        for offset, row in enumerate(frame[[*NUMERIC, *CATEGORICAL]].to_dict(orient="records")):
            request_id = str(uuid.uuid4())
            ids.append(request_id)
            record = {
                "request_id": request_id,
                "row": 0,
                "timestamp": (start + timedelta(milliseconds=offset)).isoformat(),
                "model_name": name,
                "model_version": version,
                "features": row,
                "prediction": 1,
                "probabilities": {"0": 0.4, "1": 0.6},
            }
            handle.write(json.dumps(record) + "\n")
    return ids


def _shifted(frame: pd.DataFrame) -> pd.DataFrame:
    shifted = frame.copy()
    shifted["income"] = shifted["income"] * 1.8
    shifted["credit_score"] = shifted["credit_score"] - 90
    shifted["debt_ratio"] = shifted["debt_ratio"] + 0.3
    return shifted


def _holdout_draw(trained: TrainedModel, rows: int, seed: int) -> pd.DataFrame:
    return trained.holdout.sample(n=rows, replace=True, random_state=seed)


def _workspace_snapshots(workspace_dir: Path, project: str) -> int:
    workspace = Workspace.create(str(workspace_dir))
    return sum(len(workspace.list_runs(p.id)) for p in workspace.search_project(project))


def test_holdout_traffic_is_ok_and_recorded(mlflow_server, trained, model_name, tmp_path):
    settings = _settings(mlflow_server, model_name, tmp_path)
    draw = _holdout_draw(trained, 600, seed=1)
    ids = _log_traffic(settings.inference_log_dir, model_name, draw)
    feedback = settings.inference_log_dir / "feedback"
    feedback.mkdir()
    (feedback / "labels.jsonl").write_text(
        "".join(
            # With each row's sensitive value, which serving never saw: the gate's fairness figures, live.
            json.dumps({"request_id": i, "row": 0, "label": int(y), "groups": {"applicant_group": group}}) + "\n"
            for i, y, group in zip(ids, draw[TARGET], draw["applicant_group"], strict=True)
        )
    )

    result = run_once(settings)

    assert result.verdict is Verdict.OK, result.summary
    assert result.summary.startswith("OK: ") and "\n" not in result.summary
    assert result.report_path is not None and result.report_path.stat().st_size > 10_000
    assert not result.retrain_requested
    client = MlflowClient(mlflow_server)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["model_version"] == "1" and run.data.tags["verdict"] == "OK"
    assert run.data.tags["window_rows"] == "600"
    assert {f"drift_score/{c}" for c in NUMERIC + CATEGORICAL} <= set(run.data.metrics)
    assert run.data.metrics["drift_share"] < settings.policy.drift_share_threshold
    assert "classification/accuracy" in run.data.metrics  # feedback labels joined by request id
    assert run.data.tags["fairness"] == "within limits" and "live fairness within the gate's limits" in result.summary
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "report")}
    assert f"report/{result.report_path.name}" in artifacts and "report/findings.json" in artifacts
    # the drift report, the prediction drift report and the classification report
    assert _workspace_snapshots(settings.workspace_dir, model_name) == 3
    experiment = client.get_experiment_by_name(settings.policy.experiment).experiment_id
    assert result.mlflow_run_url == f"{mlflow_server}/#/experiments/{experiment}/runs/{result.mlflow_run_id}"


def test_shifted_traffic_drifts_and_requests_one_retrain(mlflow_server, trained, model_name, tmp_path):
    settings = _settings(mlflow_server, model_name, tmp_path)
    client = MlflowClient(mlflow_server)
    _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 600, seed=2)))

    first = run_once(settings)

    assert first.verdict is Verdict.DRIFT, first.summary
    assert first.retrain_requested and "retrain requested" in first.summary
    assert {"income", "credit_score", "debt_ratio"} <= set(first.versions[0].drifted_columns)
    requested = last_retrain_request(client, settings.policy.experiment, model_name)
    assert requested is not None and requested.is_open and requested.run_id == first.mlflow_run_id

    # The next interval: new drifted rows only (the window starts after the last report), same episode.
    later = datetime.now(UTC) + timedelta(seconds=5)
    _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 400, seed=3)), start=later)
    second = run_once(settings)

    assert second.verdict is Verdict.DRIFT
    assert second.versions[0].rows == 400
    assert not second.retrain_requested and "already requested" in second.summary
    tags = client.get_run(first.mlflow_run_id).data.tags  # the request lives on the report run that asked
    assert tags[STATUS] == OPEN and tags[REQUESTED_AT] == requested.requested_at.isoformat()
    assert not any(key.startswith("retrain") for key in client.get_registered_model(model_name).tags)
    assert client.get_run(second.mlflow_run_id).data.tags["retrain_requested"] == "false"


def test_too_little_traffic_is_not_judged_and_stays_in_the_window(mlflow_server, trained, model_name, tmp_path):
    settings = _settings(mlflow_server, model_name, tmp_path)
    _log_traffic(settings.inference_log_dir, model_name, _holdout_draw(trained, 50, seed=4))

    thin = run_once(settings)

    assert thin.verdict is Verdict.NOT_ENOUGH_DATA
    assert "50 rows in the window, 200 needed" in thin.summary
    assert thin.mlflow_run_id is None and thin.report_path is None

    later = datetime.now(UTC) + timedelta(seconds=5)
    _log_traffic(settings.inference_log_dir, model_name, _holdout_draw(trained, 300, seed=5), start=later)
    enough = run_once(settings)

    assert enough.verdict is Verdict.OK
    assert enough.versions[0].rows == 350  # the thin window's rows were kept for this one


def test_version_without_reference_and_bad_lines_give_a_clear_verdict(mlflow_server, trained, model_name, tmp_path):
    settings = _settings(mlflow_server, model_name, tmp_path)
    _log_traffic(settings.inference_log_dir, model_name, _holdout_draw(trained, 300, seed=6), version="99")
    with (settings.inference_log_dir / "torn.jsonl").open("w") as handle:
        handle.write('{"request_id": "x", "timestamp": "2026-11-27T07:00:00+00:00", "model_na')

    result = run_once(settings)

    assert result.verdict is Verdict.NOT_ENOUGH_DATA
    assert "v99: no reference" in result.summary and "not in the registry" in result.summary
    assert "1 unreadable log lines skipped" in result.summary


def _run_job_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.monitoring", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_exit_codes_and_json_only_stdout(mlflow_server, trained, model_name, tmp_path):
    env = {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "INFERENCE_LOG_DIR": str(tmp_path / "inference"),
        "MONITORING_WORKSPACE": str(tmp_path / "workspace"),
        "MONITORING_REPORTS_DIR": str(tmp_path / "reports"),
        "MODEL_NAME": model_name,
    }
    nothing = _run_job_cli(env)

    assert nothing.returncode == Verdict.NOT_ENOUGH_DATA.exit_code, nothing.stderr
    *log_lines, summary = nothing.stdout.splitlines()
    assert [json.loads(line)["event"] for line in log_lines] == ["monitoring.scan", "monitoring.result"]
    assert summary.startswith(f"NOT ENOUGH DATA: {model_name}: no logged rows") and "does not exist" in summary

    request_ids = _log_traffic(tmp_path / "inference", model_name, _shifted(_holdout_draw(trained, 400, seed=8)))
    drift = _run_job_cli(env)

    assert drift.returncode == Verdict.DRIFT.exit_code, drift.stderr
    *log_lines, summary = drift.stdout.splitlines()
    events = [json.loads(line) for line in log_lines]  # MLflow's own prints would break this
    report = next(e for e in events if e["event"] == "monitoring.report")
    assert report["rows"] == 400 and report["verdict"] == "DRIFT" and report["report_run_id"]
    assert summary.startswith(f"DRIFT: {model_name} v1:")
    assert "Traceback" not in nothing.stderr + drift.stderr

    # One prediction, followed from its request id to the report that judged it.
    traced = _run_job_cli(env, "--trace", request_ids[123])
    assert traced.returncode == 0, traced.stderr
    trace = json.loads(traced.stdout)
    assert trace["model_version"] == "1" and trace["report_run_id"] == report["report_run_id"]
    assert trace["verdict"] == "DRIFT" and trace["report_run_url"].endswith(report["report_run_id"])
    unknown = _run_job_cli(env, "--trace", "no-such-request")
    assert unknown.returncode == 1 and "not in the inference log" in unknown.stderr


def test_run_monitor_maps_the_pipeline_config(mlflow_server, trained, model_name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    config = PipelineConfig(
        model_name=model_name,
        data=DataConfig(target=TARGET, numeric_features=NUMERIC, categorical_features=CATEGORICAL),
        platform=PlatformConfig(state_dir=tmp_path / "state"),
    )
    _log_traffic(config.platform.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 400, seed=7)))

    result = run_monitor(config, on_drift="none")

    assert result.verdict == "DRIFT" and not result.retrain_requested
    assert "no action (on_drift=none)" in result.summary
    assert result.report_path.parent == tmp_path / "state" / "monitoring" / "reports"
    assert last_retrain_request(MlflowClient(mlflow_server), config.monitoring.experiment, model_name) is None
    log_lines = (tmp_path / "state" / "logs" / "monitoring.log").read_text().splitlines()
    report_events = [json.loads(line) for line in log_lines if '"monitoring.report"' in line]
    assert report_events[-1]["report_run_id"] == result.mlflow_run_id


def test_evidently_ui_serves_the_workspace_idempotently(tmp_path):
    config = PipelineConfig(
        model_name="ui-test",
        data=DataConfig(target=TARGET, numeric_features=NUMERIC, categorical_features=CATEGORICAL),
        platform=PlatformConfig(state_dir=tmp_path / "state", monitoring_ui_port=free_port()),
    )
    try:
        url = start_monitoring_ui(config)
        pid = ui_process(config).pid()

        assert httpx.get(f"{url}/api/version", timeout=5).status_code == 200
        assert start_monitoring_ui(config) == url and ui_process(config).pid() == pid  # already up: same process
        # A report the job adds to the workspace shows up in the running UI, no restart needed.
        schema = FeatureSchema(numerical=NUMERIC, categorical=CATEGORICAL)
        table = make_loans(1500, seed=3)[schema.columns]
        snapshot = run_drift_report(prepare(table, table, schema), drift_share_threshold=0.3, min_rows=200)
        add_to_workspace(monitor_settings(config).workspace_dir, "ui-test", snapshot, "v1 test window")
        projects = httpx.get(f"{url}/api/projects", timeout=5).json()
        assert [p["name"] for p in projects] == ["ui-test"]
        snapshots = httpx.get(f"{url}/api/projects/{projects[0]['id']}/snapshots", timeout=5).json()
        assert [s["name"] for s in snapshots] == ["v1 test window"]
        # The project's dashboard plots the drift share; the UI answers the panel's series query.
        project_id = projects[0]["id"]
        dashboard = httpx.get(f"{url}/api/v2/dashboards/{project_id}", timeout=5).json()
        assert "Share of drifted columns" in [panel["title"] for panel in dashboard["panels"]]
        series = httpx.post(
            f"{url}/api/v2/snapshots/{project_id}/data_series_batch",
            json={"series_filter": [{"tags": [], "metadata": {}, "metric": "evidently:metric_v2:DriftedColumnsCount",
                                     "metric_labels": {"value_type": "share"}}]},
            timeout=10,
        ).json()
        assert series["series"][0]["values"] == [0.0]  # the reference against itself: nothing drifted
        # Per column, the margin past its own threshold: one direction for distances and p-values, none above 0.
        assert "Drift margin per column: past its own threshold, above 0 = drifted" in [
            panel["title"] for panel in dashboard["panels"]]
        margins = httpx.post(
            f"{url}/api/v2/snapshots/{project_id}/data_series_batch",
            json={"series_filter": [{"tags": [], "metadata": {}, "metric": f"evidently:metric_v2:{MARGIN_METRIC}",
                                     "metric_labels": {}}]},
            timeout=10,
        ).json()["series"]
        assert {line["params"]["column"] for line in margins} == set(schema.columns)
        assert all(value <= 0 for line in margins for value in line["values"])
        assert ui_process(config).pid_file == tmp_path / "state" / "run" / "monitoring-ui.pid"
        assert (tmp_path / "state" / "logs" / "monitoring-ui.log").exists()
    finally:
        assert stop_monitoring_ui(config)
    assert ui_process(config).pid() is None and not stop_monitoring_ui(config)


def test_loop_beats_every_interval_and_survives_failures(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast on the dead server below
    beat = tmp_path / "monitoring" / "heartbeat"
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = job_logger()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for uri, expected_event in ((mlflow_server, "monitoring.result"), ("http://127.0.0.1:9", "monitoring.error")):
            lines.clear()
            settings = _settings(uri, "loop-model", tmp_path, interval_minutes=0.005)
            stop = threading.Event()
            loop = threading.Thread(target=run_forever, args=(settings, stop))
            loop.start()
            deadline = time.monotonic() + 60
            while lines.count(expected_event) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            loop.join(timeout=30)

            assert not loop.is_alive()
            assert lines.count(expected_event) >= 2, lines  # it went on after the first run
            assert json.loads(beat.read_text())["state"] in {"idle", "error"}
            assert heartbeat_age_s(beat) < 10
    finally:
        logger.removeHandler(handler)


def test_monitor_command_prints_what_it_made_and_exits_with_the_verdict(
    mlflow_server, trained, model_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    state = tmp_path / "state"
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(
        f"model_name: {model_name}\n"
        f"data: {{target: {TARGET}, numeric_features: {NUMERIC}, categorical_features: {CATEGORICAL}}}\n"
        f"platform: {{state_dir: {state}}}\n"
    )
    _log_traffic(state / "inference", model_name, _shifted(_holdout_draw(trained, 300, seed=9)))

    done = CliRunner().invoke(app, ["monitor", "--config", str(config_file), "--on-drift", "none"],
                              env={"COLUMNS": "200"})

    assert done.exit_code == Verdict.DRIFT.exit_code, done.output
    shown = ("DRIFT", model_name, str(state / "monitoring" / "reports"), mlflow_server, "make monitoring-ui")
    for text in shown:
        assert text in done.output
    bad = CliRunner().invoke(app, ["monitor", "--config", str(config_file), "--on-drift", "page-me"])
    assert bad.exit_code == 2 and "'page-me' is not one of" in bad.output


def test_a_feature_gone_missing_is_drift_in_the_summary_and_the_run(mlflow_server, trained, model_name, tmp_path):
    """Item 5: an all-null feature, or one whose missing share jumped, counts as drifted and is recorded so."""
    settings = _settings(mlflow_server, model_name, tmp_path, on_drift="none")
    window = _holdout_draw(trained, 600, seed=11).astype(object)
    window["income"] = None  # the client stopped sending it
    window.iloc[:300, window.columns.get_loc("credit_score")] = None  # half of it lost upstream
    window.iloc[:240, window.columns.get_loc("age")] = None
    _log_traffic(settings.inference_log_dir, model_name, window)

    result = run_once(settings)

    assert result.verdict is Verdict.DRIFT, result.summary
    assert "income (no values), credit_score (missing 50%, reference 0%), age (missing 40%, reference 0%)" in (
        result.summary
    )
    run = MlflowClient(mlflow_server).get_run(result.mlflow_run_id)
    assert run.data.tags["drifted_columns"].split(",")[:3] == ["income", "credit_score", "age"]
    assert run.data.tags["missing_columns"] == "income,credit_score,age"
    assert run.data.metrics["missing_share/income"] == 1.0 and run.data.metrics["missing_share_reference/income"] == 0
    assert run.data.metrics["missing_share/credit_score"] == pytest.approx(0.5)
    assert run.data.metrics["drift_share"] >= 3 / 8


def test_a_failed_upload_leaves_the_window_to_the_next_run(mlflow_server, trained, model_name, tmp_path, monkeypatch):
    """Item 5: `judged` / `window_end` are set when the report run finishes, so a failed run skips nothing."""
    settings = _settings(mlflow_server, model_name, tmp_path)
    client = MlflowClient(mlflow_server)
    _log_traffic(settings.inference_log_dir, model_name, _holdout_draw(trained, 400, seed=12))
    real_upload = MlflowClient.log_artifact

    def failing_upload(self, run_id, local_path, artifact_path=None):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(MlflowClient, "log_artifact", failing_upload)
    with pytest.raises(OSError, match="artifact store unreachable"):
        run_once(settings)
    experiment = client.get_experiment_by_name(settings.policy.experiment).experiment_id
    [failed] = client.search_runs([experiment], filter_string=f"tags.model_name = '{model_name}'")
    assert failed.info.status == "FAILED" and "judged" not in failed.data.tags and "window_end" not in failed.data.tags

    monkeypatch.setattr(MlflowClient, "log_artifact", real_upload)
    retried = run_once(settings)

    assert retried.verdict is Verdict.OK and retried.versions[0].rows == 400  # the same window, judged now
    tags = client.get_run(retried.mlflow_run_id).data.tags
    assert tags["judged"] == "true" and tags["window_end"] == retried.versions[0].window_end.isoformat()


def test_only_the_champions_drift_opens_a_retrain_request(mlflow_server, trained, model_name, tmp_path):
    """Item 6: DRIFT in leftover traffic of a retired version is reported; the champion's opens the request."""
    settings = _settings(mlflow_server, model_name, tmp_path)
    client = MlflowClient(mlflow_server)
    assert _register_like_training(mlflow_server, model_name, trained) == "2"  # v2: tried, rolled back
    _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 300, seed=13)), version="2")
    _log_traffic(settings.inference_log_dir, model_name, _holdout_draw(trained, 600, seed=18), version="1")

    retired = run_once(settings)

    assert retired.verdict is Verdict.DRIFT and not retired.retrain_requested, retired.summary
    assert retired.summary.startswith(f"DRIFT: {model_name} v2:"), retired.summary
    assert "no retrain request: v2 is not @champion (v1 is)" in retired.summary and "also v1 OK" in retired.summary
    assert last_retrain_request(client, settings.policy.experiment, model_name) is None
    assert client.get_run(retired.mlflow_run_id).data.tags["retrain_requested"] == "false"

    later = datetime.now(UTC) + timedelta(seconds=5)
    _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 600, seed=15)), start=later)
    champion = run_once(settings)

    assert champion.verdict is Verdict.DRIFT and champion.retrain_requested, champion.summary
    assert champion.summary.startswith(f"DRIFT: {model_name} v1:")
    request = last_retrain_request(client, settings.policy.experiment, model_name)
    assert request.is_open and (request.model_version, request.data_version) == ("1", trained.data_version)


def test_a_retrain_request_is_closed_only_by_a_model_trained_after_it_on_new_data(
    mlflow_server, trained, model_name, tmp_path
):
    """Item 6: a redeploy of an older model, or a retrain on the same data, leaves the request open."""
    settings = _settings(mlflow_server, model_name, tmp_path)
    client = MlflowClient(mlflow_server)
    _log_traffic(settings.inference_log_dir, model_name, _shifted(_holdout_draw(trained, 400, seed=16)))
    drifted = run_once(settings)
    assert drifted.retrain_requested

    def close(version: str, audit_run_id: str):
        return close_retrain_request(client, settings.policy.experiment, model_name, released_version=version,
                                     closed_by_run_id=audit_run_id)

    older = _register_like_training(mlflow_server, model_name, trained)  # trained before the drift was seen
    kept = close(older, "audit-1")
    assert not kept.closed and kept.text.startswith(f"left open: v{older} was trained before the request")

    same_data = _train_like_the_release(mlflow_server, model_name)  # retrained now, on the data that drifted
    kept = close(same_data.version, "audit-2")
    assert not kept.closed, kept.text
    assert kept.text.startswith(f"left open: v{same_data.version} was trained on the same data")
    assert last_retrain_request(client, settings.policy.experiment, model_name).is_open

    fresh = tmp_path / "loans-december.csv"
    make_loans(3000, seed=99).to_csv(fresh, index=False)
    new_data = _train_like_the_release(mlflow_server, model_name, source=str(fresh))
    assert new_data.data_version != trained.data_version
    done = close(new_data.version, "audit-3")

    assert done.closed and done.text.startswith("closed by this release"), done.text
    tags = client.get_run(drifted.mlflow_run_id).data.tags
    assert tags[STATUS] == CLOSED and tags[CLOSED_BY] == "audit-3"
    again = close(new_data.version, "audit-4")
    assert (again.closed, again.text) == (False, "none open")
