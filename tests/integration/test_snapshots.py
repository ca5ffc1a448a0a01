"""`data.snapshot: reference` through the CLI against the session's MLflow: a release keeps no copy of the table,
the gate, the deploy and `make reproduce` re-read the pinned source, and a changed source is refused.

Each case has a model, a state dir and a serving port of its own, so the release loop's model is untouched.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines import platform
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.demo_data import make_loans
from pipelines.digests import file_digest
from pipelines.local import stop_serving
from pipelines.registry import aliases_of, connect
from services.contract import (
    DATA_SOURCE_KIND_TAG,
    DATA_SOURCE_TAG,
    HOLDOUT_ARTIFACT,
    MONITORING_SAMPLE_ARTIFACT,
    SNAPSHOT_ARTIFACT,
    SNAPSHOT_POLICY_TAG,
    SNAPSHOT_REFERENCE_ARTIFACT,
)
from tests.status_rows import model_row

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


class Release:
    """The CLI on a config of the session's platform with its own model, state dir, serving port and data."""

    def __init__(self, local_platform, tmp_path: Path, source: str) -> None:
        raw = yaml.safe_load(yaml.safe_dump(local_platform.raw))
        raw["model_name"] = f"snapshots-{uuid.uuid4().hex[:6]}"
        raw["data"].update(source=source, snapshot="reference")
        # `make status` asks the session's MLflow process (its state dir) about this model.
        self.status_path = tmp_path / "status.yaml"
        self.status_path.write_text(yaml.safe_dump(raw))
        raw["platform"].update(state_dir=str(tmp_path / "state"), serving_port=platform.free_port())
        self.path = tmp_path / "reference.yaml"
        self.path.write_text(yaml.safe_dump(raw))
        self.config = load_config(self.path)
        self.client = connect(self.config)

    def run(self, *args: str, expect: int = 0, config: Path | None = None) -> str:
        result = CliRunner().invoke(app, [*args, "--config", str(config or self.path)])
        crash = result.exception if not isinstance(result.exception, SystemExit) else None
        output = result.output + (f"\nuncaught: {crash!r}" if crash else "")
        assert result.exit_code == expect, f"`pipelines {' '.join(args)}` exited {result.exit_code}:\n{output}"
        assert "Traceback" not in output, output
        return output

    def run_of(self, version: str) -> str:
        return self.client.get_model_version(self.config.model_name, version).run_id

    def artifacts(self, version: str) -> set[str]:
        found, folders, run_id = set(), [None], self.run_of(version)
        while folders:
            for item in self.client.list_artifacts(run_id, folders.pop()):
                (folders.append(item.path) if item.is_dir else found.add(item.path))
        return found


@pytest.fixture(autouse=True)
def wide_output(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # a table's long values (paths, URIs) stay on one line


def test_a_release_from_a_referenced_file_and_a_changed_file_refused(local_platform, tmp_path):
    path = tmp_path / "loans.parquet"
    make_loans().to_parquet(path, index=False)
    release = Release(local_platform, tmp_path, str(path))
    try:
        assert "reference (" in release.run("train")
        output = release.run("deploy")  # gate on the rebuilt holdout, smoke rows from it, serving
        assert "gate passed" in output and aliases_of(release.client, release.config.model_name) == {"champion": "1"}
        logged = release.artifacts("1")
        assert {SNAPSHOT_REFERENCE_ARTIFACT, MONITORING_SAMPLE_ARTIFACT} <= logged
        assert not {SNAPSHOT_ARTIFACT, HOLDOUT_ARTIFACT} & logged  # no copy of the table in MLflow
        tags = release.client.get_model_version(release.config.model_name, "1").tags
        assert (tags[DATA_SOURCE_TAG], tags[DATA_SOURCE_KIND_TAG], tags[SNAPSHOT_POLICY_TAG]) == (
            str(path), "file", "reference")
        (lineage,) = release.client.get_run(release.run_of("1")).inputs.dataset_inputs
        assert str(path) in lineage.dataset.source

        release.run("train")
        gated = release.run("validate")  # v2 against @champion v1: both snapshots re-read
        assert "vs champion v1" in gated and "gate passed" in gated
        status = release.run("status", config=release.status_path)
        champion_row = model_row(status, release.config.model_name, "@champion")
        assert f"data {path} (file, reference)" in champion_row
        assert "identical metrics" in release.run("reproduce", "1")

        recorded = file_digest(path)
        changed = make_loans()
        changed.loc[len(changed) - 1, "income"] += 1.0  # one cell
        changed.to_parquet(path, index=False)
        refused = release.run("reproduce", "1", expect=2)
        said = " ".join(refused.split())  # the CLI wraps long lines
        assert str(path) in said and f"sha256 {recorded} then, {file_digest(path)} now" in said, refused
    finally:
        stop_serving(release.config)


def test_a_referenced_s3_object_is_re_read_at_its_pinned_version(local_platform, tmp_path, s3_server, monkeypatch):
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.create_bucket(f"snapshots-{uuid.uuid4().hex[:8]}", versioned=True)
    table = tmp_path / "loans.parquet"
    make_loans().to_parquet(table, index=False)
    s3_server.client().upload_file(str(table), bucket, "loans.parquet")
    release = Release(local_platform, tmp_path, f"s3://{bucket}/loans.parquet")

    release.run("train")
    tags = release.client.get_model_version(release.config.model_name, "1").tags
    assert (tags[DATA_SOURCE_TAG], tags[DATA_SOURCE_KIND_TAG]) == (f"s3://{bucket}/loans.parquet", "object")
    assert not {SNAPSHOT_ARTIFACT, HOLDOUT_ARTIFACT} & release.artifacts("1")
    make_loans(seed=11).to_parquet(table, index=False)  # the object is overwritten: a new version of it
    s3_server.client().upload_file(str(table), bucket, "loans.parquet")

    assert "identical metrics" in release.run("reproduce", "1")  # read at the version trained on
