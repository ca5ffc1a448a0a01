"""The fairness limits a config may set, read by the config loader without heavy imports (services/fairness.py
computes them, for the gate and for monitoring). Standard library and the contract only."""

from __future__ import annotations

from typing import Literal

from services.contract import REGRESSION

Target = Literal["binary", "multiclass", "regression"]
# limit -> (the targets it is defined for, which side of the bound passes)
LIMITS: dict[str, tuple[tuple[Target, ...], Literal["max", "min"]]] = {
    "demographic_parity_difference": (("binary",), "max"),
    "demographic_parity_ratio": (("binary",), "min"),
    "equalized_odds_difference": (("binary",), "max"),
    "equalized_odds_ratio": (("binary",), "min"),
    "accuracy_difference": (("binary", "multiclass"), "max"),
    "error_difference": (("regression",), "max"),
    "error_ratio": (("regression",), "min"),
}
DEFAULT_LIMITS: dict[Target, dict[str, float]] = {
    "binary": {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.2},
    "multiclass": {"accuracy_difference": 0.1},
    "regression": {"error_ratio": 0.8},
}


def limits_of_task(task: str) -> list[str]:
    """The limits a config of this task may set (a classification config does not know its class count)."""
    targets = ("regression",) if task == REGRESSION else ("binary", "multiclass")
    return sorted(name for name, (defined_for, _) in LIMITS.items() if set(defined_for) & set(targets))
