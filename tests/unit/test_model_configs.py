"""One config per model: MODEL=<name> picks models/<name>/pipeline.yaml, an unknown one names the models there
are, and a model's name must be a DNS label (it is its route and part of its containers' names)."""

from pathlib import Path

import pytest
import yaml

from pipelines.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from pipelines.config_files import CONFIG_ENV, MODEL_ENV, MODELS_DIR, chosen_config_path, known_models


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for name in ("churn", "demand"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "pipeline.yaml").write_text("model_name: x\n")
    (tmp_path / "models" / "notes").mkdir()  # a folder without a config is no model
    return tmp_path / "models"


def test_model_picks_its_folders_config_and_the_default_stays_the_demos(models):
    assert chosen_config_path(env={MODEL_ENV: "demand"}, models_dir=models) == models / "demand" / "pipeline.yaml"
    assert chosen_config_path(env={}, models_dir=models) == DEFAULT_CONFIG_PATH
    assert chosen_config_path(env={MODEL_ENV: ""}, models_dir=models) == DEFAULT_CONFIG_PATH  # `make` without it
    assert chosen_config_path(env={CONFIG_ENV: "a.yaml"}, models_dir=models) == Path("a.yaml")
    assert chosen_config_path("b.yaml", env={MODEL_ENV: "demand"}, models_dir=models) == Path("b.yaml")


@pytest.mark.parametrize("model", ["forecast", "../models/demand", "Demand"])
def test_an_unknown_model_names_the_models_there_are(models, model):
    with pytest.raises(ConfigError, match=rf"MODEL={model}: there is no .*; the models in .*: churn, demand$"):
        chosen_config_path(env={MODEL_ENV: model}, models_dir=models)


def test_model_and_pipeline_config_together_are_refused(models):
    with pytest.raises(ConfigError, match=r"both PIPELINE_CONFIG=a\.yaml and MODEL=demand are set"):
        chosen_config_path(env={CONFIG_ENV: "a.yaml", MODEL_ENV: "demand"}, models_dir=models)


def test_every_committed_model_folder_loads_under_its_own_name():
    names = known_models()
    assert "bike-rentals" in names
    for name in names:
        config = load_config(MODELS_DIR / name / "pipeline.yaml")
        assert config.model_name == name
        assert config.data.source_path() is None or config.data.source_path().is_file()


def test_load_config_reads_the_model_named_in_the_environment(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv(MODEL_ENV, "bike-rentals")
    assert load_config().task == "regression"


@pytest.mark.parametrize("name", ["Loans", "loan_default", "-loans", "loans-", "a" * 64, "loans.v2", ""])
def test_a_model_name_that_is_not_a_dns_label_is_refused_naming_the_key(tmp_path, name):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["model_name"] = name
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"model_name: .*not a DNS label \(RFC 1123\)"):
        load_config(path)


@pytest.mark.parametrize("name", ["a", "loan-default", "a" * 63, "7eleven"])
def test_a_dns_label_is_a_model_name(tmp_path, name):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["model_name"] = name
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).model_name == name


def test_the_projects_first_model_is_the_default_once_its_answers_name_it(models):
    answers = models.parent / ".copier-answers.yml"
    answers.write_text("_commit: v1.0.0\nfirst_model: churn\n")
    assert chosen_config_path(env={}, models_dir=models) == models / "churn" / "pipeline.yaml"
    assert chosen_config_path(env={MODEL_ENV: "demand"}, models_dir=models) == models / "demand" / "pipeline.yaml"
    answers.write_text("_commit: v1.0.0\nfirst_model: ''\n")  # the template's default: the demo's config
    assert chosen_config_path(env={}, models_dir=models) == DEFAULT_CONFIG_PATH


@pytest.mark.parametrize(("answers", "message"), [
    ("first_model: forecast\n", r"first_model is 'forecast', but there is no models/forecast/pipeline\.yaml"),
    ("first_model: [churn]\n", r"first_model must be a model's folder name, got \['churn'\]"),
    ("- first_model\n", r"expected a mapping of answers, got list"),
])
def test_a_first_model_without_its_folder_or_a_bad_answers_file_is_a_config_error(models, answers, message):
    (models.parent / ".copier-answers.yml").write_text(answers)
    with pytest.raises(ConfigError, match=message):
        chosen_config_path(env={}, models_dir=models)
