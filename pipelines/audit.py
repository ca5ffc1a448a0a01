"""The audit trail in MLflow: one finished run per record in the `audit` experiment, append-only and hash-chained.

Every change to the registry or to what serves (train, gate, deploy, canary, rollback, alias moves,
promotion, retirement) writes one record through `AuditTrail.write`, naming the actor (`pipelines.actor`).
The record is the run's `audit.json` artifact; its fields are mirrored as the run's tags (so the MLflow UI
lists and searches them) with its digest and its place in the model's chain (`pipelines.audit_chain`).
Kept in MLflow, records travel with its backups and restores and live where the stack's registry lives.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.actor import actor
from pipelines.audit_chain import (
    MODEL_FIELD,
    RECORD_ARTIFACT,
    SEQUENCE_FIELD,
    SHA256_TAG,
    AuditError,
    ChainReport,
    StoredRecord,
    append,
    verify,
)
from pipelines.config import PipelineConfig
from pipelines.registry import connect, git_sha
from services.contract import AUDIT_EXPERIMENT  # one for every model's records; a record's model is its MODEL_FIELD

ACTION_FIELD, VERSION_FIELD, OUTCOME_FIELD = "action", "model_version", "outcome"
_PAGE = 1000


class MlflowAuditStore:
    """`pipelines.audit_chain.AuditStore` on an MLflow tracking server."""

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


@dataclass(frozen=True)
class Written:
    run_id: str
    url: str
    sequence: int


@dataclass(frozen=True)
class AuditTrail:
    """One model's audit trail: `write` appends a record naming the actor, `verify` checks the chain."""

    store: MlflowAuditStore
    model: str

    @classmethod
    def of(cls, config: PipelineConfig, client: MlflowClient | None = None, model: str | None = None) -> AuditTrail:
        return cls(MlflowAuditStore(client or connect(config), config.tracking.display_uri), model or config.model_name)

    def write(self, action: str, version: str, outcome: str, **details: str) -> Written:
        fields = {**actor(), "when": datetime.now(UTC).isoformat(), "platform_git_sha": git_sha(),
                  **{key: str(value) for key, value in details.items()},
                  ACTION_FIELD: action, VERSION_FIELD: str(version), OUTCOME_FIELD: outcome}
        appended = append(self.store, self.model, fields)
        return Written(appended.run_id, self.store.url(appended.run_id), appended.sequence)

    def write_or_say(self, action: str, version: str, outcome: str, **details: str) -> tuple[Written | None, str]:
        """Write a record after the fact; on failure a note for the step's own message instead of an error.

        A step's own message says what serves and how to recover; a record that cannot be written (most
        often: MLflow is down) is added to it, never raised in its place.
        """
        try:
            return self.write(action, version, outcome, **details), ""
        except Exception as exc:  # whatever it is: the step's own message must still reach the user
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            return None, f" (its audit record '{action} v{version} {outcome}' could not be written: {first_line})"

    def verify(self) -> ChainReport:
        return verify(self.model, self.store.records(self.model))

    def timeline(self, version: str | None = None) -> list[dict[str, str]]:
        """The model's records in order, from the records alone; only one version's with `version`."""
        stored = sorted((item for item in self.store.records(self.model) if item.record is not None),
                        key=lambda item: item.sequence or 0)
        records = [dict(item.record or {}) for item in stored]
        return [record for record in records if version is None or record.get(VERSION_FIELD) == version]


def verify_all(config: PipelineConfig, model: str | None) -> list[ChainReport]:
    """Every model's chain (or one model's)."""
    store = MlflowAuditStore(connect(config), config.tracking.display_uri)
    models = [model] if model else store.models()
    if model and not store.claims(model):
        raise AuditError(f"model '{model}' has no audit records (models with records: "
                         f"{', '.join(store.models()) or 'none'})")
    return [AuditTrail(store, name).verify() for name in models]
