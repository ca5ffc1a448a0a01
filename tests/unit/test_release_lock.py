"""Two releases against one state dir never run at once."""

import pytest

from pipelines.config import DataConfig, PipelineConfig
from pipelines.deploy import DeployError, release_lock


def test_a_second_release_is_refused_while_one_runs(tmp_path):
    config = PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]),
                            platform={"state_dir": tmp_path})
    with release_lock(config), pytest.raises(DeployError, match="another deploy or rollback is running"), \
            release_lock(config):
        pass
    with release_lock(config):  # released again afterwards
        pass
