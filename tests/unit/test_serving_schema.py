"""The serving request row: every feature named in errors, no unknown keys, no wrong types."""

import pytest
from pydantic import ValidationError

from services.serving.request_schema import row_model

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
