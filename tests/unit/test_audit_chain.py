"""The audit trail's hash chain: appended records verify; an edited, deleted, reordered or inserted one is named."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from services.audit_chain import (
    GENESIS,
    PREVIOUS_FIELD,
    SEQUENCE_FIELD,
    SHA256_TAG,
    STALE_FORK_S,
    AuditError,
    append,
    digest,
    verify,
)
from tests.unit.audit_memory import MemoryStore


def chain(length: int = 4) -> MemoryStore:
    store = MemoryStore()
    for number in range(1, length + 1):
        append(store, "churn", {"action": "deploy", "model_version": str(number), "who": "alice"}, pause_s=0)
    return store


def test_appended_records_chain_from_genesis_and_verify():
    store = chain()
    records = [store.runs[run_id][1] for run_id in store.ordered("churn")]
    assert [r[SEQUENCE_FIELD] for r in records] == ["1", "2", "3", "4"]
    assert records[0][PREVIOUS_FIELD] == GENESIS
    assert all(later[PREVIOUS_FIELD] == digest(earlier) for earlier, later in itertools.pairwise(records))
    report = verify("churn", store.records("churn"))
    assert report.intact and report.records == 4 and report.head_sha256 == digest(records[-1])


def test_chains_are_per_model():
    store = chain(2)
    append(store, "fraud", {"action": "train", "model_version": "1"}, pause_s=0)
    assert verify("fraud", store.records("fraud")).intact and verify("churn", store.records("churn")).intact
    (fraud,) = store.claims("fraud")
    assert fraud.tags[SEQUENCE_FIELD] == "1" and fraud.tags[PREVIOUS_FIELD] == GENESIS


def test_an_edited_tag_is_named():
    store = chain()
    second = store.ordered("churn")[1]
    store.runs[second][0]["who"] = "mallory"  # set_tag
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 2 and broken.run_id == second
    assert "tag who is 'mallory', the record says 'alice'" in broken.what


def test_a_re_logged_record_is_named_where_it_no_longer_matches_its_digest():
    store = chain()
    second = store.ordered("churn")[1]
    store.runs[second][1]["who"] = "mallory"  # log_dict again
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 2 and "hashes to" in broken.what


def test_a_record_re_logged_with_its_tags_and_digest_breaks_the_next_link():
    store = chain()
    second, third = store.ordered("churn")[1:3]
    tags, record = store.runs[second]
    record["who"] = tags["who"] = "mallory"
    tags[SHA256_TAG] = digest(record)
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 3 and broken.run_id == third
    assert "the record before it hashes to" in broken.what


def test_a_deleted_record_is_named_as_missing():
    store = chain()
    del store.runs[store.ordered("churn")[1]]
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 3 and "sequence 2 is missing" in broken.what


def test_records_renumbered_into_another_order_break_the_chain():
    store = chain()
    second, third = store.ordered("churn")[1:3]
    for run_id, sequence in ((second, "3"), (third, "2")):
        tags, record = store.runs[run_id]
        tags[SEQUENCE_FIELD] = record[SEQUENCE_FIELD] = sequence
        tags[SHA256_TAG] = digest(record)
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 2 and broken.run_id == third
    assert "chains to" in broken.what


def test_an_inserted_record_claiming_a_taken_sequence_is_named():
    store = chain()
    tags, record = store.runs[store.ordered("churn")[1]]
    store.runs["forged"] = ({**tags, "who": "mallory"}, {**record, "who": "mallory"})
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.sequence == 2 and "claim sequence 2 too" in broken.what


def test_a_missing_artifact_is_named():
    store = chain()
    third = store.ordered("churn")[2]
    store.runs[third] = (store.runs[third][0], None)
    broken = verify("churn", store.records("churn")).broken
    assert broken is not None and broken.run_id == third and "audit.json is missing" in broken.what


def test_a_writer_that_loses_the_race_for_a_sequence_discards_its_record_and_appends_after_the_winner():
    store = chain(2)
    rival_wrote = []

    def rival_takes_the_same_number() -> None:  # once: another process wrote sequence 3 while we did
        if not rival_wrote:
            rival_wrote.append(True)
            tags, record = store.runs[store.ordered("churn")[1]]  # sequence 2, the head both writers read
            rival = {**record, SEQUENCE_FIELD: "3", PREVIOUS_FIELD: digest(record), "who": "bob"}
            store.runs["rival"] = ({**rival, SHA256_TAG: digest(rival)}, rival)

    store.after_write = rival_takes_the_same_number
    appended = append(store, "churn", {"action": "rollback", "model_version": "1", "who": "alice"}, pause_s=0)
    assert appended.sequence == 4 and len(store.discarded) == 1
    assert store.runs[store.ordered("churn")[2]][1]["who"] == "bob"
    assert verify("churn", store.records("churn")).intact


def test_a_writer_always_outraced_gives_up_with_a_clear_error():
    store = chain(1)
    store.after_write = lambda: store.runs.update({f"rival{len(store.runs)}": store.runs[store.ordered("churn")[-1]]})
    with pytest.raises(AuditError, match="other writers kept taking the next sequence number"):
        append(store, "churn", {"action": "deploy"}, attempts=3, pause_s=0)


def test_a_fork_left_by_a_writer_that_died_is_settled_to_its_first_record_once_it_is_stale():
    """A writer that died between its write and its discard leaves two claims on one number: once that fork is
    older than any live race could be, the first record written keeps the number and appending goes on."""
    store = chain(2)
    tags, record = store.runs[store.ordered("churn")[0]]
    dead = {**record, SEQUENCE_FIELD: "2", "who": "mallory"}
    store.runs["dead-writer"] = ({**dead, SHA256_TAG: digest(dead)}, dead)
    with pytest.raises(AuditError, match=r"sequence 2 .*claimed by runs .*dead-writer"):
        append(store, "churn", {"action": "deploy"}, attempts=2, pause_s=0)
    store.age(STALE_FORK_S + 1)
    appended = append(store, "churn", {"action": "deploy", "who": "alice"}, pause_s=0)
    assert appended.sequence == 3 and "dead-writer" in store.discarded
    assert verify("churn", store.records("churn")).intact


def test_a_record_whose_artifact_cannot_be_written_leaves_no_run_behind():
    """A run with its tags but no audit.json would be chained onto and break `audit verify` for good."""
    from services.audit_store import MlflowAuditStore

    class ArtifactStoreDown:
        def __init__(self) -> None:
            self.deleted: list[str] = []

        def create_run(self, experiment_id, run_name, tags):
            return SimpleNamespace(info=SimpleNamespace(run_id="half-written"))

        def log_dict(self, run_id, record, path):
            raise OSError("artifact store unreachable")

        def delete_run(self, run_id):
            self.deleted.append(run_id)

    client = ArtifactStoreDown()
    store = MlflowAuditStore(client, "http://mlflow.test")
    store.__dict__["experiment_id"] = "1"
    with pytest.raises(OSError, match="artifact store unreachable"):
        store.write({"audit.model": "churn", "audit.sequence": "1"}, "0" * 64)
    assert client.deleted == ["half-written"]
