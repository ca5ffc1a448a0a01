"""The audit trail in MLflow: one finished run per record in the `audit` experiment, append-only and hash-chained.

Every change to the registry or to what serves (train, gate, deploy, canary, rollback, alias moves,
promotion, retirement) writes one record through `AuditTrail.write`, naming the actor (`pipelines.actor`);
the stack's monitoring job writes its retrain requests in the same shape (`services.audit_store`).
The record is the run's `audit.json` artifact; its fields are mirrored as the run's tags (so the MLflow UI
lists and searches them) with its digest and its place in the model's chain (`services.audit_chain`).
Kept in MLflow, records travel with its backups and restores and live where the stack's registry lives.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from pipelines.actor import actor
from pipelines.config import PipelineConfig
from pipelines.registry import connect, git_sha
from services.audit_chain import AuditError, ChainReport, verify
from services.audit_store import VERSION_FIELD, MlflowAuditStore, write_record


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
        appended = write_record(self.store, self.model, {**actor(), "platform_git_sha": git_sha()},
                                action, version, outcome, **details)
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
