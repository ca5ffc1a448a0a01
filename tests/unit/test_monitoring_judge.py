"""Judging one version's window is a value (judge.py); its wording is pure strings (summary.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipelines.demo_data import make_loans
from services.inference_record import InferenceRecord
from services.monitoring.drift import ColumnDrift, DriftFindings, PreparedWindow, Verdict
from services.monitoring.feedback import Feedback
from services.monitoring.inference_log import LogScan, VersionTraffic, WindowSpec
from services.monitoring.judge import Judged, NotJudged, Shortfall, judge, too_few_rows
from services.monitoring.reference import FeatureSchema, Reference
from services.monitoring.settings import MonitorSettings
from services.monitoring.summary import (
    drift_summary,
    nothing_to_judge_summary,
    overall_summary,
    version_summary,
)

SCHEMA = FeatureSchema(
    numerical=["age", "income", "loan_amount", "credit_score", "debt_ratio"],
    categorical=["employment", "region", "purpose"],
)
START = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path):
    return MonitorSettings(
        tracking_uri="http://mlflow.invalid",
        model_name="loans",
        inference_log_dir=tmp_path / "log",
        workspace_dir=tmp_path / "workspace",
        reports_dir=tmp_path / "reports",
        heartbeat_file=tmp_path / "heartbeat",
    )


def traffic(frame: pd.DataFrame, version: str = "3") -> VersionTraffic:
    records = [
        InferenceRecord(f"req-{i}", 0, START + timedelta(seconds=i), "loans", version, features, i % 2)
        for i, features in enumerate(frame.to_dict("records"))
    ]
    return VersionTraffic(version, len(records), START, START + timedelta(seconds=len(records) - 1), records)


def reference(version: str = "3") -> Reference:
    frame = make_loans(1500, seed=1).drop(columns="defaulted")
    return Reference(model_version=version, run_id="train-run", target="defaulted", schema=SCHEMA, frame=frame)


def findings(drifted: list[str], share: float, columns: int = 8) -> DriftFindings:
    names = [*drifted, *[f"c{i}" for i in range(columns - len(drifted))]]
    return DriftFindings(
        drift_share=share,
        drifted_count=len(drifted),
        columns=[
            ColumnDrift(name, 0.5 if name in drifted else 0.01, "wasserstein", 0.1, name in drifted) for name in names
        ],
        missing_share={},
    )


def window(absent: tuple[str, ...] = (), unknown: tuple[str, ...] = ()) -> PreparedWindow:
    return PreparedWindow(
        pd.DataFrame(), pd.DataFrame(), SCHEMA, unknown_columns=list(unknown), absent_columns=list(absent)
    )


def test_version_summary_words_drift_ok_and_absent_columns(settings):
    drift = drift_summary(
        "loans",
        "3",
        Verdict.DRIFT,
        findings(["income", "region", "age"], 0.375),
        window(("credit_score",), ("shoe",)),
        settings,
    )
    assert drift == (
        "loans v3: 3 of 8 columns drifted (share 0.38 >= 0.30): income, region, age; "
        "no values for credit_score; ignored unknown columns shoe"
    )
    assert drift_summary("loans", "2", Verdict.OK, findings([], 0.0), window(), settings) == (
        "loans v2: 0 of 8 columns drifted (share 0.00 < 0.30)"
    )


def test_not_judged_windows_are_worded_by_their_shortfall(settings):
    thin = traffic(make_loans(50, seed=2).drop(columns="defaulted"))
    assert (
        version_summary(settings, NotJudged(thin, Shortfall.TOO_FEW_ROWS))
        == "loans v3: 50 rows in the window, 200 needed"
    )
    missing = NotJudged(thin, Shortfall.NO_REFERENCE, problem="model version loans v3 is not in the registry (X)")
    assert (
        version_summary(settings, missing)
        == "loans v3: no reference, model version loans v3 is not in the registry (X)"
    )
    blank = NotJudged(thin, Shortfall.NO_JUDGED_COLUMNS, reference=reference())
    assert version_summary(settings, blank) == (
        "loans v3: none of the model's features ['age', 'income', 'loan_amount', 'credit_score', 'debt_ratio', "
        "'employment', 'region', 'purpose'] has values in the window"
    )


@dataclass(frozen=True)
class Outcome:
    model_version: str
    verdict: Verdict
    summary: str
    rows: int
    window_start: datetime | None = None
    window_end: datetime | None = None


def test_the_run_summary_names_the_deciding_version_the_action_and_the_rest(settings, tmp_path):
    drifted = Outcome("3", Verdict.DRIFT, "loans v3: drifted", 1234, START, START + timedelta(minutes=5))
    thin = Outcome("2", Verdict.NOT_ENOUGH_DATA, "loans v2: thin", 10, START, START)
    scan = LogScan(log_dir=tmp_path, versions={}, skipped_lines=2)

    assert overall_summary(drifted, [drifted, thin], scan, settings, True) == (
        "DRIFT: loans v3: drifted; 1,234 rows 2026-11-27 07:00:00–07:05:00 UTC; retrain requested; "
        "also v2 NOT ENOUGH DATA; 2 unreadable log lines skipped"
    )
    assert overall_summary(drifted, [drifted], LogScan(tmp_path, {}), settings, False, champion="3").endswith(
        "; retrain already requested or done within the last 60 min (cooldown)"
    )
    # Only the champion's drift asks for a retrain: leftover traffic of a retired version is reported.
    assert overall_summary(drifted, [drifted], LogScan(tmp_path, {}), settings, False, champion="4").endswith(
        "; no retrain request: v3 is not @champion (v4 is)"
    )
    assert overall_summary(drifted, [drifted], LogScan(tmp_path, {}), settings, False).endswith(
        "; no retrain request: v3 is not @champion (no version is)"
    )
    quiet = settings.overridden(on_drift="none")
    assert overall_summary(drifted, [drifted], LogScan(tmp_path, {}), quiet, False).endswith(
        "; no action (on_drift=none)"
    )
    assert overall_summary(thin, [thin], LogScan(tmp_path, {}), settings, False) == "NOT ENOUGH DATA: loans v2: thin"


def test_nothing_to_judge_says_since_when(settings, tmp_path):
    scan = LogScan(log_dir=tmp_path, versions={}, problems=["a.jsonl:1: skipped"], skipped_lines=1)
    assert nothing_to_judge_summary(settings, scan, WindowSpec(since={"1": START})) == (
        "NOT ENOUGH DATA: loans: no logged rows since the last report; a.jsonl:1: skipped; "
        "1 unreadable log lines skipped"
    )
    assert nothing_to_judge_summary(settings, LogScan(tmp_path, {}), WindowSpec()) == (
        "NOT ENOUGH DATA: loans: no logged rows in the window"
    )


def test_judge_returns_a_drift_verdict_and_writes_nothing(settings, tmp_path):
    current = make_loans(400, seed=3).drop(columns=["defaulted", "applicant_group"])
    current["income"] *= 3.0
    current["debt_ratio"] += 0.5
    current["credit_score"] -= 150
    current["region"] = "north"
    current = current.drop(columns="purpose").assign(shoe_size=42)
    feedback = {(f"req-{i}", 0): Feedback(i % 2 if i % 4 else 1 - i % 2) for i in range(120)}
    said: list[str] = []

    judged = judge(settings, traffic(current), reference(), feedback=lambda wanted: feedback, progress=said.append)

    assert isinstance(judged, Judged) and judged.verdict is Verdict.DRIFT
    assert {"income", "debt_ratio", "credit_score", "region"} <= set(judged.findings.drifted)
    assert judged.window.absent_columns == ["purpose"] and judged.window.unknown_columns == ["shoe_size"]
    assert judged.findings.drifted[0] == "purpose"  # not logged at all: gone missing, the strongest drift
    assert (judged.rows, judged.window_start, judged.model_version) == (400, START, "3")
    assert judged.quality is not None and judged.quality.metrics["accuracy"] == pytest.approx(0.75)
    assert said == ["judging 400 sampled of 400 rows of v3 with Evidently"]
    assert not any(tmp_path.iterdir()), "judging writes no report, workspace or log"
    assert version_summary(settings, judged).startswith(
        "loans v3: 5 of 8 columns drifted (share 0.62 >= 0.30): purpose (no values), "
    )


def test_judge_returns_not_enough_data_as_a_value(settings):
    thin = traffic(make_loans(50, seed=2).drop(columns="defaulted"))
    assert too_few_rows(settings, thin) == NotJudged(thin, Shortfall.TOO_FEW_ROWS)
    assert judge(settings, thin, reference()) == NotJudged(thin, Shortfall.TOO_FEW_ROWS)

    unrelated = traffic(pd.DataFrame({"shoe_size": range(300)}))
    blank = judge(settings, unrelated, reference())
    assert isinstance(blank, NotJudged) and blank.shortfall is Shortfall.NO_JUDGED_COLUMNS
    assert blank.verdict is Verdict.NOT_ENOUGH_DATA and blank.rows == 300
    assert too_few_rows(settings, unrelated) is None


def test_a_feature_gone_missing_counts_as_drift(settings):
    """Item 5: a feature arriving all-null, or with a jump in its missing share, is drifted and named."""
    current = make_loans(400, seed=4).drop(columns="defaulted").astype(object)
    current["income"] = None  # the client stopped sending it: the imputer fills in a constant
    current.loc[: int(0.4 * len(current)) - 1, "age"] = None  # 40% missing, the reference has none
    current.loc[: int(0.5 * len(current)) - 1, "credit_score"] = None
    current.loc[: int(0.05 * len(current)) - 1, "loan_amount"] = None  # within max_missing_share_increase

    judged = judge(settings, traffic(current), reference(), feedback=lambda wanted: {})

    assert isinstance(judged, Judged) and judged.verdict is Verdict.DRIFT
    assert judged.findings.drifted[:3] == ["income", "credit_score", "age"]
    assert "loan_amount" not in judged.findings.drifted
    assert judged.findings.drift_share == pytest.approx(len(judged.findings.drifted) / 8)
    assert judged.findings.missing_share["income"] == 1.0 and judged.window.missing_reference["income"] == 0.0
    summary = version_summary(settings, judged)
    assert summary.startswith(
        f"loans v3: {len(judged.findings.drifted)} of 8 columns drifted (share {judged.findings.drift_share:.2f} "
        ">= 0.30): income (no values), credit_score (missing 50%, reference 0%), age (missing 40%, reference 0%)"
    )
    assert "no values for" not in summary

    lenient = settings.overridden(max_missing_share_increase=0.45)
    relaxed = judge(lenient, traffic(current), reference(), feedback=lambda wanted: {})
    assert relaxed.findings.drifted[:2] == ["income", "credit_score"] and "age" not in relaxed.findings.drifted
