"""The audit trail's hash chain, apart from where it is stored: records, their digest, appending, verifying.

A record is a flat `{field: text}` mapping. Per model the records form a chain: record n carries its
sequence number and the sha256 of record n-1's canonical JSON (record 1 carries `GENESIS`). Its own
digest is stored beside it (`SHA256_TAG`) and every field is mirrored as a tag of its run, so the MLflow
UI shows and searches it; `verify` recomputes all of it and names the first link that does not hold.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

RECORD_ARTIFACT = "audit.json"
MODEL_FIELD, SEQUENCE_FIELD, PREVIOUS_FIELD = "audit.model", "audit.sequence", "audit.previous_sha256"
SHA256_TAG = "audit.sha256"  # the record's own digest: a tag of its run, not a field of the record
GENESIS = "0" * 64  # what the first record of a model chains to
MAX_FIELD_CHARS = 5000  # below MLflow's tag value limit: every field is mirrored as a tag
# Two records claiming one number for longer than this are no live race (a writer settles its own in well
# under a second) but what a writer that stopped between its write and its discard left behind.
STALE_FORK_S = 120.0


class AuditError(RuntimeError):
    """The audit trail could not be written or read (the CLI exits 2 on it, as on `pipelines.errors.CannotRun`)."""


def canonical(record: Mapping[str, str]) -> bytes:
    """The bytes a record's digest is taken over: sorted keys, no whitespace, UTF-8."""
    return json.dumps(dict(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(record: Mapping[str, str]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


@dataclass(frozen=True)
class StoredRecord:
    """One record as the store holds it: its run, the run's tags, the record (None: unreadable), when written."""

    run_id: str
    tags: Mapping[str, str]
    record: Mapping[str, str] | None
    written_at: float = 0.0  # epoch seconds

    @property
    def sequence(self) -> int | None:
        text = self.tags.get(SEQUENCE_FIELD, "")
        return int(text) if text.isdigit() else None


class AuditStore(Protocol):
    """Where records live (`services.audit_store.MlflowAuditStore`; a dict in the unit tests)."""

    def claims(self, model: str, sequence: int | None = None) -> list[StoredRecord]:
        """The model's records (tags only, `record` None), or those claiming one sequence number."""
        ...

    def records(self, model: str) -> list[StoredRecord]:
        """The model's records, each with its stored record read back."""
        ...

    def write(self, record: Mapping[str, str], sha256: str) -> str:
        """Store a record with its digest; its run id."""
        ...

    def discard(self, run_id: str) -> None:
        """Remove a record that lost a race for its sequence number (it was never part of the chain)."""
        ...


@dataclass(frozen=True)
class Appended:
    run_id: str
    sequence: int
    sha256: str


def append(store: AuditStore, model: str, fields: Mapping[str, str], *, attempts: int = 8,
           pause_s: float = 0.2) -> Appended:
    """Append a record to the model's chain: compare-and-retry on the sequence number.

    The writer takes head + 1 and writes; if any other record then claims that number too, it discards its
    own and tries again after a random pause (so two writers do not collide forever). A head claimed by two
    records is not chained onto: the race for it is not decided yet.
    """
    for attempt in range(attempts):
        head = _settled_head(store, model)
        if head is not None:
            sequence = (head.sequence or 0) + 1
            previous = GENESIS if head.sequence == 0 else head.tags.get(SHA256_TAG, "")
            record = {**_bounded(fields), MODEL_FIELD: model, SEQUENCE_FIELD: str(sequence), PREVIOUS_FIELD: previous}
            sha256 = digest(record)
            run_id = store.write(record, sha256)
            if [claim.run_id for claim in store.claims(model, sequence)] == [run_id]:
                return Appended(run_id, sequence, sha256)
            store.discard(run_id)
        time.sleep(random.uniform(0, pause_s * (attempt + 1)))
    fork = _latest_claims(store, model)
    if len(fork) > 1:
        raise AuditError(f"could not append to the audit trail of '{model}': sequence {fork[0].sequence} is claimed "
                         f"by runs {', '.join(claim.run_id for claim in fork)} (a writer stopped before settling "
                         f"its claim); the first written keeps it {STALE_FORK_S:.0f} s after the last was written")
    raise AuditError(f"could not append to the audit trail of '{model}' after {attempts} attempts: other writers "
                     "kept taking the next sequence number; try again")


def _latest_claims(store: AuditStore, model: str) -> list[StoredRecord]:
    """The records claiming the model's highest sequence number, first written first."""
    claims = [claim for claim in store.claims(model) if claim.sequence is not None]
    top = max((claim.sequence or 0 for claim in claims), default=0)
    return sorted((claim for claim in claims if claim.sequence == top), key=lambda c: (c.written_at, c.run_id))


def _settled_head(store: AuditStore, model: str) -> StoredRecord | None:
    """The model's latest record; a sequence-0 stand-in before the first; None while two claim the latest.

    A fork on the latest number older than STALE_FORK_S is settled here: the first written keeps the number
    (only it can have been reported written, since a writer returns only while its claim stands alone) and
    the others, never part of the chain, are discarded.
    """
    latest = _latest_claims(store, model)
    if not latest:
        return StoredRecord("", {SEQUENCE_FIELD: "0"}, None)
    if len(latest) > 1 and time.time() - latest[-1].written_at < STALE_FORK_S:
        return None
    for loser in latest[1:]:
        store.discard(loser.run_id)
    return latest[0]


def _bounded(fields: Mapping[str, str]) -> dict[str, str]:
    return {key: str(value)[:MAX_FIELD_CHARS] for key, value in fields.items()}


@dataclass(frozen=True)
class Broken:
    """The first link of a chain that does not hold."""

    sequence: int | None
    run_id: str
    what: str

    def __str__(self) -> str:
        return f"sequence {self.sequence if self.sequence is not None else '?'} (run {self.run_id}): {self.what}"


@dataclass(frozen=True)
class ChainReport:
    model: str
    records: int
    head_sha256: str  # keep it elsewhere (a CI log): a chain cannot show an edit of its newest record alone
    broken: Broken | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def verify(model: str, stored: Iterable[StoredRecord]) -> ChainReport:
    """Recompute one model's chain from its stored records (in any order) and name the first broken link."""
    ordered = sorted(stored, key=lambda item: (item.sequence is None, item.sequence or 0, item.run_id))
    previous_sha256, expected = GENESIS, 1
    for item in ordered:
        rivals = [other.run_id for other in ordered if other.sequence == item.sequence and other is not item]
        problem = (f"runs {', '.join(rivals)} claim sequence {item.sequence} too (one was inserted, or two writers "
                   "forked the chain)") if rivals and item.sequence is not None else \
            _link_problem(item, expected, previous_sha256)
        if problem:
            return ChainReport(model, len(ordered), previous_sha256, Broken(item.sequence, item.run_id, problem))
        assert item.record is not None  # _link_problem checked
        previous_sha256, expected = digest(item.record), expected + 1
    return ChainReport(model, len(ordered), previous_sha256, None)


def _link_problem(item: StoredRecord, expected: int, previous_sha256: str) -> str:
    if item.sequence is None:
        return f"its {SEQUENCE_FIELD} tag is {item.tags.get(SEQUENCE_FIELD)!r}, not a sequence number"
    if item.sequence > expected:
        return f"sequence {expected} is missing (a record was deleted)"
    if item.record is None:
        return f"its {RECORD_ARTIFACT} is missing or unreadable"
    record = item.record
    if record.get(SEQUENCE_FIELD) != str(item.sequence):
        return f"{RECORD_ARTIFACT} says sequence {record.get(SEQUENCE_FIELD)!r}, its tag says {item.sequence}"
    if digest(record) != item.tags.get(SHA256_TAG):
        return (f"{RECORD_ARTIFACT} hashes to {digest(record)[:16]}..., its {SHA256_TAG} tag says "
                f"{str(item.tags.get(SHA256_TAG))[:16]}... (the record or the tag was changed)")
    for field, value in sorted(record.items()):
        if item.tags.get(field) != value:
            return f"tag {field} is {item.tags.get(field)!r}, the record says {value!r} (the tag was changed)"
    if record.get(PREVIOUS_FIELD) != previous_sha256:
        return (f"it chains to {str(record.get(PREVIOUS_FIELD))[:16]}... but the record before it hashes to "
                f"{previous_sha256[:16]}... (the record before was changed, removed or inserted)")
    return ""
