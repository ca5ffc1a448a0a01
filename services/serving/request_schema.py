"""The typed request row, made from the feature schema the model was trained with.

Strict: a number is a JSON number (an integer is fine for a float feature), never a string or a boolean;
a category is a JSON string, at most `MAX_STRING_CHARS` long; null is allowed for both (the imputer fills
it). Numbers are finite and within +/- `max_abs`, so no accepted value can overflow a model that casts
to float32 (tree ensembles do).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, create_model

MAX_STRING_CHARS = 256
DEFAULT_MAX_ABS = 1e15


def row_model(numeric: list[str], categorical: list[str], max_abs: float = DEFAULT_MAX_ABS) -> type[BaseModel]:
    """A pydantic model of one input row: every feature required (null allowed), no unknown keys.

    Feature names need not be Python identifiers ("petal width (cm)"), so fields get safe names and the
    column name as alias; validation errors then name the column the client sent.
    """
    # inf and NaN are not numbers a model can score (JSON's 1e999 parses to inf): a 400, not a 500.
    number = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-max_abs, le=max_abs)]
    category = Annotated[str, Field(strict=True, max_length=MAX_STRING_CHARS)]
    fields = {
        **{f"f{i}": (number | None, Field(..., alias=name)) for i, name in enumerate(numeric)},
        **{f"f{len(numeric) + i}": (category | None, Field(..., alias=name)) for i, name in enumerate(categorical)},
    }
    return create_model("Row", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields)
