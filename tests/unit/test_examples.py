"""The examples' own pieces, without servers: configs load, data scripts are deterministic, and the team's
declared trusted types are exactly what its fitted model holds beyond the template's pin."""

from __future__ import annotations

import runpy
import sys

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from pipelines.config import load_config
from pipelines.task import task_for
from pipelines.team_code import import_object, make_importable
from services.serving.model_trust import types_outside_pin
from tests.example_runs import EXAMPLES

MAKERS = {"demand": "make_demand", "species": "make_species", "team": "make_subscriptions"}


def generated(name: str) -> pd.DataFrame:
    return runpy.run_path(str(EXAMPLES / name / "make_data.py"))[MAKERS[name]]()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_example_config_loads_and_fits_its_data(name):
    config = load_config(EXAMPLES / name / "pipeline.yaml")
    frame = generated(name)
    assert config.data.source_path().name == f"{'subscriptions' if name == 'team' else name}.parquet"
    assert set(config.data.columns) <= set(frame.columns)
    data = config.data
    assert task_for(config.task).target_problem(frame[data.target], data.target, split=data.split,
                                                holdout_fraction=data.holdout_fraction) is None
    assert 2000 <= len(frame) <= 5000  # small enough for the end-to-end tiers


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_data_scripts_are_deterministic(name):
    pd.testing.assert_frame_equal(generated(name), generated(name))


def test_demand_holds_out_its_newest_days():
    config = load_config(EXAMPLES / "demand" / "pipeline.yaml")
    frame = generated("demand")
    train, holdout = task_for(config.task).split_snapshot(frame, config.data)
    assert train["date"].max() < holdout["date"].min()


def test_the_team_declares_exactly_the_types_its_model_needs(monkeypatch):
    config = load_config(EXAMPLES / "team" / "pipeline.yaml")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the team's folder leaves the path again
    make_importable(config.code_folders)
    frame = generated("team")
    model = Pipeline([("features", import_object(config.features.transformer, "features.transformer")()),
                      ("estimator", import_object(config.model.estimator, "model.estimator")(**config.model.params))])
    model.fit(frame[config.data.features], frame[config.data.target])
    assert types_outside_pin(model) == sorted(config.model.trusted_types)
    assert set(model.predict(frame[config.data.features].head(50))) <= {0, 1}
