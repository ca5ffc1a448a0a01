"""Verdict logic and reading a real Evidently report's results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.demo_data import make_loans
from services.contract import CLASSIFICATION
from services.monitoring.drift import (
    ColumnDrift,
    DriftFindings,
    Verdict,
    decide_verdict,
    labeled_rows,
    prepare,
    read_findings,
    run_drift_report,
    run_quality_report,
)
from services.monitoring.reference import FeatureSchema
from services.monitoring.tasks import monitored_task

SCHEMA = FeatureSchema(
    numerical=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
    categorical=["employment", "region", "purpose"],
)


@pytest.mark.parametrize(
    ("rows", "share", "expected"),
    [
        (199, 0.9, Verdict.NOT_ENOUGH_DATA),
        (200, None, Verdict.NOT_ENOUGH_DATA),
        (200, 0.0, Verdict.OK),
        (5000, 0.29, Verdict.OK),
        (200, 0.3, Verdict.DRIFT),
        (5000, 1.0, Verdict.DRIFT),
    ],
)
def test_verdict_from_rows_and_drift_share(rows, share, expected):
    assert decide_verdict(rows, share, min_rows=200, drift_share_threshold=0.3) is expected


def test_verdicts_have_distinct_exit_codes_apart_from_failures():
    codes = [verdict.exit_code for verdict in Verdict]
    assert codes[0] == 0 and len(set(codes)) == 3 and not {1, 2} & set(codes)
    assert Verdict.NOT_ENOUGH_DATA == "NOT ENOUGH DATA"


def test_prepare_drops_unknown_columns_and_types_values():
    reference = make_loans(500, seed=1).drop(columns=["defaulted", "applicant_group"])
    current = reference.head(50).astype(object).copy()
    current["shoe_size"] = 42
    current["credit_score"] = "n/a"  # bad value: becomes missing, the column is then absent
    current.loc[0, "income"] = "12"

    window = prepare(current, reference, SCHEMA)

    assert window.unknown_columns == ["shoe_size"]
    assert window.absent_columns == ["credit_score"]
    assert "credit_score" not in window.schema.columns and "shoe_size" not in window.current.columns
    assert window.current["income"].dtype == float and window.current.loc[0, "income"] == 12.0
    assert window.current["region"].map(type).eq(str).all()


def test_findings_read_from_a_real_report():
    reference = make_loans(3000, seed=7).drop(columns="defaulted")
    current = make_loans(1500, seed=8).drop(columns="defaulted")
    current["income"] *= 2.0
    current["debt_ratio"] += 0.4
    current["region"] = np.where(np.arange(len(current)) % 3 == 0, "north", current["region"])
    current.loc[: len(current) // 10, "age"] = np.nan

    snapshot = run_drift_report(prepare(current, reference, SCHEMA), drift_share_threshold=0.3, min_rows=200)
    findings = read_findings(snapshot.dict())

    assert set(findings.drifted) == {"income", "debt_ratio", "region"}
    assert findings.drifted_count == 3 and findings.drift_share == pytest.approx(3 / 8)
    assert {c.column for c in findings.columns} == set(SCHEMA.columns)
    income = next(c for c in findings.columns if c.column == "income")
    assert income.drifted and income.score > income.threshold and income.method
    assert findings.missing_share["age"] == pytest.approx(151 / 1500, abs=1e-3)
    assert findings.missing_share["income"] == 0.0


def test_classification_quality_on_labeled_rows_only():
    keys = pd.DataFrame({"request_id": ["a", "b", "c", "d"] * 20, "row": [0] * 80, "prediction": [1, 0, 1, 1] * 20})
    labels = {("a", 0): 1, ("b", 0): 0, ("c", 0): 0}  # d has no feedback yet

    classification = monitored_task(CLASSIFICATION)
    labeled = labeled_rows(keys, labels, classification)
    _, metrics = run_quality_report(labeled, classification)

    assert len(labeled) == 60 and set(labeled["target"]) == {"0", "1"}
    assert metrics["accuracy"] == pytest.approx(2 / 3)


def test_small_windows_use_p_value_tests_and_large_ones_distances():
    reference = make_loans(3000, seed=7).drop(columns="defaulted")
    methods = {}
    for rows in (300, 2000):
        current = make_loans(rows, seed=9).drop(columns="defaulted")
        snapshot = run_drift_report(prepare(current, reference, SCHEMA), drift_share_threshold=0.3, min_rows=200)
        methods[rows] = {c.column: (c.method, c.threshold) for c in read_findings(snapshot.dict()).columns}

    assert methods[300]["income"] == ("ks", 0.05) and methods[300]["region"] == ("chisquare", 0.05)
    assert methods[2000]["income"] == ("Wasserstein distance (normed)", 0.1)
    assert methods[2000]["region"] == ("Jensen-Shannon distance", 0.1)


def test_drifted_columns_are_listed_strongest_first_for_distances_and_p_values():
    findings = DriftFindings(
        drift_share=0.75,
        drifted_count=3,
        columns=[
            ColumnDrift("weak_distance", 0.15, "wasserstein", 0.1, True),
            ColumnDrift("strong_p_value", 1e-12, "ks", 0.05, True),
            ColumnDrift("mid_p_value", 0.001, "ks", 0.05, True),
            ColumnDrift("calm", 0.5, "ks", 0.05, False),
        ],
        missing_share={},
    )
    assert findings.drifted == ["strong_p_value", "mid_p_value", "weak_distance"]
