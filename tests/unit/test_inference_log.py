"""The inference log writer: whole lines, one file per process, nothing lost under concurrency."""

import json
import multiprocessing
import os
import stat
from datetime import UTC, datetime

from services.serving.inference_log import InferenceLog


def write_many(directory, worker: int, requests: int, rows: int) -> None:
    log = InferenceLog(directory)
    for request in range(requests):
        log.append([{"request_id": f"{worker}-{request}", "row": row, "pad": "x" * 500} for row in range(rows)])


def test_lines_round_trip(tmp_path):
    log = InferenceLog(tmp_path / "inference")
    when = datetime(2026, 11, 27, tzinfo=UTC)
    path = log.append([{"request_id": "a", "row": 0, "features": {"age": 3.0}, "prediction": 1}], when)
    assert path.name.startswith("20261127-")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"request_id": "a", "row": 0, "features": {"age": 3.0}, "prediction": 1}]


def test_concurrent_workers_lose_and_tear_nothing(tmp_path):
    workers, requests, rows = 4, 50, 20
    procs = [multiprocessing.Process(target=write_many, args=(tmp_path, w, requests, rows)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == workers  # one file per process
    records = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert len(records) == workers * requests * rows
    assert len({(r["request_id"], r["row"]) for r in records}) == len(records)


def test_files_hold_request_data_so_they_are_not_world_readable(tmp_path):
    previous = os.umask(0)  # the modes the writer asks for, unmasked
    try:
        log = InferenceLog(tmp_path / "inference")
        path = log.append([{"request_id": "a", "row": 0}])
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750


def test_a_new_day_goes_to_a_new_file(tmp_path):
    log = InferenceLog(tmp_path)
    first = log.append([{"request_id": "a", "row": 0}], datetime(2026, 11, 27, 23, 59, tzinfo=UTC))
    second = log.append([{"request_id": "b", "row": 0}], datetime(2026, 11, 28, 0, 0, tzinfo=UTC))
    assert first != second
    assert [json.loads(line)["request_id"] for line in first.read_text().splitlines()] == ["a"]
    assert [json.loads(line)["request_id"] for line in second.read_text().splitlines()] == ["b"]


def test_a_file_removed_or_replaced_under_the_writer_loses_no_later_line(tmp_path):
    log = InferenceLog(tmp_path)
    when = datetime(2026, 11, 27, tzinfo=UTC)
    path = log.append([{"request_id": "a", "row": 0}], when)
    path.unlink()  # e.g. an operator's cleanup
    log.append([{"request_id": "b", "row": 0}], when)
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["b"]
    path.rename(tmp_path / "archived.jsonl")  # e.g. a rotation: a new file takes the name
    path.write_text("")
    log.append([{"request_id": "c", "row": 0}], when)
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["c"]
    assert [json.loads(line)["request_id"] for line in (tmp_path / "archived.jsonl").read_text().splitlines()] == ["b"]
