"""Two models on one local platform, end to end: the demo's classifier and models/bike-rentals' regression are
trained, gated and deployed side by side through the CLI against the session's MLflow server, each behind the
one local front on its own real bento server; both answer on `/models/<name>/predict`, `/predict` answers for the
default model (the first deployed: neither is named by the demo config here), and a second release of one model
leaves the other's server process and answered version as they were. `make status` then shows both, each with
its aliases, local server and monitoring (a DRIFT report with a retrain request recorded as the job does)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from pipelines import platform
from pipelines.config import DEFAULT_CONFIG_PATH, PipelineConfig, load_config
from pipelines.config_files import MODELS_DIR
from pipelines.local import stop_serving
from pipelines.registry import CHAMPION, aliases_of, connect
from pipelines.serving_state import live_release, model_url, slot_process
from pipelines.status import platform_status
from services.contract import (
    REPORT_MODEL_TAG,
    REPORT_VERDICT_TAG,
    REPORT_VERSION_TAG,
    RETRAIN_OPEN,
    RETRAIN_REQUESTED_AT_TAG,
    RETRAIN_REQUESTED_TAG,
    RETRAIN_STATUS_TAG,
)
from tests.example_runs import check_response, holdout_rows
from tests.integration.conftest import LocalPlatform
from tests.integration.test_release_loop import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CLASSIFIER, REGRESSION = "side-loans", "bike-rentals"  # not the demo's name: the release loop owns its registry entry
ASKED_AT = "2026-12-03T10:00:00+00:00"


def _config(raw: dict, name: str, local_platform: LocalPlatform, shared: dict, state: Path) -> Path:
    """A model's config on this test's platform: one state dir and front port for both, the session's MLflow."""
    raw = {**raw, "model_name": name, "platform": shared, "tracking": {"uri": local_platform.config.tracking.uri},
           "serving": {**raw.get("serving", {}), "workers": 1}}
    path = state / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _report_drift(config: PipelineConfig, version: str) -> None:
    """A monitoring report run as the job records one on DRIFT with a retrain request (services/monitoring)."""
    client = connect(config)
    found = client.get_experiment_by_name(config.monitoring.experiment)
    experiment = found.experiment_id if found else client.create_experiment(config.monitoring.experiment)
    client.create_run(experiment, tags={
        REPORT_MODEL_TAG: config.model_name, REPORT_VERSION_TAG: version, REPORT_VERDICT_TAG: "DRIFT",
        RETRAIN_REQUESTED_TAG: "true", RETRAIN_REQUESTED_AT_TAG: ASKED_AT, RETRAIN_STATUS_TAG: RETRAIN_OPEN})


def _run(*args: str, config: Path) -> str:
    code, output = cli(*args, config=config)
    assert code == 0, f"`pipelines {' '.join(args)}` exited {code}:\n{output}"
    return output


def _predict(url: str, config: PipelineConfig) -> dict:
    """The answer at `url` to three rows of the model's champion's eval set."""
    client = connect(config)
    rows, _ = holdout_rows(config, client, aliases_of(client, config.model_name)[CHAMPION], 3)
    reply = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_two_models_serve_side_by_side_and_release_independently(local_platform: LocalPlatform, tmp_path: Path):
    shared = {"state_dir": str(tmp_path), "mlflow_port": local_platform.config.platform.mlflow_port,
              "serving_port": platform.free_port(), "monitoring_ui_port": platform.free_port()}
    demo = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    demo["model"]["params"]["n_estimators"] = 40  # same pipeline, quicker fits
    rentals = yaml.safe_load((MODELS_DIR / REGRESSION / "pipeline.yaml").read_text())
    rentals["data"]["source"] = str(MODELS_DIR / REGRESSION / "rentals.csv")
    paths = {CLASSIFIER: _config(demo, CLASSIFIER, local_platform, shared, tmp_path),
             REGRESSION: _config(rentals, REGRESSION, local_platform, shared, tmp_path)}
    configs = {name: load_config(path) for name, path in paths.items()}
    try:
        for name in (CLASSIFIER, REGRESSION):
            _run("train", config=paths[name])
            _run("deploy", config=paths[name])
        front = configs[CLASSIFIER].platform.serving_url
        answered = {name: _predict(model_url(config), config) for name, config in configs.items()}
        check_response(answered[CLASSIFIER], "classification", {0, 1})
        check_response(answered[REGRESSION], "regression", set())
        assert _predict(front, configs[CLASSIFIER])["model_version"] == answered[CLASSIFIER]["model_version"]
        unknown = httpx.post(f"{front}/models/forecast/predict", json={"rows": []}, timeout=10)
        assert unknown.status_code == 404 and unknown.json()["models"] == sorted(configs)

        regression = configs[REGRESSION]
        pid = slot_process(regression, live_release(regression).slot).pid()
        _run("train", config=paths[CLASSIFIER])
        _run("deploy", config=paths[CLASSIFIER])
        again = _predict(model_url(configs[CLASSIFIER]), configs[CLASSIFIER])
        assert int(again["model_version"]) == int(answered[CLASSIFIER]["model_version"]) + 1
        assert slot_process(regression, live_release(regression).slot).pid() == pid
        assert _predict(model_url(regression), regression)["model_version"] == answered[REGRESSION]["model_version"]

        status = _run("status", config=paths[REGRESSION])
        assert f"Model {CLASSIFIER}" in status and f"Model {REGRESSION}" in status
        _report_drift(regression, answered[REGRESSION]["model_version"])
        found = platform_status(regression).models
        assert found[REGRESSION]["monitoring"] == f"DRIFT on v{answered[REGRESSION]['model_version']}"
        assert found[REGRESSION]["retrain request"].startswith(f"open since {ASKED_AT}")
        assert found[CLASSIFIER]["@champion"].startswith(f"v{again['model_version']} (classification")
        assert found[CLASSIFIER]["local"].startswith(f"{model_url(configs[CLASSIFIER])} ready")
    finally:
        stop_serving(configs[CLASSIFIER])
