"""A feature going missing is drift: a column with no value in the window, or a jump in its missing share.

Evidently compares the values a column has; a column that arrives all-null cannot be compared at all, and
one that is suddenly half null still compares fine on the half that is left. Either way the model's imputer
fills the gaps with a constant and its predictions skew while the value-drift tests see nothing. So the job
compares each feature's share of missing values in the window with the reference's: a feature with no value
in the window, or whose missing share rose by more than `max_missing_share_increase`, counts as drifted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class MissingShift:
    """A feature whose values went missing: its share of missing values in the window and in the reference."""

    column: str
    current: float
    reference: float

    @property
    def absent(self) -> bool:
        return self.current >= 1.0

    @property
    def label(self) -> str:
        """How the summary names it."""
        if self.absent:
            return f"{self.column} (no values)"
        return f"{self.column} (missing {self.current:.0%}, reference {self.reference:.0%})"


def missing_shares(frame: pd.DataFrame) -> dict[str, float]:
    """Share of rows without a value, per column (an empty frame counts as all missing)."""
    if frame.empty:
        return {str(column): 1.0 for column in frame.columns}
    return {str(column): float(share) for column, share in frame.isna().mean().items()}


def missing_shifts(
    current: dict[str, float], reference: dict[str, float], *, max_increase: float
) -> list[MissingShift]:
    """Features gone missing in the window, those with no value at all first, then by the size of the jump.

    A feature the reference has no value for is not a shift (there is nothing it went missing from).
    """
    shifts = []
    for column, share in current.items():
        before = reference.get(column, 0.0)
        if before >= 1.0:
            continue
        if share >= 1.0 or share - before > max_increase:
            shifts.append(MissingShift(column, share, before))
    return sorted(shifts, key=lambda s: (not s.absent, -(s.current - s.reference)))
