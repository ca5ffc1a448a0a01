"""Snapshot policies: `copy` stores the table with the run, `reference` stores where it came from and re-reads it,
refusing a source that changed (both digests named) or one that cannot be pinned."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pipelines.config import DataConfig, MonitoringConfig
from pipelines.data import DataError, load_versioned
from pipelines.demo_data import make_loans
from pipelines.digests import file_digest
from pipelines.snapshots import check_policy, load_snapshot, log_dataset, source_tags
from pipelines.sources import Provenance, SourcedTable
from pipelines.status import describe_version
from pipelines.task import task_for
from pipelines.train import TrainResult
from pipelines.views import trained
from services.contract import (
    DATA_SOURCE_KIND_TAG,
    DATA_SOURCE_TAG,
    HOLDOUT_ARTIFACT,
    MONITORING_SAMPLE_ARTIFACT,
    SNAPSHOT_ARTIFACT,
    SNAPSHOT_POLICY_TAG,
    SNAPSHOT_REFERENCE_ARTIFACT,
    TARGET_TAG,
)
from services.monitoring.reference import load_reference
from tests.unit.models import config_for

LOANS = DataConfig(
    target="defaulted", numeric_features=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
    categorical_features=["employment", "region", "purpose"],
)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One MLflow store for the module (creating one takes seconds); each test makes its own runs."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield MlflowClient(uri)
    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def experiment(tracking, request):
    """An experiment per test: MLflow keeps one dataset per name and digest in an experiment."""
    mlflow.set_experiment(request.node.name)


def loans_file(tmp_path, rows: int = 1200):
    path = tmp_path / "loans.parquet"
    frame = make_loans(rows=rows, seed=3)
    frame["day"] = range(len(frame))  # a time column, for the time split
    frame.to_parquet(path, index=False)
    return path


def trained_run(tmp_path, data: DataConfig, **sections) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """A run that logged its dataset as training does; the table and holdout it logged."""
    config = config_for(data, **sections)
    versioned = load_versioned(config)
    _, holdout = task_for(config.task).split_snapshot(versioned.frame, config.data)
    with mlflow.start_run() as run:
        mlflow.set_tags({**source_tags(config.data, versioned.provenance), TARGET_TAG: config.data.target})
        log_dataset(versioned, holdout, config, tmp_path)
    return run.info.run_id, versioned.frame, holdout


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    found, folders = set(), [None]
    while folders:
        for item in client.list_artifacts(run_id, folders.pop()):
            (folders.append(item.path) if item.is_dir else found.add(item.path))
    return found


def recorded(client: MlflowClient, run_id: str, tmp_path) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, SNAPSHOT_REFERENCE_ARTIFACT, str(tmp_path / "dl")))
                      .read_text())


def test_copy_stores_the_table_and_the_holdout(tracking, tmp_path):
    data = LOANS.model_copy(update={"source": str(loans_file(tmp_path))})
    run_id, table, holdout = trained_run(tmp_path, data)

    assert {SNAPSHOT_ARTIFACT, HOLDOUT_ARTIFACT} <= artifacts(tracking, run_id)
    pd.testing.assert_frame_equal(load_snapshot(run_id), table)
    pd.testing.assert_frame_equal(load_snapshot(run_id, HOLDOUT_ARTIFACT), holdout)


@pytest.mark.parametrize("split", ["stratified", "random", "time"])
def test_reference_stores_no_table_and_rebuilds_the_same_table_and_holdout(tracking, tmp_path, split):
    path = loans_file(tmp_path)
    data = LOANS.model_copy(update={"source": str(path), "snapshot": "reference", "split": split,
                                    "time_column": "day" if split == "time" else None})
    run_id, table, holdout = trained_run(tmp_path, data)

    logged = artifacts(tracking, run_id)
    assert SNAPSHOT_ARTIFACT not in logged and HOLDOUT_ARTIFACT not in logged
    record = recorded(tracking, run_id, tmp_path)
    assert record["provenance"] == {"kind": "file", "uri": str(path), "proof": {path.name: record["provenance"]
                                                                               ["proof"][path.name]}}
    assert len(record["provenance"]["proof"][path.name]) == 64  # the file's sha256
    assert len(record["data_version"]) == 64 and record["data"]["source"] == str(path)
    # The same rows in the same order, so the seeded split gives the very holdout training had.
    pd.testing.assert_frame_equal(load_snapshot(run_id), table)
    pd.testing.assert_frame_equal(load_snapshot(run_id, HOLDOUT_ARTIFACT), holdout)


def test_a_changed_source_is_refused_naming_both_digests(tracking, tmp_path):
    """A local file is pinned by its sha256: a changed file is refused before its table is even parsed."""
    path = loans_file(tmp_path)
    run_id, table, _ = trained_run(tmp_path, LOANS.model_copy(update={"source": str(path), "snapshot": "reference"}))
    before = file_digest(path)
    changed = pd.read_parquet(path)
    changed.loc[len(changed) - 1, "income"] += 1.0  # one cell, in the last row
    changed.to_parquet(path, index=False)

    with pytest.raises(DataError) as refused:
        load_snapshot(run_id)
    message = str(refused.value)
    assert str(path) in message and f"sha256 {before} then, {file_digest(path)} now" in message


def test_a_removed_source_is_refused_naming_it(tracking, tmp_path):
    path = loans_file(tmp_path)
    run_id, _, _ = trained_run(tmp_path, LOANS.model_copy(update={"source": str(path), "snapshot": "reference"}))
    path.unlink()

    with pytest.raises(DataError, match=f"{path}.*cannot be re-read.*file not found"):
        load_snapshot(run_id, HOLDOUT_ARTIFACT)


def test_the_demo_table_can_be_referenced_by_the_call_that_makes_it(tracking, tmp_path):
    run_id, table, _ = trained_run(tmp_path, LOANS.model_copy(update={"snapshot": "reference"}))

    pd.testing.assert_frame_equal(load_snapshot(run_id), table)


def test_the_monitoring_job_reads_a_bounded_sample_of_a_referenced_table(tracking, tmp_path):
    data = LOANS.model_copy(update={"source": str(loans_file(tmp_path, rows=3000)), "snapshot": "reference"})
    run_id, table, _ = trained_run(tmp_path, data, monitoring=MonitoringConfig(max_sample_rows=1000))
    tracking.create_registered_model("m")
    version = tracking.create_model_version("m", f"runs:/{run_id}/model", run_id).version

    reference = load_reference(tracking, "m", version, max_rows=50_000)

    assert MONITORING_SAMPLE_ARTIFACT in artifacts(tracking, run_id)
    assert len(reference.frame) == 1000 and list(reference.frame.columns) == LOANS.features
    assert reference.target_values is not None and reference.target_values.isin(table["defaulted"]).all()
    rows = table.merge(reference.frame.assign(defaulted=reference.target_values.to_numpy()), how="inner")
    assert len(rows) >= 1000  # every sampled row is a row of the table


def unpinnable_query(config):
    return SourcedTable(make_loans(rows=400), Provenance(
        "sql", "postgresql://db.example:5432/loans", {"query": "select * from loans"},
        unpinnable="a plain SQL query gives whatever the table holds when it runs; the database gives no "
                   "snapshot point to re-read it at"))


def test_an_unpinnable_source_is_refused_under_reference_before_anything_is_trained(monkeypatch):
    monkeypatch.setattr("pipelines.data.read_source", unpinnable_query)
    with pytest.raises(DataError, match=r"data.snapshot: reference .*postgresql://db.example:5432/loans.*a plain "
                                        r"SQL query.*use data.snapshot: copy"):
        load_versioned(config_for(LOANS.model_copy(update={"snapshot": "reference"})))
    assert len(load_versioned(config_for(LOANS)).frame) == 400  # under copy, the table is stored: fine


def test_the_policy_check_passes_a_pinnable_source_under_either_policy():
    for policy in ("copy", "reference"):
        check_policy(LOANS.model_copy(update={"snapshot": policy}), Provenance("file", "/d/x.parquet", {"x": "ab"}))


def test_lineage_tags_and_status_name_source_kind_and_policy():
    tags = source_tags(LOANS.model_copy(update={"snapshot": "reference"}),
                        Provenance("object", "s3://lake/loans.parquet", {"loans.parquet": "v3"}))

    assert tags == {DATA_SOURCE_TAG: "s3://lake/loans.parquet", DATA_SOURCE_KIND_TAG: "object",
                    SNAPSHOT_POLICY_TAG: "reference"}
    assert describe_version({**tags, "task": "classification"}).endswith(
        "data s3://lake/loans.parquet (object, reference)")


def test_lineage_input_names_the_source_of_every_kind(tracking, tmp_path):
    path = loans_file(tmp_path)
    for data in (LOANS, LOANS.model_copy(update={"source": str(path), "snapshot": "reference"})):
        run_id, _, _ = trained_run(tmp_path, data)
        (found,) = tracking.get_run(run_id).inputs.dataset_inputs
        assert json.loads(found.dataset.source)["uri"] == load_versioned(config_for(data)).provenance.uri
        assert len(found.dataset.digest) == 32


def test_the_trained_table_says_how_the_snapshot_was_kept():
    result = TrainResult(run_id="r", model_version="1", data_version="d", metrics={})
    for policy, artifact in (("copy", SNAPSHOT_ARTIFACT), ("reference", SNAPSHOT_REFERENCE_ARTIFACT)):
        table = trained(config_for(LOANS.model_copy(update={"snapshot": policy})), result)
        rows = dict(zip(table.columns[0].cells, table.columns[1].cells, strict=True))
        assert rows["snapshot"].startswith(f"{policy} ({artifact}")


def test_an_unreadable_reference_record_is_a_data_error_naming_the_run(tracking, tmp_path):
    with mlflow.start_run() as run:
        mlflow.set_tag(SNAPSHOT_POLICY_TAG, "reference")
        mlflow.log_text('{"provenance": {"kind": "file"}}', SNAPSHOT_REFERENCE_ARTIFACT)

    with pytest.raises(DataError, match=f"{SNAPSHOT_REFERENCE_ARTIFACT} of run {run.info.run_id} is not a snapshot"):
        load_snapshot(run.info.run_id)
