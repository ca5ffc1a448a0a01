"""The inference log's record: one JSON line per predicted row, written by serving, read by monitoring and gc.

Standard library only, like services/contract.py beside it: the serving bento and the monitoring image ship it.
`InferenceRecord.parse` refuses a line that is not a whole record (`BadRecord`), naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class BadRecord(ValueError):
    """A log line that is not a complete inference record."""


@dataclass(frozen=True)
class InferenceRecord:
    """One predicted row, one JSON line of the inference log."""

    request_id: str
    row: int
    timestamp: datetime
    model_name: str
    model_version: str
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "row": self.row, "timestamp": self.timestamp.isoformat(),
            "model_name": self.model_name, "model_version": self.model_version, "features": self.features,
            "prediction": self.prediction, "probabilities": self.probabilities,
        }

    @classmethod
    def parse(cls, line: str) -> InferenceRecord:
        """The record of one log line; `BadRecord` (and nothing else) says what is wrong with it.

        Readers sample, judge and compare the fields, so each is checked for the type serving writes: one
        odd line (Infinity, a list, a year past 9999 in UTC) is a skipped line, never a failed run.
        """
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadRecord(f"not JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an int past Python's digit limit; nesting past the stack
            raise BadRecord(f"not JSON we can read ({str(exc).split(':')[0]})") from None
        if not isinstance(raw, dict):
            raise BadRecord("not a JSON object")
        missing = [key for key in _REQUIRED_FIELDS if key not in raw]
        if missing:
            raise BadRecord(f"missing field {missing[0]!r}")
        return cls(
            request_id=_checked(raw, "request_id", _text),
            row=_checked(raw, "row", _row, default=0),
            timestamp=_checked(raw, "timestamp", _utc_time),
            model_name=_checked(raw, "model_name", _text),
            model_version=_checked(raw, "model_version", _version),
            features=_checked(raw, "features", _scalars),
            prediction=_checked(raw, "prediction", _scalar, default=None),
            probabilities=_checked(raw, "probabilities", _probabilities, default=None),
        )


_REQUIRED_FIELDS = ("request_id", "timestamp", "model_name", "model_version", "features")


def _checked(raw: dict[str, Any], key: str, read: Any, default: Any = ...) -> Any:
    value = raw.get(key)
    if value is None and default is not ...:
        return default
    try:
        return read(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRecord(f"bad value in {key!r} ({exc})") from None


def _finite(value: object) -> bool:
    """A JSON number Python reads as an int or float that is a finite float (not Infinity, NaN or 1e999)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} is not a string")
    value.encode()  # a lone surrogate (JSON's "\ud800") cannot be written anywhere: UnicodeEncodeError
    return value


def _row(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a row number")
    return value


def _version(value: object) -> str:
    return str(_row(value)) if isinstance(value, int) else _text(value)


def _utc_time(value: object) -> datetime:
    stamp = datetime.fromisoformat(_text(value))
    # A naive timestamp is taken as UTC; all in UTC, so any two compare (and none overflows later).
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _scalar(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool) or _finite(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        return _text(value)
    raise TypeError(f"{str(value)[:40]} is not a finite number, a string, true/false or null")


def _scalars(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{type(value).__name__} is not an object")
    return {_text(key): _scalar(item) for key, item in value.items()}


def _probabilities(value: object) -> dict[str, float]:
    if not isinstance(value, dict) or not all(_finite(p) for p in value.values()):
        raise TypeError("not an object of finite numbers")
    return {_text(key): p for key, p in value.items()}
