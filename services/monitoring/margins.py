"""Each column's drift margin past its own threshold, in one direction: above 0 drifted, at or below 0 not.

Evidently scores a column with a distance (drifted at or above its threshold) or with a p-value (drifted
below it), so its per-column scores on one axis point both ways. The margin is how far past its threshold
a score is, relative to the threshold: (score - threshold) / threshold for a distance, (threshold - p) /
threshold for a p-value; +0.5 is half a threshold past it. `ColumnDriftMargin` puts it in the report, so
the Evidently UI's "drift margin per column" panel plots it; it reads the preset's own `ValueDrift` result
(the same metric, so computed once), never a second drift test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from evidently.core.datasets import Dataset
from evidently.core.metric_types import ColumnMetric, SingleValue, SingleValueCalculation, SingleValueMetric
from evidently.metrics import ValueDrift

if TYPE_CHECKING:
    from evidently.core.report import Context

METRIC = "ColumnDriftMargin"  # its name in the Evidently UI's panels (workspace.py)


def drift_margin(score: float, threshold: float, drifted: bool) -> float:
    """The score's margin past its threshold, positive when drifted, whichever way the test points."""
    # The test's own verdict tells its direction: drifted at or above the threshold is a distance, below a p-value.
    higher_is_drift = (score >= threshold) == drifted
    past = score - threshold if higher_is_drift else threshold - score
    return past / max(threshold, 1e-12)


class ColumnDriftMargin(ColumnMetric, SingleValueMetric):
    """The drift margin of one column, from the `ValueDrift(column, method)` the drift preset computes."""

    method: Optional[str] = None  # noqa: UP045 - Evidently's models are pydantic v1: no `X | None` at runtime


class ColumnDriftMarginCalculation(SingleValueCalculation[ColumnDriftMargin]):
    def calculate(self, context: Context, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        drift = context.calculate_metric(ValueDrift(column=self.metric.column, method=self.metric.method)
                                         .to_calculation())
        threshold = float(drift.metric_value_location.metric.params["threshold"])
        drifted = any(str(test.status).rsplit(".", 1)[-1] == "FAIL" for test in drift.tests)
        result = self.result(drift_margin(float(drift.value), threshold, drifted))
        result.widget = []  # no widget of its own in the HTML: the preset's shows this column's drift already
        return result

    def display_name(self) -> str:
        return f"Drift margin past the threshold for {self.metric.column} (above 0 = drifted)"
