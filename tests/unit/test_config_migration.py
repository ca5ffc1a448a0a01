"""A template version's key rename reaches the team's configs as a one-line change: comments, order and the
same name elsewhere in the file stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config_migration import main, migrate, rename_key

CONFIG = """\
model_name: churn
data:
  source: models/churn/table.csv   # holdout_fraction below
  # holdout_fraction: 0.5  (a comment keeps its words)
  holdout_fraction: 0.2
  seed: 7
gates:
  holdout_fraction: 3
"""


def test_the_key_is_renamed_in_its_section_only():
    renamed = rename_key(CONFIG, "data.holdout_fraction", "data.eval_fraction")
    assert yaml.safe_load(renamed) == {**yaml.safe_load(CONFIG), "data": {
        "source": "models/churn/table.csv", "eval_fraction": 0.2, "seed": 7}}
    assert renamed.replace("  eval_fraction: 0.2", "  holdout_fraction: 0.2") == CONFIG


def test_a_config_without_the_key_is_left_as_it_is():
    assert rename_key(CONFIG, "monitoring.min_rows", "monitoring.window_rows") == CONFIG
    assert rename_key(CONFIG, "data.split", "data.split_kind") == CONFIG


def test_every_team_config_is_migrated_and_named(tmp_path: Path, capsys):
    for name, text in (("churn", CONFIG), ("other", "model_name: other\n")):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "pipeline.yaml").write_text(text)
    main(["data.holdout_fraction", "data.eval_fraction", "--root", str(tmp_path)])
    assert "eval_fraction: 0.2" in (tmp_path / "models" / "churn" / "pipeline.yaml").read_text()
    out = capsys.readouterr().out
    assert "models/churn/pipeline.yaml" in out and "1 config(s) changed" in out
    assert migrate(tmp_path, "data.holdout_fraction", "data.eval_fraction") == []


def test_a_move_to_another_section_is_refused_naming_both_keys(tmp_path):
    with pytest.raises(SystemExit, match=r"data\.seed -> model\.seed moves the key to another section"):
        migrate(tmp_path, "data.seed", "model.seed")
