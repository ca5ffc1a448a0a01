"""The serving request row: every feature named in errors, no unknown keys, no wrong types."""

import pytest
from pydantic import ValidationError

from services.serving.request_schema import DEFAULT_MAX_ABS, MAX_STRING_CHARS, row_model

Row = row_model(["petal width (cm)", "age"], ["region"])
GOOD = {"petal width (cm)": 1.5, "age": 30, "region": "east"}


def error_fields(payload: dict) -> set[str]:
    with pytest.raises(ValidationError) as error:
        Row.model_validate(payload)
    return {str(item["loc"][0]) for item in error.value.errors()}


def test_valid_row_keeps_column_names():
    assert Row.model_validate(GOOD).model_dump(by_alias=True) == {**GOOD, "age": 30.0}


def test_nulls_are_allowed_for_the_imputer():
    assert Row.model_validate({**GOOD, "age": None, "region": None}).model_dump(by_alias=True)["age"] is None


def test_wrong_type_names_the_field():
    assert error_fields({**GOOD, "age": "thirty"}) == {"age"}
    assert error_fields({**GOOD, "region": 7}) == {"region"}


def test_infinite_number_is_refused():
    assert error_fields({**GOOD, "age": float("inf")}) == {"age"}


def test_missing_field_is_named():
    assert error_fields({"age": 1, "region": "x"}) == {"petal width (cm)"}


def test_unknown_field_is_named():
    assert error_fields({**GOOD, "colour": "red"}) == {"colour"}


@pytest.mark.parametrize("value", ["41", "4.5e3", True, False, [1], {"v": 1}])
def test_a_number_must_be_a_json_number_not_a_string_or_bool(value):
    assert error_fields({**GOOD, "age": value}) == {"age"}


@pytest.mark.parametrize("value", [True, 7, 1.5, ["east"], {"v": "east"}])
def test_a_category_must_be_a_json_string(value):
    assert error_fields({**GOOD, "region": value}) == {"region"}


def test_an_int_for_a_float_feature_is_fine():
    assert Row.model_validate_json('{"petal width (cm)": 2, "age": 30, "region": "east"}').model_dump(
        by_alias=True) == {"petal width (cm)": 2.0, "age": 30.0, "region": "east"}


def test_strict_typing_holds_for_a_json_body_too():
    with pytest.raises(ValidationError) as error:
        Row.model_validate_json('{"petal width (cm)": "1.5", "age": true, "region": "east"}')
    assert {str(item["loc"][0]) for item in error.value.errors()} == {"petal width (cm)", "age"}


@pytest.mark.parametrize("value", [-1e308, 1e308, 1e39, -1e39, DEFAULT_MAX_ABS * 1.0001, float("nan")])
def test_a_number_beyond_the_bound_is_refused_naming_the_field(value):
    assert error_fields({**GOOD, "age": value}) == {"age"}


def test_the_bound_is_inclusive_and_configurable():
    assert Row.model_validate({**GOOD, "age": -DEFAULT_MAX_ABS}).model_dump(by_alias=True)["age"] == -DEFAULT_MAX_ABS
    tight = row_model(["age"], [], max_abs=100)
    assert tight.model_validate({"age": 100}).model_dump(by_alias=True) == {"age": 100.0}
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        tight.model_validate({"age": 100.5})


def test_a_category_longer_than_the_cap_is_refused():
    assert Row.model_validate({**GOOD, "region": "é" * MAX_STRING_CHARS}).model_dump(by_alias=True)["region"]
    assert error_fields({**GOOD, "region": "x" * (MAX_STRING_CHARS + 1)}) == {"region"}
