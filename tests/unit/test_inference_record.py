"""`InferenceRecord.parse` on any line: a record whose fields have the types readers rely on, or `BadRecord`.

One line of the inference log must never stop a monitoring run or a canary analysis: whatever a line holds
(JSON's Infinity and NaN, huge numbers, nesting, wrong types, torn text), parsing raises nothing but
`BadRecord`, and a record it returns is safe to sample, judge and compare.
"""

from __future__ import annotations

import json
import math
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inference_record import BadRecord, InferenceRecord

GOOD = {
    "request_id": "req-1", "row": 0, "timestamp": "2026-11-27T07:00:00+00:00", "model_name": "loans",
    "model_version": "3", "features": {"age": 41, "region": "east", "income": 52000.5, "flag": None},
    "prediction": 1, "probabilities": {"0": 0.25, "1": 0.75},
}

# Any JSON value, including what Python's json module reads beyond strict JSON (Infinity, NaN, big numbers).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
special_numbers = st.sampled_from(["Infinity", "-Infinity", "NaN", "1e999", "-1e999", "9" * 400, "1" * 5000])


def assert_safe(record: InferenceRecord) -> None:
    """What the readers (sampling, judging, the canary's distance) rely on in a parsed record."""
    assert isinstance(record.request_id, str) and isinstance(record.model_name, str)
    assert isinstance(record.model_version, str)
    assert isinstance(record.row, int) and not isinstance(record.row, bool) and record.row >= 0
    assert record.timestamp.tzinfo is UTC
    assert isinstance(record.features, dict)
    for value in [*record.features.values(), record.prediction]:
        assert value is None or isinstance(value, str | bool | int | float)
        if isinstance(value, float):
            assert math.isfinite(value)
    if record.probabilities is not None:
        assert isinstance(record.probabilities, dict)
        assert all(isinstance(p, float | int) and math.isfinite(p) for p in record.probabilities.values())


def parse_or_bad(line: str) -> None:
    try:
        record = InferenceRecord.parse(line)
    except BadRecord:
        return
    assert_safe(record)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(GOOD)), value=json_values)
def test_any_value_in_any_field_parses_or_is_a_bad_record(field, value):
    parse_or_bad(json.dumps({**GOOD, field: value}))


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from([*sorted(GOOD), "features.age", "probabilities.1"]), number=special_numbers)
def test_numbers_json_cannot_hold_parse_or_are_a_bad_record(field, number):
    # Python's json writes and reads Infinity and NaN; big literals overflow a float or an int's digit limit.
    placeholder = "__number__"
    raw = json.loads(json.dumps(GOOD))
    outer, _, inner = field.partition(".")
    if inner:
        raw[outer][inner] = placeholder
    else:
        raw[outer] = placeholder
    parse_or_bad(json.dumps(raw).replace(f'"{placeholder}"', number))


@settings(max_examples=300, deadline=None)
@given(line=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("utf-8", errors="replace")))
def test_any_text_parses_or_is_a_bad_record(line):
    parse_or_bad(line)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(json.dumps(GOOD))), dropped=st.sets(st.sampled_from(sorted(GOOD))))
def test_torn_lines_and_missing_fields_parse_or_are_a_bad_record(cut, dropped):
    parse_or_bad(json.dumps({k: v for k, v in GOOD.items() if k not in dropped})[:cut])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (json.dumps(GOOD).replace('"row": 0', '"row": Infinity'), "'row'"),  # seen: OverflowError, monitoring dead
        (json.dumps(GOOD).replace('"row": 0', '"row": NaN'), "'row'"),
        (json.dumps({**GOOD, "row": -1}), "'row'"),
        (json.dumps({**GOOD, "row": True}), "'row'"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),  # RecursionError in json
        ('{"row": ' + "1" * 5000 + "}", "not JSON"),  # ValueError: more digits than an int may hold
        (json.dumps({**GOOD, "timestamp": "9999-12-31T23:59:59-01:00"}), "'timestamp'"),  # past year 9999 in UTC
        (json.dumps({**GOOD, "features": {"age": [1, 2]}}), "'features'"),
        (json.dumps(GOOD).replace('"income": 52000.5', '"income": Infinity'), "'features'"),
        (json.dumps({**GOOD, "probabilities": [0.25, 0.75]}), "'probabilities'"),
        (json.dumps({**GOOD, "probabilities": {"1": "high"}}), "'probabilities'"),
        (json.dumps({**GOOD, "prediction": {"label": 1}}), "'prediction'"),
        (json.dumps({**GOOD, "model_version": ["3"]}), "'model_version'"),
    ],
)
def test_each_malformed_field_is_named(line, reason):
    with pytest.raises(BadRecord, match=reason):
        InferenceRecord.parse(line)


def test_a_good_record_round_trips_with_its_timestamp_in_utc():
    record = InferenceRecord.parse(json.dumps({**GOOD, "timestamp": "2026-11-27T09:00:00+02:00"}))
    assert_safe(record)
    assert record.timestamp.isoformat() == GOOD["timestamp"]
    assert InferenceRecord.parse(json.dumps(record.to_json())) == record
