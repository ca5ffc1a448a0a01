"""The typed request row, made from the feature schema the model was trained with."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model


def row_model(numeric: list[str], categorical: list[str]) -> type[BaseModel]:
    """A pydantic model of one input row: every feature required (null allowed), no unknown keys.

    Feature names need not be Python identifiers ("petal width (cm)"), so fields get safe names and the
    column name as alias; validation errors then name the column the client sent.
    """
    fields = {
        # inf and NaN are not numbers a model can score (JSON's 1e999 parses to inf): a 400, not a 500.
        **{f"f{i}": (float | None, Field(..., alias=name, allow_inf_nan=False)) for i, name in enumerate(numeric)},
        **{f"f{len(numeric) + i}": (str | None, Field(..., alias=name)) for i, name in enumerate(categorical)},
    }
    return create_model("Row", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields)
