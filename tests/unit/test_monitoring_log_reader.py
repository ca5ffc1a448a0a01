"""Reading the inference log: bad lines, windows, sampling, feedback labels."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.contract import SMOKE_LOG_SUBDIR
from services.inference_record import BadRecord, InferenceRecord
from services.monitoring.feedback import Feedback, read_feedback
from services.monitoring.inference_log import WindowSpec, read_window, retention_start
from services.monitoring.log_index import LogIndex

START = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def record(index: int, *, version: str = "1", model: str = "loans", at: datetime | None = None) -> dict:
    return {
        "request_id": f"req-{index}",
        "row": 0,
        "timestamp": (at or START + timedelta(seconds=index)).isoformat(),
        "model_name": model,
        "model_version": version,
        "features": {"age": 20 + index % 50, "region": "east"},
        "prediction": index % 2,
    }


def write(path: Path, records: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records) + tail)


def test_parsing_a_record_names_what_is_wrong():
    for line, reason in [
        ('{"request_id": "a", "timest', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({k: v for k, v in record(1).items() if k != "model_version"}), "missing field 'model_version'"),
        (json.dumps({**record(1), "timestamp": "yesterday"}), "bad value"),
        (json.dumps({**record(1), "features": [1, 2]}), "'features' \\(list is not an object"),
    ]:
        with pytest.raises(BadRecord, match=reason):
            InferenceRecord.parse(line)
    parsed = InferenceRecord.parse(json.dumps({**record(3), "timestamp": "2026-11-27T07:00:03"}))
    assert parsed.model_name == "loans" and parsed.timestamp == START + timedelta(seconds=3)  # naive is read as UTC


def test_torn_and_corrupt_lines_are_skipped_and_counted(tmp_path):
    write(tmp_path / "a.jsonl", [record(i) for i in range(10)], tail='{"request_id": "torn", "times')
    write(tmp_path / "b.jsonl", [record(i, model="other") for i in range(3)], tail="\x00\x01 garbage\n")

    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=100)

    assert scan.files == 2 and scan.lines == 15
    assert scan.skipped_lines == 2 and scan.other_model_rows == 3
    assert scan.versions["1"].rows == 10 and scan.rows == 10
    assert any("a.jsonl:11: skipped, not JSON" in problem for problem in scan.problems)


def test_every_malformed_line_is_skipped_and_counted_never_fatal(tmp_path):
    # Seen: one `"row": Infinity` raised OverflowError out of the reader, and every later run failed on it.
    good = json.dumps(record(0))
    bad = [
        good.replace('"row": 0', '"row": Infinity'),
        good.replace('"row": 0', '"row": NaN'),
        json.dumps({**record(1), "timestamp": "9999-12-31T23:59:59-01:00"}),
        json.dumps({**record(2), "features": {"age": {"nested": True}}}),
        json.dumps({**record(3), "probabilities": [0.5, 0.5]}),
        '{"row": ' + "1" * 5000 + "}",
        "[" * 50_000,
    ]
    (tmp_path / "a.jsonl").write_text("\n".join([good, *bad, json.dumps(record(4))]) + "\n")

    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=100)

    assert scan.lines == 9 and scan.skipped_lines == len(bad) and scan.versions["1"].rows == 2
    assert "a.jsonl:2: skipped, bad value in 'row'" in scan.problems[0]


def test_missing_directory_is_an_empty_scan_with_a_reason(tmp_path):
    scan = read_window(tmp_path / "nope", "loans", WindowSpec(), sample_rows=100)
    assert scan.versions == {} and "does not exist" in scan.problems[0]


def test_since_the_last_report_is_per_model_version(tmp_path):
    write(tmp_path / "log.jsonl", [record(i, version=v) for v in ("1", "2") for i in range(10)])
    since = {"1": START + timedelta(seconds=6), "2": START + timedelta(seconds=2)}

    scan = read_window(tmp_path, "loans", WindowSpec(since=since), sample_rows=100)

    assert scan.versions["1"].rows == 3  # seconds 7, 8, 9: the bound itself was already judged
    assert scan.versions["2"].rows == 7
    assert scan.versions["1"].first_at == START + timedelta(seconds=7)
    assert scan.versions["1"].last_at == START + timedelta(seconds=9)


def test_time_and_row_windows_combine(tmp_path):
    # Two files whose records interleave in time: the newest rows are found across files.
    write(tmp_path / "w1.jsonl", [record(i) for i in range(0, 100, 2)])
    write(tmp_path / "w2.jsonl", [record(i) for i in range(1, 100, 2)])

    newest = read_window(tmp_path, "loans", WindowSpec(newest_rows=10), sample_rows=5, seed=1)
    recent = read_window(tmp_path, "loans", WindowSpec(not_before=START + timedelta(seconds=95)), sample_rows=100)
    both = read_window(
        tmp_path, "loans", WindowSpec(not_before=START + timedelta(seconds=95), newest_rows=3), sample_rows=100
    )

    traffic = newest.versions["1"]
    assert traffic.rows == 10 and len(traffic.sample) == 5
    assert traffic.first_at == START + timedelta(seconds=90) and traffic.last_at == START + timedelta(seconds=99)
    assert all(r.timestamp >= START + timedelta(seconds=90) for r in traffic.sample)
    assert recent.versions["1"].rows == 5
    assert both.versions["1"].rows == 3


def test_sample_is_bounded_and_uniform_over_the_window(tmp_path):
    write(tmp_path / "log.jsonl", [record(i) for i in range(20_000)])

    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=2_000, seed=3)

    traffic = scan.versions["1"]
    assert traffic.rows == 20_000 and len(traffic.sample) == 2_000
    assert traffic.first_at == START and traffic.last_at == START + timedelta(seconds=19_999)
    positions = sorted(int(r.request_id.split("-")[1]) for r in traffic.sample)
    assert len(set(positions)) == 2_000
    # Uniform over the stream: each fifth of the window holds about a fifth of the sample (+-5 sigma).
    for fifth in range(5):
        share = sum(fifth * 4_000 <= p < (fifth + 1) * 4_000 for p in positions)
        assert abs(share - 400) < 5 * (2_000 * 0.2 * 0.8) ** 0.5
    frame = traffic.features()
    assert list(frame.columns) == ["age", "region"] and len(frame) == 2_000
    assert list(traffic.keys().columns) == ["request_id", "row", "prediction"]


def test_feedback_is_read_for_wanted_keys_only_with_its_groups(tmp_path):
    write(
        tmp_path / "feedback" / "f.jsonl",
        [{"request_id": "req-1", "row": 0, "label": 1, "groups": {"applicant_group": "b", "nested": {"x": 1}}},
         {"request_id": "req-2", "label": 0, "groups": ["not", "an", "object"]}, {"label": 5}],
        tail="not json\n",
    )
    found = read_feedback(tmp_path, {("req-1", 0), ("req-2", 0), ("req-3", 0)})
    assert found == {("req-1", 0): Feedback(1, {"applicant_group": "b"}), ("req-2", 0): Feedback(0)}
    assert read_feedback(tmp_path / "elsewhere", {("req-1", 0)}) == {}


def test_release_checks_are_not_traffic_and_no_client_can_hide_its_own(tmp_path):
    # The server logs a release's checks (they carry its smoke token) under smoke/, which is never read;
    # a request id a client chose, "smoke-…" or not, is traffic like any other.
    write(tmp_path / SMOKE_LOG_SUBDIR / "20261127-host-1.jsonl", [record(i) for i in range(5)])
    client_chosen = [{**record(i), "request_id": f"smoke-{i}"} for i in range(5, 10)]
    write(tmp_path / "20261127-host-1.jsonl", [*client_chosen, *[record(i) for i in range(10, 30)]])
    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=1000)
    assert scan.versions["1"].rows == 25


def test_an_index_skips_the_rows_judged_already_and_rereads_the_rest(tmp_path):
    """Item 5: the log is read incrementally; what a window holds does not change."""
    log, index_file = tmp_path / "log", tmp_path / "state" / "log-index.json"
    ones, twos = log / "20261127-host-1.jsonl", log / "20261127-host-2.jsonl"
    write(ones, [record(i) for i in range(100)])
    write(twos, [record(i, version="2") for i in range(50)])
    index = LogIndex("loans")

    first = read_window(log, "loans", WindowSpec(), sample_rows=1000, index=index)
    index.save(index_file)

    assert first.bytes_read == ones.stat().st_size + twos.stat().st_size
    assert (first.versions["1"].rows, first.versions["2"].rows) == (100, 50)
    # v1's window was judged up to its last row; v2's was not (too few rows, say): its rows must stay.
    size_before = ones.stat().st_size
    write(ones, [record(i) for i in range(100, 110)])
    window = WindowSpec(since={"1": START + timedelta(seconds=99)})
    index = LogIndex.load(index_file, "loans")

    second = read_window(log, "loans", window, sample_rows=1000, index=index)

    assert second.bytes_read == (ones.stat().st_size - size_before) + twos.stat().st_size
    assert (second.versions["1"].rows, second.versions["2"].rows) == (10, 50)
    assert second.versions["1"].first_at == START + timedelta(seconds=100)
    unindexed = read_window(log, "loans", window, sample_rows=1000)
    assert {v: t.rows for v, t in unindexed.versions.items()} == {v: t.rows for v, t in second.versions.items()}

    judged = WindowSpec(since={"1": START + timedelta(seconds=109), "2": START + timedelta(seconds=49)})
    third = read_window(log, "loans", judged, sample_rows=1000, index=index)
    assert third.versions == {} and third.bytes_read == 0 and third.unchanged_files == 2 and third.files == 0
    assert LogIndex.load(index_file, "other-model").entries == {}  # an index is one model's


def test_a_replaced_file_is_read_whole_and_a_torn_line_is_read_again(tmp_path):
    path = tmp_path / "20261127-host-1.jsonl"
    write(path, [record(i) for i in range(20)], tail='{"request_id": "req-20", "ti')
    index = LogIndex("loans")
    read_window(tmp_path, "loans", WindowSpec(), sample_rows=100, index=index)
    torn_at = path.stat().st_size - len('{"request_id": "req-20", "ti')
    assert index.entries[path.name].offset == torn_at and index.entries[path.name].lines == 20

    # The worker finishes the line: the next read picks it up from where the complete lines ended.
    with path.open("a") as handle:
        handle.write(json.dumps(record(20))[len('{"request_id": "req-20", "ti'):] + "\n")
    done = WindowSpec(since={"1": START + timedelta(seconds=19)})
    later = read_window(tmp_path, "loans", done, sample_rows=100, index=index)
    assert later.versions["1"].rows == 1 and later.skipped_lines == 0
    assert later.bytes_read == path.stat().st_size - torn_at

    path.unlink()  # rotated: a new file under the same name starts over
    write(path, [record(i) for i in range(100, 103)])
    replaced = read_window(tmp_path, "loans", done, sample_rows=100, index=index)
    assert replaced.versions["1"].rows == 3 and replaced.bytes_read == path.stat().st_size


def test_files_of_days_past_the_retention_are_ignored(tmp_path):
    write(tmp_path / "20261101-host-1.jsonl", [record(i, at=datetime(2026, 11, 1, tzinfo=UTC)) for i in range(30)])
    write(tmp_path / "20261121-host-1.jsonl", [record(i) for i in range(10)])
    write(tmp_path / "undated.jsonl", [record(i) for i in range(5)])  # no day in the name: its modification time
    old = datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp()
    os.utime(tmp_path / "undated.jsonl", (old, old))
    index = LogIndex("loans")
    now = datetime(2026, 11, 28, 9, tzinfo=UTC)

    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=100, index=index, retention_days=7, now=now)

    assert scan.expired_files == 2 and scan.files == 1 and scan.versions["1"].rows == 10
    assert set(index.entries) == {"20261121-host-1.jsonl"}
    assert retention_start(now, 7) == datetime(2026, 11, 21, tzinfo=UTC)
    everything = read_window(tmp_path, "loans", WindowSpec(), sample_rows=100, now=now)
    assert everything.versions["1"].rows == 45 and everything.expired_files == 0
