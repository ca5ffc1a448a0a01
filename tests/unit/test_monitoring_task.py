"""Monitoring per task (issue 19): the task read with the reference, prediction drift against the training target,
and quality with feedback labels by the task's Evidently preset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines.demo_data import make_loans
from services.contract import CONFIG_ARTIFACT, REGRESSION, SNAPSHOT_ARTIFACT, TARGET_TAG
from services.inference_record import InferenceRecord
from services.monitoring.drift import Verdict
from services.monitoring.fairness import FairnessSettings
from services.monitoring.feedback import Feedback
from services.monitoring.inference_log import VersionTraffic
from services.monitoring.judge import Judged, judge
from services.monitoring.records import WindowRecord, record_in_mlflow
from services.monitoring.reference import FeatureSchema, Reference, ReferenceMissing, load_reference
from services.monitoring.settings import MonitorSettings
from services.monitoring.summary import version_summary

START = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
LOANS = FeatureSchema(numerical=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
                      categorical=["employment", "region", "purpose"])
DEMAND = FeatureSchema(numerical=["price", "temperature"], categorical=["store"])


@pytest.fixture
def settings(tmp_path):
    return MonitorSettings(tracking_uri="http://mlflow.invalid", model_name="demand",
                           inference_log_dir=tmp_path / "log", workspace_dir=tmp_path / "workspace",
                           reports_dir=tmp_path / "reports", heartbeat_file=tmp_path / "heartbeat")


def demand(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"price": rng.uniform(1, 10, rows), "temperature": rng.normal(20, 5, rows),
                          "store": rng.choice(["a", "b", "c"], rows)})
    return frame.assign(units=100 - 6 * frame["price"] + frame["temperature"] + rng.normal(0, 3, rows))


def as_feedback(labels: dict) -> dict:
    return {key: Feedback(label) for key, label in labels.items()}


def traffic(features: pd.DataFrame, predictions: list[object], version: str = "2") -> VersionTraffic:
    records = [InferenceRecord(f"req-{i}", 0, START + timedelta(seconds=i), "m", version, row, prediction)
               for i, (row, prediction) in enumerate(zip(features.to_dict("records"), predictions, strict=True))]
    return VersionTraffic(version, len(records), START, START + timedelta(seconds=len(records) - 1), records)


def regression_reference() -> Reference:
    frame = demand(1500, seed=1)
    return Reference("2", "train-run", "units", DEMAND, frame[DEMAND.columns], task=REGRESSION,
                     target_values=frame["units"])


def test_a_regression_window_with_feedback_gets_regression_quality(settings):
    current = demand(400, seed=2)
    served = (current["units"] + np.random.default_rng(3).normal(0, 2, 400)).round(2).tolist()
    labels = {(f"req-{i}", 0): float(units) for i, units in enumerate(current["units"][:300])}

    judged = judge(settings, traffic(current[DEMAND.columns], served), regression_reference(),
                   feedback=lambda wanted: as_feedback(labels))

    assert isinstance(judged, Judged) and judged.quality is not None and judged.quality.task == REGRESSION
    truth, predicted = current["units"][:300].to_numpy(), np.asarray(served[:300])
    assert judged.quality.metrics["mae"] == pytest.approx(np.abs(truth - predicted).mean(), rel=1e-6)
    assert judged.quality.metrics["rmse"] == pytest.approx(np.sqrt(((truth - predicted) ** 2).mean()), rel=1e-6)
    assert {"r2score", "mape", "meanerror", "absmaxerror"} <= judged.quality.metrics.keys()
    assert judged.prediction is not None and not judged.prediction.drift.drifted  # it answers like the target


def test_errors_too_constant_for_evidentlys_histogram_skip_quality_not_the_run(settings):
    current = demand(400, seed=2)
    served = (current["units"] + 80).tolist()  # off by one amount: Evidently 0.7.23 cannot bin the errors
    labels = {(f"req-{i}", 0): float(units) for i, units in enumerate(current["units"])}

    judged = judge(settings, traffic(current[DEMAND.columns], served), regression_reference(),
                   feedback=lambda wanted: as_feedback(labels))

    assert isinstance(judged, Judged) and judged.quality is None and judged.prediction is not None


def test_regression_predictions_shifted_far_drift_apart_from_the_features(settings):
    current = demand(400, seed=4)
    shifted = (current["units"] + 80).tolist()  # the features are as trained on; the answers are not

    judged = judge(settings, traffic(current[DEMAND.columns], shifted), regression_reference(),
                   feedback=lambda wanted: {})

    assert judged.verdict is Verdict.OK and judged.findings.drift_share == 0.0  # the verdict is the features'
    assert judged.prediction.drift.drifted and judged.prediction.drift.method == "ks"
    assert "; predictions drifted from the training target (ks " in version_summary(settings, judged)
    assert judged.quality is None  # no feedback yet


def test_classification_prediction_drift_compares_classes(settings):
    loans = make_loans(1500, seed=1)
    reference = Reference("3", "train-run", "defaulted", LOANS, loans.drop(columns="defaulted"),
                          target_values=loans["defaulted"])
    current = make_loans(400, seed=5)
    features = current.drop(columns="defaulted")

    like = judge(settings, traffic(features, current["defaulted"].tolist()), reference, feedback=lambda wanted: {})
    always_yes = judge(settings, traffic(features, [1] * 400), reference, feedback=lambda wanted: {})

    assert not like.prediction.drift.drifted and like.prediction.drift.method == "chisquare"
    assert always_yes.prediction.drift.drifted and always_yes.verdict is Verdict.OK
    assert "predictions in line with the training target" in version_summary(settings, like)
    # A reference whose snapshot had no target column: nothing to compare, said nowhere.
    blind = judge(settings, traffic(features, [1] * 400), Reference("3", "r", "defaulted", LOANS, reference.frame),
                  feedback=lambda wanted: {})
    assert blind.prediction is None and "predictions" not in version_summary(settings, blind)


@pytest.fixture
def client(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def registered(client: MlflowClient, tmp_path, frame: pd.DataFrame, target: str, config: dict | None) -> str:
    experiment = client.create_experiment("train", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment, tags={TARGET_TAG: target}).info.run_id
    snapshot = tmp_path / "snapshot.parquet"
    frame.to_parquet(snapshot)
    client.log_artifact(run_id, str(snapshot), SNAPSHOT_ARTIFACT.rsplit("/", 1)[0])
    if config is not None:
        client.log_text(run_id, json.dumps(config), CONFIG_ARTIFACT)
    client.create_registered_model("m")
    return client.create_model_version("m", f"runs:/{run_id}/model", run_id).version


def test_the_task_comes_with_the_reference_and_older_runs_are_classification(client, tmp_path):
    loans = make_loans(300, seed=1)
    older = {"data": {"numeric_features": LOANS.numerical, "categorical_features": LOANS.categorical}}
    version = registered(client, tmp_path, loans, "defaulted", older)  # recorded before `task` existed

    reference = load_reference(client, "m", version, max_rows=200)

    assert reference.task == "classification" and list(reference.frame.columns) == LOANS.columns
    assert len(reference.target_values) == 200 and set(reference.target_values) <= {0, 1}


def test_a_regression_run_is_judged_as_regression_and_an_unknown_task_is_named(client, tmp_path):
    config = {"task": REGRESSION, "data": {"numeric_features": DEMAND.numerical,
                                           "categorical_features": DEMAND.categorical}}
    version = registered(client, tmp_path, demand(300, seed=1), "units", config)
    assert load_reference(client, "m", version, max_rows=500).task == REGRESSION

    run_id = client.get_model_version("m", version).run_id
    client.log_text(run_id, json.dumps({**config, "task": "ranking"}), CONFIG_ARTIFACT)
    with pytest.raises(ReferenceMissing, match="records task 'ranking'"):
        load_reference(client, "m", version, max_rows=500)


def test_the_report_run_carries_the_task_prediction_drift_and_quality(client, settings, tmp_path):
    # Its artifacts under tmp_path: a SQLite store's default artifact root is ./mlruns, in the checkout.
    client.create_experiment(settings.policy.experiment, artifact_location=(tmp_path / "reports").as_uri())
    current = demand(400, seed=2)
    labels = {(f"req-{i}", 0): float(units) for i, units in enumerate(current["units"])}
    served = current["units"] + 80 + np.random.default_rng(5).normal(0, 1, 400)
    judged = judge(settings, traffic(current[DEMAND.columns], served.tolist()), regression_reference(),
                   feedback=lambda wanted: as_feedback(labels))

    run_id = record_in_mlflow(client, settings, WindowRecord(judged, "s", _html(settings, judged), []),
                              skipped_lines=0)

    run = client.get_run(run_id)
    assert run.data.tags["task"] == REGRESSION and run.data.tags["prediction_drifted"] == "true"
    assert run.data.tags["prediction_drift_method"] == "ks"
    assert run.data.metrics["prediction_drift_score"] == pytest.approx(judged.prediction.drift.score)
    assert run.data.metrics["regression/mae"] == pytest.approx(80.0, abs=0.5)
    assert "drift_share" in run.data.metrics and not any(k.startswith("classification/") for k in run.data.metrics)


def _html(settings: MonitorSettings, judged: Judged):
    path = settings.reports_dir / "report.html"
    path.parent.mkdir(parents=True)
    path.write_text("<html></html>")
    return path


def test_a_window_biased_against_a_group_reports_its_fairness_over_the_gates_limits(client, settings, tmp_path):
    client.create_experiment(settings.policy.experiment, artifact_location=(tmp_path / "reports").as_uri())
    loans = make_loans(1500, seed=1)
    reference = Reference("3", "train-run", "defaulted", LOANS, loans.drop(columns="defaulted"),
                          target_values=loans["defaulted"],
                          fairness=FairnessSettings(["applicant_group"], {"demographic_parity_difference": 0.1}))
    current = make_loans(400, seed=5)
    truth = current["defaulted"].tolist()
    groups = ["b" if i % 2 else "a" for i in range(400)]
    served = [1 if group == "b" else label for label, group in zip(truth, groups, strict=True)]  # b always refused
    feedback = {(f"req-{i}", 0): Feedback(label, {"applicant_group": group})
                for i, (label, group) in enumerate(zip(truth, groups, strict=True))}

    judged = judge(settings, traffic(current.drop(columns="defaulted"), served), reference,
                   feedback=lambda wanted: feedback)

    assert judged.fairness is not None and not judged.fairness.within_limits
    assert "live fairness OVER the gate's limits on 400 labeled rows" in version_summary(settings, judged)
    run = client.get_run(record_in_mlflow(client, settings, WindowRecord(judged, "s", _html(settings, judged), []),
                                          skipped_lines=0))
    assert run.data.tags["fairness"] == "over limits"
    assert run.data.metrics["fairness/demographic_parity_difference_applicant_group_"] > 0.1
