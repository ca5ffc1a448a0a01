"""Which versions fall outside the `lifecycle` limits (`pipelines gc` retires those without a role)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pipelines.config_model import LifecycleConfig
from pipelines.lifecycle import outside

NOW = datetime(2026, 12, 4, tzinfo=UTC)
CREATED = {str(n): NOW - timedelta(days=10 - n) for n in range(1, 11)}  # v1 ten days old ... v10 today


@pytest.mark.parametrize(("limits", "retired"), [
    ({}, []),  # no limit: nothing is outside
    ({"keep_last": 3}, [str(n) for n in range(1, 8)]),
    ({"keep_days": 2.5}, [str(n) for n in range(1, 8)]),
    ({"keep_last": 5, "keep_days": 2.5}, ["1", "2", "3", "4", "5"]),  # kept by either limit
    ({"keep_last": 2, "keep_days": 4.5}, ["1", "2", "3", "4", "5"]),
    ({"keep_last": 20}, []),
])
def test_a_version_stays_while_either_limit_keeps_it(limits, retired):
    assert outside(CREATED, LifecycleConfig(**limits), NOW) == retired


def test_versions_are_ordered_by_number_not_text():
    assert outside({"9": NOW, "10": NOW, "11": NOW}, LifecycleConfig(keep_last=2), NOW) == ["9"]


@pytest.mark.parametrize("field", ["keep_last", "keep_days"])
def test_a_limit_of_zero_is_refused_naming_it(field):
    with pytest.raises(ValidationError, match=field):
        LifecycleConfig(**{field: 0})
