"""The audit trail's records in MLflow: one finished run per record in the `audit` experiment, and the one
record shape every writer uses (`write_record`): the release steps (`pipelines.audit`) and the stack's monitoring
job (its retrain requests), which ships this file and `services.audit_chain` but never `pipelines`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.audit_chain import (
    MODEL_FIELD,
    RECORD_ARTIFACT,
    SEQUENCE_FIELD,
    SHA256_TAG,
    Appended,
    StoredRecord,
    append,
)
from services.contract import AUDIT_EXPERIMENT  # one for every model's records; a record's model is its MODEL_FIELD

ACTION_FIELD, VERSION_FIELD, OUTCOME_FIELD = "action", "model_version", "outcome"
_PAGE = 1000


class MlflowAuditStore:
    """`services.audit_chain.AuditStore` on an MLflow tracking server."""

    def __init__(self, client: MlflowClient, display_uri: str) -> None:
        self.client, self.display_uri = client, display_uri

    @functools.cached_property
    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(AUDIT_EXPERIMENT)
        if found is not None:
            return found.experiment_id
        with contextlib.suppress(MlflowException):  # another writer may create it first
            return self.client.create_experiment(AUDIT_EXPERIMENT)
        return self.client.get_experiment_by_name(AUDIT_EXPERIMENT).experiment_id

    def url(self, run_id: str) -> str:
        return f"{self.display_uri}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def claims(self, model: str, sequence: int | None = None) -> list[StoredRecord]:
        where = f"tags.`{MODEL_FIELD}` = '{model}'"
        if sequence is not None:
            where += f" and tags.`{SEQUENCE_FIELD}` = '{sequence}'"
        return [StoredRecord(run.info.run_id, dict(run.data.tags), None, run.info.start_time / 1000)
                for run in self._runs(where)]

    def records(self, model: str) -> list[StoredRecord]:
        with tempfile.TemporaryDirectory() as tmp:
            return [StoredRecord(claim.run_id, claim.tags, self._read(claim.run_id, Path(tmp)), claim.written_at)
                    for claim in self.claims(model)]

    def models(self) -> list[str]:
        """Every model with records in the trail."""
        return sorted({run.data.tags[MODEL_FIELD] for run in self._runs("") if MODEL_FIELD in run.data.tags})

    def write(self, record: Mapping[str, str], sha256: str) -> str:
        name = f"{record[MODEL_FIELD]} #{record[SEQUENCE_FIELD]} {record.get(ACTION_FIELD, '')}" \
               f" v{record.get(VERSION_FIELD, '')} {record.get(OUTCOME_FIELD, '')}"
        run = self.client.create_run(self.experiment_id, run_name=name.strip(), tags={**record, SHA256_TAG: sha256})
        try:
            self.client.log_dict(run.info.run_id, dict(record), RECORD_ARTIFACT)
            self.client.set_terminated(run.info.run_id, "FINISHED")
        except BaseException:
            # A run with its digest but no record would be chained onto and break `audit verify` for good.
            with contextlib.suppress(Exception):
                self.client.delete_run(run.info.run_id)
            raise
        return run.info.run_id

    def discard(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def _runs(self, where: str) -> Iterator:
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], where, max_results=_PAGE, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def _read(self, run_id: str, tmp: Path) -> dict[str, str] | None:
        try:
            path = self.client.download_artifacts(run_id, RECORD_ARTIFACT, str(tmp / run_id))
            record = json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError):
            return None
        return record if isinstance(record, dict) and all(isinstance(v, str) for v in record.values()) else None


def write_record(store: MlflowAuditStore, model: str, who: Mapping[str, str], action: str, version: str,
                 outcome: str, **details: str) -> Appended:
    """Append one record to the model's chain: who acted (`who`, at least its `who` field), when, the details,
    then what was done to which version with what outcome (these last win over a detail of the same name)."""
    fields = {**who, "when": datetime.now(UTC).isoformat(), **{key: str(value) for key, value in details.items()},
              ACTION_FIELD: action, VERSION_FIELD: str(version), OUTCOME_FIELD: outcome}
    return append(store, model, fields)
