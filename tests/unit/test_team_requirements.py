"""A team's own third-party packages (`model.requirements`): pinned in its config, refused before any data is
read unless installed here, carried by the bento and installed by the release image before its check."""

from __future__ import annotations

from importlib import metadata

import pytest
import yaml

from pipelines import steps
from pipelines.bento import TEAM_REQUIREMENTS, bento_packages, write_context
from pipelines.config import REPO_ROOT, ConfigError, DataConfig, ModelConfig, load_config
from pipelines.estimators import resolve_estimator
from services.contract import SKLEARN_RUNTIME
from services.serving.card import CARD_FILE
from tests.unit.models import config_for

DATA = DataConfig(source="no/such/table.csv", target="y", numeric_features=["x"])
PYTEST = f"pytest=={metadata.version('pytest')}"


def config(*requirements: str):
    return config_for(DATA, ModelConfig(estimator="logistic_regression", requirements=list(requirements)))


def test_pinned_requirements_are_the_config():
    assert config(PYTEST, "scikit_learn[extra]==1.9.1").model.requirements == [PYTEST, "scikit_learn[extra]==1.9.1"]


@pytest.mark.parametrize(("requirements", "message"), [
    (["semver"], r"'semver' is not a pinned requirement name==version"),
    (["semver>=3"], r"'semver>=3' is not a pinned requirement"),
    (["git+https://example.invalid/semver.git"], r"'git\+https://example\.invalid/semver\.git' is not a pinned"),
    (["semver==3.1.2", "SemVer==3.1.1"], r"'SemVer==3\.1\.1' and 'semver==3\.1\.2' name one package"),
])
def test_an_unpinned_or_repeated_requirement_is_refused(tmp_path, requirements, message):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"model_name": "t", "data": {"target": "y", "numeric_features": ["x"]},
                                    "model": {"requirements": requirements}}))
    with pytest.raises(ConfigError, match=rf"model\.requirements: Value error, {message}"):
        load_config(path)


@pytest.mark.parametrize(("requirement", "message"), [
    ("no-such-package-anywhere==1.0", r"no-such-package-anywhere==1\.0 is not installed in this environment; "),
    ("pytest==0.0.1", rf"pytest==0\.0\.1 is not installed in this environment \(it has {PYTEST}\); "),
])
def test_a_requirement_not_installed_here_is_refused_before_any_data_is_read(requirement, message):
    bad = config(requirement)
    expected = rf"model\.requirements: {message}install it: uv pip install '{requirement}'"
    with pytest.raises(ConfigError, match=expected):
        resolve_estimator(bad)
    with pytest.raises(ConfigError, match=expected):  # not the DataError of the missing table: data comes after
        steps.check_data(bad)


def test_installed_requirements_pass():
    assert resolve_estimator(config(PYTEST)).__name__ == "LogisticRegression"


def test_the_bento_lists_the_team_requirements_with_the_logged_ones():
    packages = bento_packages(["scikit-learn==1.9.1"], ["semver==3.1.2"], SKLEARN_RUNTIME)
    assert {"scikit-learn==1.9.1", "semver==3.1.2", f"bentoml=={metadata.version('bentoml')}"} <= set(packages)


def test_the_bento_context_holds_the_team_requirements_for_the_release_image(tmp_path):
    include = write_context(tmp_path, ["semver==3.1.2"], None)
    assert TEAM_REQUIREMENTS in include and (tmp_path / TEAM_REQUIREMENTS).read_text() == "semver==3.1.2\n"
    assert (tmp_path / "services" / "serving" / "requirements_check.py").is_file()
    assert write_context(tmp_path, [], None) == include and (tmp_path / TEAM_REQUIREMENTS).read_text() == ""


def test_the_bento_context_carries_the_model_card_when_a_gate_wrote_one(tmp_path):
    include = write_context(tmp_path, [], "# Model card: credit-risk v3\n")
    assert CARD_FILE in include and (tmp_path / CARD_FILE).read_text() == "# Model card: credit-risk v3\n"


def test_the_release_image_installs_the_team_requirements_before_its_check():
    dockerfile = (REPO_ROOT / "services" / "serving" / "release.Dockerfile").read_text()
    install = dockerfile.index(f"--requirement /home/app/bento/src/{TEAM_REQUIREMENTS}")
    assert "--no-deps" in dockerfile and "--constraint" in dockerfile  # the runtime's own pins never move
    assert install < dockerfile.index("RUN python /home/app/bento/src/services/serving/requirements_check.py")
