"""Unit tests' way to a config and an unfitted model: sections wrapped in the smallest pipeline config."""

from __future__ import annotations

from typing import Any

from sklearn.pipeline import Pipeline

from pipelines.config import DataConfig, ModelConfig, PipelineConfig
from pipelines.features import build_pipeline


def config_for(data: DataConfig, model: ModelConfig | None = None, **sections: Any) -> PipelineConfig:
    return PipelineConfig(model_name="unit-test", data=data, model=model or ModelConfig(), **sections)


def pipeline_for(data: DataConfig, model: ModelConfig, **sections: Any) -> Pipeline:
    return build_pipeline(config_for(data, model, **sections))
