"""The pipeline config loader names the bad key and value."""

from pathlib import Path

import pytest
import yaml

from pipelines.config import DEFAULT_CONFIG_PATH, REPO_ROOT, ConfigError, load_config
from pipelines.config_model import Section


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_committed_config_loads():
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.model_name == "loan-default"
    assert config.data.target not in config.data.features
    assert config.platform.mlflow_url == "http://127.0.0.1:5000"
    assert config.platform.state_dir.is_absolute()


def test_unknown_key_is_named(tmp_path, raw):
    raw["data"]["targte"] = "x"
    with pytest.raises(ConfigError, match=r"data\.targte"):
        load_config(write(tmp_path, raw))


def test_bad_value_names_key_and_value(tmp_path, raw):
    raw["data"]["holdout_fraction"] = 1.5
    with pytest.raises(ConfigError, match=r"data\.holdout_fraction.*1\.5"):
        load_config(write(tmp_path, raw))


def test_bad_port_and_estimator(tmp_path, raw):
    raw["platform"]["serving_port"] = 70000
    raw["model"]["estimator"] = "xgboost"
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, raw))
    assert "platform.serving_port" in str(error.value) and "model.estimator" in str(error.value)


def test_target_listed_as_feature(tmp_path, raw):
    raw["data"]["numeric_features"].append(raw["data"]["target"])
    with pytest.raises(ConfigError, match="listed more than once"):
        load_config(write(tmp_path, raw))


def test_missing_required_key(tmp_path, raw):
    del raw["data"]["target"]
    with pytest.raises(ConfigError, match=r"data\.target"):
        load_config(write(tmp_path, raw))


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    broken.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(broken)


def test_env_var_picks_the_file(tmp_path, raw, monkeypatch):
    raw["model_name"] = "other-model"
    monkeypatch.setenv("PIPELINE_CONFIG", str(write(tmp_path, raw)))
    assert load_config().model_name == "other-model"


def test_tracking_follows_the_local_platform_unless_set(tmp_path, raw, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw["platform"]["mlflow_port"] = 5055
    raw.get("tracking", {}).pop("uri", None)
    assert load_config(write(tmp_path, raw)).tracking.resolved_uri == "http://127.0.0.1:5055"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert load_config(write(tmp_path, raw)).tracking.resolved_uri == "http://mlflow.example:5000"


def test_passwords_in_the_tracking_uri_are_never_shown_or_recorded(tmp_path, raw, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw["tracking"]["uri"] = "https://admin:s3cret@mlflow.example:5443"
    config = load_config(write(tmp_path, raw))
    assert config.tracking.resolved_uri.endswith("s3cret@mlflow.example:5443")  # MLflow still gets it
    assert config.tracking.display_uri == "https://admin:***@mlflow.example:5443"
    assert "s3cret" not in str(config.public_dump())


MINIMAL = {"model_name": "churn", "data": {"target": "churned", "numeric_features": ["tenure"]}}


def _sections(cls: type = Section) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_sections(direct))]


@pytest.mark.parametrize("section", [cls for cls in _sections() if not any(
    field.is_required() for field in cls.model_fields.values())], ids=lambda cls: cls.__name__)
def test_every_default_is_validated_like_a_written_value(section):
    defaults = section()
    assert section.model_validate(defaults.model_dump()) == defaults


def test_a_config_without_a_platform_section_keeps_its_state_in_the_repo(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.platform.state_dir == REPO_ROOT / ".platform"
    written = load_config(write(tmp_path, {**MINIMAL, "platform": {"state_dir": "elsewhere"}}))
    assert written.platform.state_dir == REPO_ROOT / "elsewhere"  # the same anchor for a written path


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "mlflow.example.com"])
def test_a_host_beyond_loopback_is_refused_naming_the_keys(tmp_path, host):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, {**MINIMAL, "platform": {"host": host}}))
    message = str(error.value)
    assert "platform.host" in message and host in message
    assert "platform.allow_unauthenticated_network" in message and "authEnabled" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_are_accepted(tmp_path, host):
    assert load_config(write(tmp_path, {**MINIMAL, "platform": {"host": host}})).platform.host == host


def test_a_network_host_is_accepted_only_when_the_config_opts_in(tmp_path):
    opted_in = {"host": "0.0.0.0", "allow_unauthenticated_network": True}
    assert load_config(write(tmp_path, {**MINIMAL, "platform": opted_in})).platform.host == "0.0.0.0"
