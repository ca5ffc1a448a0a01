"""An audit store in a dict, with MLflow's behaviour where the chain depends on it: runs, tags, artifacts."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping

from services.audit_chain import MODEL_FIELD, SEQUENCE_FIELD, SHA256_TAG, StoredRecord


class MemoryStore:
    def __init__(self) -> None:
        self.runs: dict[str, tuple[dict[str, str], dict[str, str] | None]] = {}  # run id -> (tags, audit.json)
        self.discarded: list[str] = []
        self._ids = itertools.count(1)
        self.after_write: Callable[[], None] = lambda: None  # another writer acting between write and check
        self.written_at: dict[str, float] = {}  # run id -> when it was written (epoch seconds)

    def claims(self, model: str, sequence: int | None = None) -> list[StoredRecord]:
        return [StoredRecord(run_id, dict(tags), None, self.written_at.setdefault(run_id, time.time()))
                for run_id, (tags, _) in self.runs.items()
                if tags.get(MODEL_FIELD) == model and (sequence is None or tags.get(SEQUENCE_FIELD) == str(sequence))]

    def records(self, model: str) -> list[StoredRecord]:
        return [StoredRecord(claim.run_id, claim.tags, self.runs[claim.run_id][1], claim.written_at)
                for claim in self.claims(model)]

    def write(self, record: Mapping[str, str], sha256: str) -> str:
        run_id = f"run{next(self._ids)}"
        self.runs[run_id] = ({**record, SHA256_TAG: sha256, "mlflow.runName": "x"}, dict(record))
        self.written_at[run_id] = time.time()
        self.after_write()
        return run_id

    def discard(self, run_id: str) -> None:
        self.discarded.append(run_id)
        del self.runs[run_id]

    def age(self, seconds: float) -> None:
        """Let time pass: every record is `seconds` older."""
        self.written_at = {run_id: at - seconds for run_id, at in self.written_at.items()}

    def url(self, run_id: str) -> str:
        return f"http://mlflow.test/#/runs/{run_id}"

    def ordered(self, model: str) -> list[str]:
        """The model's run ids by sequence."""
        return [c.run_id for c in sorted(self.claims(model), key=lambda claim: int(claim.tags[SEQUENCE_FIELD]))]
