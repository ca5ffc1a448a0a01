"""The model card's text from recorded facts: every section, the task's target summary, and a description that
fits MLflow's column (the passed checks left out first)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from pipelines import model_card
from pipelines.config import DEFAULT_CONFIG_PATH, load_config
from pipelines.config_model import CardConfig
from pipelines.gate_checks import Check
from pipelines.model_card import (
    CARD_HTML,
    CARD_MARKDOWN,
    MAX_DESCRIPTION_CHARS,
    CardFacts,
    card_html,
    card_markdown,
    description,
)
from pipelines.registry import ResolvedVersion


def facts(checks: list[Check], task: str = "classification", card: CardConfig | None = None,
          fairness: list[dict] | None = None) -> CardFacts:
    config = load_config(DEFAULT_CONFIG_PATH)
    if task == "regression":
        config = config.model_copy(update={"task": "regression"})
    target = config.data.target
    holdout = pd.DataFrame({target: [0, 0, 0, 1] if task == "classification" else [1.0, 2.0, 3.0, 10.0]})
    version = ResolvedVersion(name="loan-default", version="3", run_id="run123", data_version="d" * 64,
                              git_sha="abc123", trained_with=config, tagged_estimator="sklearn.ensemble.Forest")
    return CardFacts(version=version, card=card or CardConfig(), passed=all(c.passed for c in checks),
                     runtime="onnxruntime", metrics={"accuracy": 0.91234, "f1": 0.8}, checks=checks,
                     notes=["no @champion yet"], fairness=fairness or [], holdout=holdout,
                     run_params={"rows": "5000", "model.max_depth": "8"},
                     run_tags={"data_source": "s3://lake/loans.parquet"}, champion_version=None,
                     written_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC))


def test_every_section_from_the_recorded_facts():
    card = CardConfig(owner="credit-risk team", intended_use="pre-screening loan applications",
                      limitations=["not for business loans"])
    text = card_markdown(facts([Check("accuracy", 0.91, True, threshold=">= 0.7")], card=card))
    assert text.startswith("# Model card: loan-default v3\n")
    assert "Gate **PASSED** on 2026-12-03 12:00 UTC; serves on onnxruntime." in text
    for expected in ("pre-screening loan applications", "credit-risk team", "- not for business loans",
                     "| max_depth | 8 |", "`s3://lake/loans.parquet`", "| rows | 5000 |",
                     "| eval rows (frozen holdout) | 4 |",
                     "| 0 | 75.0% |", "| accuracy | 0.9123 |", "| accuracy | 0.91 |  | >= 0.7 | pass |",
                     "- no @champion yet", "| training run | run123 |", "| team code sha256 | no team code |"):
        assert expected in text, expected


def test_a_card_without_the_teams_words_says_which_keys_to_set():
    text = card_markdown(facts([]))
    assert "_not given: set `card.intended_use` in the pipeline config_" in text
    assert "_not given: set `card.owner`" in text and "_not given: set `card.limitations`" in text


def test_regression_summarises_the_target_instead_of_classes():
    text = card_markdown(facts([], task="regression"))
    assert "| mean | std | min | max |" in text and "| 4 | 4.082 | 1 | 10 |" in text


def test_a_long_card_is_described_without_its_passed_checks_and_fits_mlflows_column():
    checks = [Check(f"accuracy[region=r{i}] (n=40)", 0.9, True, threshold=">= 0.75") for i in range(200)]
    checks.append(Check("accuracy[region=x] (n=40)", 0.5, False, threshold=">= 0.75"))
    described = description(facts(checks))
    assert len(card_markdown(facts(checks))) > MAX_DESCRIPTION_CHARS >= len(described)
    assert "| accuracy[region=x] (n=40) | 0.5 |  | >= 0.75 | **FAIL** |" in described
    assert "200 more checks passed (the whole table: the run's `card/model-card.md`)." in described


def test_a_pipe_in_a_value_does_not_break_the_table_and_the_html_renders_tables():
    text = card_markdown(facts([Check("a|b", "x|y", True)]))
    assert "| a\\|b | x\\|y |" in text
    html = card_html(text, "loan-default v3")
    assert "<table>" in html and "<h1>Model card: loan-default v3</h1>" in html


def test_the_fairness_table_shows_every_group_and_marks_the_small_ones():
    groups = [{"column": "applicant_group", "group": "group_a", "rows": 700, "judged": True, "selection_rate": 0.31},
              {"column": "applicant_group", "group": "group_z", "rows": 4, "judged": False, "selection_rate": 0.5}]
    text = card_markdown(facts([], fairness=groups))
    assert "## Fairness" in text and "| column | group | eval rows | selection_rate |" in text
    assert "| applicant_group | group_a | 700 | 0.3100 |" in text
    assert "| applicant_group | group_z | 4 (too few to judge) | 0.5000 |" in text
    assert "_not computed for applicant_group: see the gate's notes_" in card_markdown(facts([]))


def test_a_gate_stopped_before_the_model_says_so_instead_of_empty_figures():
    stopped = CardFacts(**{**facts([Check("team code = this checkout's", "abc", False)]).__dict__,
                           "holdout": None, "metrics": {}, "not_run": "the gate stopped at the team-code check"})
    text = card_markdown(stopped)
    assert text.count("_the gate stopped at the team-code check_") == 2  # metrics and fairness
    assert "| eval rows (frozen holdout) | not read |" in text and "Class balance" not in text


def test_data_in_the_card_is_text_in_the_html_never_markup():
    text = card_markdown(facts([Check("accuracy[region=<script>alert(1)</script>]", 0.9, True)]))
    html = card_html(text, "<b>m</b> v3")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<title>&lt;b&gt;m&lt;/b&gt; v3</title>" in html


def test_a_long_card_keeps_its_later_facts_whole_in_the_description():
    checks = [Check(f"accuracy[region=r{i}] (n=40)", 0.9, i != 3, threshold=">= 0.75") for i in range(400)]
    later = "\n\n## Later facts\n- 2026-12-04 10:00 UTC: deploy to local: serving at http://127.0.0.1:3000\n"
    described = description(facts(checks), later)
    assert len(described) <= MAX_DESCRIPTION_CHARS and described.endswith(later)


class Client:
    """What record_card asks of MLflow, in memory: the run's text artifacts and the version's description."""

    def __init__(self, card: str | None) -> None:
        self.artifacts = {CARD_MARKDOWN: card} if card else {}
        self.description = ""

    def log_text(self, run_id, text, path):
        self.artifacts[path] = text

    def update_model_version(self, name, version, description):
        self.description = description


def test_a_new_gate_keeps_the_later_facts_of_the_card_it_replaces(monkeypatch):
    earlier = ("# Model card: loan-default v3\n\nold findings\n\n## Later facts\n"
               "- 2026-12-04 10:00 UTC: deploy to local: serving at http://127.0.0.1:3000 as @champion\n")
    client = Client(earlier)
    monkeypatch.setattr(model_card, "gated_card", lambda model: client.artifacts.get(CARD_MARKDOWN))
    text = model_card.record_card(client, facts([Check("accuracy", 0.91, True, threshold=">= 0.7")]))
    assert "old findings" not in text and "| accuracy | 0.91 |" in text
    assert text.endswith("## Later facts\n- 2026-12-04 10:00 UTC: deploy to local: serving at http://127.0.0.1:3000 "
                         "as @champion\n")
    assert client.description.endswith("as @champion\n") and client.artifacts[CARD_HTML].count("Later facts") == 1
