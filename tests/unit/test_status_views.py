"""`make status` and the trained / gate tables say each version's task, estimator and runtime."""

from pipelines.config import DataConfig, ModelConfig, PipelineConfig
from pipelines.gate_checks import Check
from pipelines.status import describe_version
from pipelines.train import TrainResult
from pipelines.validate import ValidationReport, VersionFacts
from pipelines.views import gate, trained
from services.contract import ESTIMATOR_TAG, SERVING_RUNTIME_TAG, TASK_TAG

CONFIG = PipelineConfig(model_name="demand", task="regression", model=ModelConfig(estimator="ridge"),
                        data=DataConfig(target="demand", numeric_features=["price"]))


def test_a_version_is_described_by_its_tags_and_an_older_one_by_what_it_was():
    tags = {TASK_TAG: "regression", ESTIMATOR_TAG: "lightgbm.LGBMRegressor", SERVING_RUNTIME_TAG: "onnxruntime"}
    assert describe_version(tags) == "regression, lightgbm.LGBMRegressor, runtime onnxruntime"
    assert describe_version({}) == "classification, unknown, runtime scikit-learn"


def test_the_gate_table_names_both_versions_task_estimator_and_runtime():
    report = ValidationReport(
        candidate=VersionFacts("3", "regression", "sklearn.linear_model.Ridge", "onnxruntime"),
        champion=VersionFacts("2", "regression", "sklearn.ensemble.RandomForestRegressor", "scikit-learn"),
        checks=[Check("rmse", 1.2, True, threshold="<= 2.0")])
    assert gate(report).title == (
        "Validation of v3 (regression, sklearn.linear_model.Ridge) as served by onnxruntime\n"
        "vs champion v2 (regression, sklearn.ensemble.RandomForestRegressor) as served by scikit-learn")


def test_the_trained_table_names_task_and_estimator():
    table = trained(CONFIG, TrainResult(run_id="r", model_version="1", data_version="d", metrics={"rmse": 1.0}))
    rows = dict(zip(table.columns[0].cells, table.columns[1].cells, strict=True))
    assert rows["task"] == "regression" and rows["estimator"] == "sklearn.linear_model.Ridge"
