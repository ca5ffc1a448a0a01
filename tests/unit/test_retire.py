"""Retirement is refused for a version with a role (an alias, a local route, a stack container); the refusal
deploy, set-aliases and promote give a retired version (`refuse_retired`; the release loop's integration test
sees set-aliases give it); a retirement that cannot be recorded is undone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipelines import cli, retire
from pipelines.config import DataConfig, PipelineConfig
from pipelines.registry import RetiredVersion, refuse_retired
from pipelines.routes import Route, write_route
from pipelines.serving_state import route_file


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    return PipelineConfig(model_name="m", data=DataConfig(target="y", numeric_features=["x"]),
                          platform={"state_dir": str(tmp_path)})


@pytest.mark.parametrize("alias", ["champion", "previous", "challenger"])
def test_a_version_an_alias_names_has_that_role(config, alias):
    assert retire.roles(config, "3", {alias: "3", "other": "4"}, set()) == [f"@{alias}"]


def test_a_version_the_local_front_routes_to_has_a_role(config):
    write_route(route_file(config), Route("http://127.0.0.1:3001", "3", "m:v3-abc", "blue"))
    assert retire.roles(config, "3", {}, set()) == ["served locally (the front routes to it)"]
    assert retire.roles(config, "2", {}, set()) == []


def test_a_version_a_stack_container_serves_or_canaries_has_a_role(config):
    assert retire.roles(config, "3", {}, {"3"}) == ["served (or a canary) on a Docker stack on this host"]


@pytest.mark.parametrize(("aliases", "named"), [({"champion": "3"}, "@champion"), ({"previous": "3"}, "@previous"),
                                                 ({"challenger": "3"}, "@challenger")])
def test_retire_refuses_a_version_with_a_role_exit_2_naming_it(config, monkeypatch, aliases, named):
    monkeypatch.setattr(cli.steps, "connected_config", lambda path: config)
    monkeypatch.setattr(retire, "connect", lambda config: None)
    monkeypatch.setattr(retire, "resolve", lambda client, name, version: SimpleNamespace(retired=""))
    monkeypatch.setattr(retire, "aliases_of", lambda client, name: aliases)
    monkeypatch.setattr(retire, "stack_versions", lambda model: set())

    result = CliRunner().invoke(cli.app, ["retire", "3", "--reason", "superseded"])

    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert f"m v3 cannot retire: it is {named}; release or roll back to another version first" in output


def test_retire_needs_a_reason(config, monkeypatch):
    monkeypatch.setattr(cli.steps, "connected_config", lambda path: config)
    result = CliRunner().invoke(cli.app, ["retire", "3", "--reason", " "])
    assert result.exit_code == 2 and "--reason must say why" in result.output


def test_a_retired_version_is_refused_with_its_reason():
    with pytest.raises(RetiredVersion, match=r"cannot deploy m v3: it was retired \(2026-12-04 by ann: old\)"):
        refuse_retired("m", "3", "2026-12-04 by ann: old", "deploy")
    refuse_retired("m", "4", "", "deploy")  # not retired: no error


def test_a_retirement_whose_audit_record_cannot_be_written_is_undone_so_it_can_be_run_again(config, monkeypatch):
    """Its bentos are gone already; without the record the version must not stay retired ("retired already")."""
    from mlflow.exceptions import MlflowException

    tags: dict[str, str] = {}
    client = SimpleNamespace(set_model_version_tag=lambda name, version, key, value: tags.update({key: value}),
                             delete_model_version_tag=lambda name, version, key: tags.pop(key))
    monkeypatch.setattr(retire, "connect", lambda config: client)
    monkeypatch.setattr(retire, "resolve", lambda client, name, version: SimpleNamespace(retired="", name="m"))
    monkeypatch.setattr(retire, "aliases_of", lambda client, name: {})
    monkeypatch.setattr(retire, "stack_versions", lambda model: set())
    monkeypatch.setattr(retire, "_remove_bentos", lambda config, model, done: done.removed.update(bentos=["m:v3-a"]))
    monkeypatch.setattr(retire, "_remove_images", lambda model, done: None)
    monkeypatch.setattr(retire, "append_fact", lambda *args: None)

    def mlflow_down(*args, **kwargs):
        raise MlflowException("API request to http://mlflow:5000 failed: Connection refused")

    monkeypatch.setattr(retire.AuditTrail, "of", lambda *args: SimpleNamespace(write=mlflow_down))
    with pytest.raises(retire.RetireRefused, match=r"m v3 is not retired: its audit record could not be written "
                                                   r"\(.*Connection refused\); it removed bentos m:v3-a; run it again"):
        retire.retire(config, "3", "superseded")
    assert retire.RETIRED_TAG not in tags


def test_a_store_that_never_held_the_models_bentos_has_nothing_to_remove(config):
    """A fresh checkout retiring a version on a stack: BentoML says NotFound for a name it never stored."""
    done = retire.Retirement("3", "superseded")
    retire._remove_bentos(config, SimpleNamespace(name="m", version="3", run_id="abcdef0123"), done)
    assert done.removed == {} and done.freed_bytes == {}
