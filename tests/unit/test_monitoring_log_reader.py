"""Reading the inference log: bad lines, windows, sampling, feedback labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.contract import BadRecord, InferenceRecord
from services.monitoring.inference_log import WindowSpec, read_labels, read_window

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
        (json.dumps({**record(1), "features": [1, 2]}), "'features' is not an object"),
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


def test_labels_are_read_for_wanted_keys_only(tmp_path):
    write(
        tmp_path / "feedback" / "f.jsonl",
        [{"request_id": "req-1", "row": 0, "label": 1}, {"request_id": "req-2", "label": 0}, {"label": 5}],
        tail="not json\n",
    )
    labels = read_labels(tmp_path, {("req-1", 0), ("req-2", 0), ("req-3", 0)})
    assert labels == {("req-1", 0): 1, ("req-2", 0): 0}
    assert read_labels(tmp_path / "elsewhere", {("req-1", 0)}) == {}


def test_deploy_smoke_requests_are_not_traffic(tmp_path):
    smoke = [{**record(i), "request_id": f"smoke-{i}"} for i in range(5)]
    write(tmp_path / "20261127-host-1.jsonl", [*smoke, *[record(i) for i in range(10, 30)]])
    scan = read_window(tmp_path, "loans", WindowSpec(), sample_rows=1000)
    assert scan.versions["1"].rows == 20 and scan.smoke_rows == 5
