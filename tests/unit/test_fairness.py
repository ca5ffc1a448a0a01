"""Fairness at the gate: fairlearn's group metrics across the sensitive columns, judged against the limits.

A model trained on a proxy of the sensitive column fails; one blind to it passes; each target gets its own
metrics; small groups are shown, not judged; a waiver is a config entry, recorded as the gate's override."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.linear_model import LinearRegression, LogisticRegression

from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.config_model import DataConfig, FairnessConfig
from pipelines.fairness import fairness_result, fairness_vs_champion


def loans(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Group b defaults more often; `zip_band` is a proxy of the group, `income` is not."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], rows)
    zip_band = np.where(group == "b", 1.0, 0.0) + rng.normal(0, 0.1, rows)
    income = rng.normal(0, 1, rows)
    defaulted = (rng.random(rows) < np.where(group == "b", 0.6, 0.2)).astype(int)
    return pd.DataFrame({"zip_band": zip_band, "income": income, "group": group, "defaulted": defaulted})


def data(features: list[str], target: str = "defaulted") -> DataConfig:
    return DataConfig(target=target, numeric_features=features, sensitive_features=["group"])


def fitted(frame: pd.DataFrame, features: list[str], estimator=None, target: str = "defaulted"):
    return (estimator or LogisticRegression()).fit(frame[features], frame[target])


def result(model, frame, config: DataConfig, fairness: FairnessConfig | None = None, task: str = "classification"):
    return fairness_result(model, frame, config, fairness or FairnessConfig(), task)


def test_a_model_trained_on_a_proxy_of_the_sensitive_column_fails_demographic_parity():
    frame = loans()
    checks = {c.name: c for c in result(fitted(frame, ["zip_band"]), frame, data(["zip_band"])).checks}
    assert not checks["demographic_parity_difference[group]"].passed
    assert checks["demographic_parity_difference[group]"].threshold == "<= 0.2"
    assert checks["demographic_parity_difference[group]"].candidate > 0.5


def test_a_model_blind_to_the_group_passes_and_shows_each_groups_rates():
    frame = loans()
    found = result(fitted(frame, ["income"]), frame, data(["income"]))
    assert all(check.passed for check in found.checks) and len(found.checks) == 2
    rows = {row["group"]: row for row in found.groups}
    assert set(rows) == {"a", "b"} and rows["a"]["judged"]
    assert {"selection_rate", "accuracy", "true_positive_rate", "false_positive_rate"} <= set(rows["a"])


def test_small_groups_are_shown_but_not_judged():
    frame = loans(rows=200)
    frame.loc[frame.index[:5], "group"] = "tiny"
    found = result(fitted(frame, ["income"]), frame, data(["income"]), FairnessConfig(min_group_rows=30))
    tiny = next(row for row in found.groups if row["group"] == "tiny")
    assert tiny["rows"] == 5 and not tiny["judged"]
    frame["group"] = np.where(frame.index < 190, "a", "b")
    alone = result(fitted(frame, ["income"]), frame, data(["income"]), FairnessConfig(min_group_rows=30))
    assert alone.checks == [] and "fewer than two groups of >= 30 rows" in alone.notes[0]


def test_a_waiver_in_the_config_lets_the_check_pass_and_is_the_gates_override():
    frame = loans()
    waived = FairnessConfig(waivers={"demographic_parity_difference[group]": "ticket RISK-12: regulator approved"})
    found = result(fitted(frame, ["zip_band"]), frame, data(["zip_band"]), waived)
    check = next(c for c in found.checks if c.name == "demographic_parity_difference[group]")
    assert check.passed and "waived: ticket RISK-12" in check.threshold
    assert found.override == "demographic_parity_difference[group] waived by fairness.waivers: ticket RISK-12: " \
                             "regulator approved"


def test_a_waiver_naming_no_check_is_a_note():
    frame = loans()
    found = result(fitted(frame, ["income"]), frame, data(["income"]), FairnessConfig(waivers={"typo[group]": "x"}))
    assert "fairness.waivers names no check of this gate: typo[group]" in found.notes


def test_more_classes_judge_accuracy_and_refuse_a_binary_limit_by_name():
    frame = loans()
    frame["grade"] = np.random.default_rng(1).choice(["x", "y", "z"], len(frame))
    model = fitted(frame, ["income"], target="grade")
    config = data(["income"], target="grade")
    assert [c.name for c in result(model, frame, config).checks] == ["accuracy_difference[group]"]
    refused = result(model, frame, config, FairnessConfig(limits={"demographic_parity_difference": 0.1})).checks[0]
    assert not refused.passed and refused.candidate == "not defined for a multiclass target"


def test_regression_compares_the_groups_mean_absolute_error():
    frame = loans()
    frame["amount"] = frame["income"] * 3 + np.where(frame["group"] == "b", np.random.default_rng(2).normal(
        0, 5, len(frame)), 0)  # group b is much harder to predict
    model = fitted(frame, ["income"], LinearRegression(), target="amount")
    found = result(model, frame, data(["income"], target="amount"), task="regression")
    (check,) = found.checks
    assert check.name == "error_ratio[group]" and not check.passed and check.threshold == ">= 0.8"
    assert "mean_absolute_error" in found.groups[0]


def test_a_positive_label_that_is_no_class_is_named():
    frame = loans()
    found = result(fitted(frame, ["income"]), frame, data(["income"]), FairnessConfig(positive_label="yes"))
    assert not found.checks[0].passed and found.checks[0].candidate \
        == "fairness.positive_label 'yes' is not a class of the target ([0, 1])"


def test_without_sensitive_columns_nothing_is_judged():
    frame = loans()
    plain = DataConfig(target="defaulted", numeric_features=["income"])
    assert result(fitted(frame, ["income"]), frame, plain).checks == []


@pytest.mark.parametrize(("update", "message"), [
    ({"fairness": {"limits": {"error_ratio": 0.8}}}, "fairness.limits.error_ratio: not a classification fairness"),
    ({"fairness": {"limits": {"accuracy_difference": 0.1}}, "data": {"sensitive_features": []}},
     "fairness.limits and fairness.waivers need data.sensitive_features"),
    ({"data": {"sensitive_features": ["defaulted"]}}, "data.sensitive_features: 'defaulted' is the target"),
])
def test_config_mistakes_name_the_key(update, message):
    raw = load_config(DEFAULT_CONFIG_PATH).model_dump(mode="json")
    for section, values in update.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(ValidationError, match=message):
        type(load_config(DEFAULT_CONFIG_PATH)).model_validate(raw)


def test_the_sensitive_column_is_kept_in_the_snapshot_once_and_is_not_a_feature():
    config = DataConfig(target="y", numeric_features=["x"], time_column="t", sensitive_features=["g", "t"])
    assert config.columns == ["x", "y", "t", "g"] and "g" not in config.features


class Fixed:
    """A model that answers the given predictions, with the classes it was trained on."""

    def __init__(self, predicted, classes=None) -> None:
        self.predicted = np.asarray(predicted)
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def predict(self, features):
        return self.predicted[: len(features)]


def test_a_group_without_positives_is_judged_on_its_false_positive_rate_only():
    frame = pd.DataFrame({"x": 0.0, "group": ["a"] * 40 + ["b"] * 40,
                          "defaulted": [1, 0] * 20 + [0] * 40})
    found = result(Fixed(frame["defaulted"], classes=[0, 1]), frame, DataConfig(
        target="defaulted", numeric_features=["x"], sensitive_features=["group"]),
        FairnessConfig(limits={"equalized_odds_difference": 0.1}))
    (check,) = found.checks
    assert check.passed and check.candidate == 0.0  # a perfect model; b's true positive rate is undefined
    b = next(row for row in found.groups if row["group"] == "b")
    assert np.isnan(b["true_positive_rate"]) and b["false_positive_rate"] == 0.0


def test_groups_all_at_zero_have_a_ratio_of_one_and_an_undefined_figure_fails_naming_why():
    frame = pd.DataFrame({"x": 0.0, "group": ["a"] * 40 + ["b"] * 40, "defaulted": [0] * 80})
    config = DataConfig(target="defaulted", numeric_features=["x"], sensitive_features=["group"])
    found = result(Fixed([0] * 80, classes=[0, 1]), frame, config,
                   FairnessConfig(limits={"demographic_parity_ratio": 0.8, "equalized_odds_ratio": 0.8}))
    checks = {c.name: c for c in found.checks}
    assert checks["demographic_parity_ratio[group]"].passed and checks["demographic_parity_ratio[group]"].candidate == 1
    assert checks["equalized_odds_ratio[group]"].passed  # no positives anywhere: the false positive rates judge
    frame["defaulted"] = [1] * 40 + [0] * 40  # a has only positives, b only negatives: no rate is shared
    undefined = result(Fixed(frame["defaulted"], classes=[0, 1]), frame, config,
                       FairnessConfig(limits={"equalized_odds_difference": 0.1})).checks[0]
    assert not undefined.passed and undefined.candidate.startswith("undefined")


def test_three_classes_with_two_in_the_eval_set_are_judged_as_more_classes():
    frame = pd.DataFrame({"x": 0.0, "group": ["a", "b"] * 40, "grade": ["x", "y"] * 40})
    config = DataConfig(target="grade", numeric_features=["x"], sensitive_features=["group"])
    found = result(Fixed(frame["grade"], classes=["x", "y", "z"]), frame, config)
    assert [c.name for c in found.checks] == ["accuracy_difference[group]"] and found.checks[0].passed


@pytest.mark.parametrize(("labels", "wanted"), [([0.0, 1.0], 1), ([True, False], True), (["no", "yes"], "yes")])
def test_the_positive_label_matches_numbers_numerically_and_text_as_text(labels, wanted):
    truth = labels * 40
    frame = pd.DataFrame({"x": 0.0, "group": ["a"] * 40 + ["b"] * 40, "defaulted": truth})
    config = DataConfig(target="defaulted", numeric_features=["x"], sensitive_features=["group"])
    found = result(Fixed(truth, classes=sorted(labels, key=str)), frame, config, FairnessConfig(positive_label=wanted))
    assert all(check.passed for check in found.checks) and found.checks


def versus(candidate_features: list[str], fairness: FairnessConfig | None = None):
    frame = loans()
    champion = fitted(frame, ["income"])  # blind to the group: near-equal selection rates
    return fairness_vs_champion(fitted(frame, candidate_features), champion, data(["income"]), frame,
                                data(candidate_features), fairness or FairnessConfig(limits={
                                    "demographic_parity_difference": 0.9, "demographic_parity_ratio": 0.0}),
                                "classification")


def test_a_candidate_much_less_fair_than_the_champion_fails_though_within_the_limits():
    checks = {c.name: c for c in versus(["zip_band"]).checks}
    difference, ratio = (checks["demographic_parity_difference[group] vs champion"],
                         checks["demographic_parity_ratio[group] vs champion"])
    assert not difference.passed and difference.candidate > difference.champion + 0.05
    assert difference.threshold == f"<= {difference.champion + 0.05:.4f}"
    assert not ratio.passed and ratio.threshold == f">= {ratio.champion - 0.05:.4f}"  # a ratio may not shrink


def test_a_candidate_as_fair_as_the_champion_passes_and_the_margin_is_the_configs():
    assert all(check.passed for check in versus(["income"]).checks)
    lenient = FairnessConfig(limits={"demographic_parity_difference": 0.9}, max_worsening=1.0)
    assert all(check.passed for check in versus(["zip_band"], lenient).checks)


def test_a_worsening_the_config_waives_passes_and_is_recorded():
    name = "demographic_parity_difference[group] vs champion"
    found = versus(["zip_band"], FairnessConfig(limits={"demographic_parity_difference": 0.9},
                                                waivers={name: "FAIR-7: accepted for the pilot"}))
    (check,) = found.checks
    assert check.passed and "waived: FAIR-7" in check.threshold and name in found.override


def test_a_waiver_of_either_kind_is_no_unused_note_in_the_other_kinds_checks():
    """A limit waiver and a vs-champion waiver each belong to one list of checks; neither is a typo in the other."""
    frame = loans()
    limit, versus_champion = "demographic_parity_difference[group]", "demographic_parity_difference[group] vs champion"
    fairness = FairnessConfig(limits={"demographic_parity_difference": 0.9},
                              waivers={limit: "RISK-12", versus_champion: "FAIR-7"})
    assert not [note for note in result(fitted(frame, ["income"]), frame, data(["income"]), fairness).notes
                if "names no check" in note]
    assert not [note for note in versus(["zip_band"], fairness).notes if "names no check" in note]
