"""Fairness on live traffic: the gate's group figures on rows with feedback, by the limits the version was gated
with (its recorded config), in the report line, the run's metrics and tags, and the findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.contract import CLASSIFICATION
from services.monitoring.fairness import FairnessSettings, fairness_metrics, fairness_summary, live_fairness
from services.monitoring.feedback import Feedback
from services.monitoring.tasks import monitored_task

SETTINGS = FairnessSettings(["applicant_group"], {"demographic_parity_difference": 0.1}, min_group_rows=30)


def window(rows: int, biased: bool, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Served predictions and their feedback; `biased`: group b is refused far more often at equal truth."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b"], rows)
    truth = rng.integers(0, 2, rows)
    flip = rng.random(rows) < 0.1
    predicted = np.where(flip, 1 - truth, truth)
    if biased:
        predicted = np.where((groups == "b") & (rng.random(rows) < 0.6), 0, predicted)
    keys = pd.DataFrame({"request_id": [f"req-{i}" for i in range(rows)], "row": 0, "prediction": predicted.tolist()})
    feedback = {(f"req-{i}", 0): Feedback(int(truth[i]), {"applicant_group": str(groups[i])}) for i in range(rows)}
    return keys, feedback


def judged(keys, feedback, settings=SETTINGS, min_labeled_rows=50):
    return live_fairness(keys, feedback, settings, monitored_task(CLASSIFICATION), min_labeled_rows=min_labeled_rows)


def test_fair_traffic_stays_within_the_gates_limits():
    fairness = judged(*window(600, biased=False))
    assert fairness.rows == 600 and fairness.within_limits
    assert [f.name for f in fairness.findings.limits] == ["demographic_parity_difference[applicant_group]"]
    assert {row["group"] for row in fairness.findings.groups} == {"a", "b"}
    assert "live fairness within the gate's limits (1 checks on 600 labeled rows)" in fairness_summary(fairness)


def test_traffic_biased_against_a_group_is_over_the_limit_in_the_line_and_the_metrics():
    fairness = judged(*window(600, biased=True))
    assert not fairness.within_limits
    line = fairness_summary(fairness)
    assert "live fairness OVER the gate's limits on 600 labeled rows: demographic_parity_difference[applicant_group]" \
        in line and "(limit <= 0.1)" in line
    (value,) = fairness_metrics(fairness).values()
    assert value > 0.1


def test_a_waived_limit_stays_waived_on_live_traffic():
    waived = FairnessSettings(**{**SETTINGS.__dict__, "waivers": {
        "demographic_parity_difference[applicant_group]": "reviewed: legacy policy"}})
    fairness = judged(*window(600, biased=True), settings=waived)
    assert fairness.within_limits and "waived: reviewed: legacy policy" in fairness.findings.limits[0].threshold


def test_too_little_feedback_or_no_sensitive_column_is_not_judged():
    keys, feedback = window(600, biased=True)
    assert judged(keys, dict(list(feedback.items())[:40])) is None
    assert judged(keys, feedback, settings=None) is None


def test_rows_whose_feedback_has_no_group_form_a_missing_group():
    keys, feedback = window(200, biased=False)
    stripped = {key: Feedback(given.label) for key, given in feedback.items()}
    fairness = judged(keys, stripped)
    assert [(row["group"], row["rows"]) for row in fairness.findings.groups] == [("missing", 200)]
    assert fairness.within_limits is None, "no limit judged is no verdict, neither within nor over"
    assert "not judged" in fairness_summary(fairness) and "fewer than two groups" in fairness_summary(fairness)


@pytest.mark.parametrize(("recorded", "expected"), [
    ({"data": {"sensitive_features": ["g"]}, "fairness": {"limits": {"accuracy_difference": 0.2},
                                                          "min_group_rows": 10, "positive_label": 1}},
     FairnessSettings(["g"], {"accuracy_difference": 0.2}, 10, 1, {})),
    ({"data": {"sensitive_features": []}}, None),
    ({"data": {}}, None),
    ({"data": "not a mapping"}, None),
    ({}, None),
])
def test_the_settings_come_from_the_versions_recorded_config(recorded, expected):
    assert FairnessSettings.from_recorded(recorded) == expected
