"""What a bento says about itself (labels) and what a failed release build says (the package it lacks)."""

from __future__ import annotations

from pipelines.bento import labels
from pipelines.config import PipelineConfig
from pipelines.registry import ResolvedVersion
from pipelines.stack import release_build_error
from services.contract import CODE_SHA256_TAG, ESTIMATOR_TAG

LACKING = ("the serving runtime image lacks lightgbm==4.7.0 that model demand v3 needs; add it to "
           "services/serving/requirements.in")


def test_bento_labels_name_the_task_estimator_and_team_code():
    config = PipelineConfig.model_validate({"model_name": "demand", "task": "regression",
                                            "data": {"target": "units", "numeric_features": ["price"]}})
    model = ResolvedVersion(name="demand", version="3", run_id="r" * 32, data_version="d", git_sha="g",
                            trained_with=config)
    found = labels(model, {ESTIMATOR_TAG: "lightgbm.LGBMRegressor", CODE_SHA256_TAG: "ab" * 32})
    assert found == {**model.labels, "task": "regression", "estimator": "lightgbm.LGBMRegressor",
                     "code_sha256": "ab" * 32}


def test_a_release_build_refused_for_a_missing_package_says_which():
    log = f"Step 6/6 : RUN python ...\n ---> Running in 1f2e\n{LACKING}\n{LACKING}\nThe command returned 1\n"
    assert str(release_build_error("mlops-serving:v3-x", log)) == f"release image mlops-serving:v3-x refused: {LACKING}"
    assert "failed:\nno space left" in str(release_build_error("t", "no space left"))
