"""Each column's drift margin points one way, for distances and p-values alike, and comes from the preset's test."""

from __future__ import annotations

import pytest

from pipelines.demo_data import make_loans
from services.monitoring.drift import prepare, read_findings, run_drift_report
from services.monitoring.margins import METRIC, drift_margin
from services.monitoring.reference import FeatureSchema

SCHEMA = FeatureSchema(numerical=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
                       categorical=["employment", "region", "purpose"])


@pytest.mark.parametrize(("score", "threshold", "drifted", "margin"), [
    (0.15, 0.1, True, 0.5),     # a distance past its threshold
    (0.05, 0.1, False, -0.5),   # a distance below it
    (0.01, 0.05, True, 0.8),    # a p-value below its threshold: drifted, so positive
    (0.5, 0.05, False, -9.0),   # a p-value well above it
    (0.1, 0.1, True, 0.0),      # a distance at its threshold drifts, by nothing
])
def test_the_margin_is_positive_exactly_when_drifted(score, threshold, drifted, margin):
    assert drift_margin(score, threshold, drifted) == pytest.approx(margin)


def margins_of(snapshot) -> dict[str, float]:
    return {metric["config"]["column"]: metric["value"] for metric in snapshot.dict()["metrics"]
            if str(metric["config"]["type"]).endswith(f":{METRIC}")}


@pytest.mark.parametrize("rows", [400, 3000])  # p-value tests (KS, chi-square), then distances
def test_the_report_carries_one_margin_per_column_from_the_presets_own_test(rows):
    reference = make_loans(3000, seed=1)[SCHEMA.columns]
    current = make_loans(rows, seed=2)[SCHEMA.columns]
    current["income"] = current["income"] * 3  # one column clearly drifted
    snapshot = run_drift_report(prepare(current, reference, SCHEMA), drift_share_threshold=0.3, min_rows=200)
    findings = read_findings(snapshot.dict())
    margins = margins_of(snapshot)
    assert margins == pytest.approx({column.column: column.margin for column in findings.columns})
    assert {name for name, margin in margins.items() if margin > 0} == {c.column for c in findings.columns if c.drifted}
    assert margins["income"] > 0
    # The margins read the preset's ValueDrift results: no second drift test per column.
    value_drifts = [r for r in snapshot.metric_results.values()
                    if str(r.metric_value_location.metric.params["type"]).endswith(":ValueDrift")]
    assert len(value_drifts) == len(SCHEMA.columns)
