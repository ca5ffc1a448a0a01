"""`pipelines promote` between two real MLflow servers (two state dirs, two ports): staging and prod.

A version trained in staging is copied into prod bit for bit, with its lineage, gated by prod's gate;
a failing gate and an unknown version leave prod as it was. Between two servers with basic auth on, each
sees only its own login (a recording proxy in front of each).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines import platform
from pipelines.cli import app
from pipelines.config import PipelineConfig, load_config
from pipelines.promote import (
    ARTIFACT_DIGEST_TAG,
    FROM_REGISTRY_TAG,
    FROM_RUN_TAG,
    FROM_VERSION_TAG,
    connected,
    tree_digest,
)
from pipelines.promote_credentials import Registry as Side
from pipelines.registry import VALIDATION_TAG, aliases_of, resolve
from pipelines.served_model import load_model
from services.contract import SNAPSHOT_ARTIFACT
from tests.integration.auth_servers import AuthMLflow, RecordingProxy
from tests.integration.conftest import AuthServers, stop_all, write_test_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Registry:
    config: PipelineConfig
    path: Path
    login: tuple[str, str] | None = None

    @property
    def uri(self) -> str:
        return self.config.tracking.uri or ""

    @property
    def side(self) -> Side:
        """How the tests themselves reach it: with its own login, if it has one."""
        if self.login is None:
            return Side("to", self.uri)
        return Side("to", self.uri, {"MLFLOW_TRACKING_USERNAME": self.login[0],
                                     "MLFLOW_TRACKING_PASSWORD": self.login[1]})


MODEL = "promote-test"  # its own registered model: the session's server holds other tests' models too


@pytest.fixture(scope="module")
def registries(local_platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Registry]]:
    """Staging: an MLflow server of its own (own state dir and port), v1 trained there. Prod: the session's."""
    staging_path, raw = write_test_config(tmp_path_factory.mktemp("staging"))
    staging_path.write_text(yaml.safe_dump({**raw, "model_name": MODEL}))
    prod_path = tmp_path_factory.mktemp("prod") / "pipeline.yaml"
    prod_path.write_text(yaml.safe_dump({**local_platform.raw, "model_name": MODEL}))
    staging = Registry(load_config(staging_path), staging_path)
    platform.start_mlflow(staging.config)
    try:
        run("train", config=staging.path)
        yield staging, Registry(load_config(prod_path), prod_path)
    finally:
        stop_all(staging.config)


def run(*args: str, config: Path, expect: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    crash = result.exception if not isinstance(result.exception, SystemExit) else None
    assert result.exit_code == expect and crash is None, (
        f"`pipelines {' '.join(args)}` exited {result.exit_code}, expected {expect}:\n{result.output}\n{crash!r}")
    return " ".join(result.output.split())  # as one line: the console wraps at its width


def registry_state(registry: Registry) -> dict:
    """Versions (with their tags) and aliases of the model in one registry."""
    with connected(registry.config, registry.side) as (config, client):
        versions = {v.version: dict(v.tags) for v in client.search_model_versions(f"name='{config.model_name}'")}
        return {"versions": versions, "aliases": aliases_of(client, config.model_name)}


def downloaded(registry: Registry, version: str, into: Path) -> tuple[Path, Path, object]:
    """A version's model files, its run's snapshot, and the model itself, from one registry."""
    with connected(registry.config, registry.side) as (config, client):
        model = resolve(client, config.model_name, version=version)
        files = Path(mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=str(into / "model")))
        snapshot = Path(mlflow.artifacts.download_artifacts(
            run_id=model.run_id, artifact_path=SNAPSHOT_ARTIFACT, dst_path=str(into / "run")))
        return files, snapshot, (model, load_model(config, model), model.holdout, client.get_run(model.run_id))


def test_an_unknown_version_is_a_clear_error(registries):
    staging, prod = registries
    output = run("promote", "99", "--from", staging.uri, config=prod.path, expect=2)
    assert "has no version 99" in output and staging.uri in output
    assert "Traceback" not in output
    assert registry_state(prod) == {"versions": {}, "aliases": {}}


def test_promotion_copies_the_exact_model_with_its_lineage(registries, tmp_path):
    staging, prod = registries
    output = run("promote", "1", "--from", staging.uri, "--to", prod.uri, config=prod.path)
    assert "v1 (@challenger)" in output

    state = registry_state(prod)
    assert state["aliases"] == {"challenger": "1"}
    tags = state["versions"]["1"]
    source_files, source_snapshot, (source, source_model, holdout, source_run) = downloaded(
        staging, "1", tmp_path / "staging")
    target_files, target_snapshot, (target, target_model, _, target_run) = downloaded(prod, "1", tmp_path / "prod")

    # Bit-identical model files (the MLmodel carries the signature) and the same data snapshot.
    assert tree_digest(source_files) == tree_digest(target_files) == tags[ARTIFACT_DIGEST_TAG]
    assert (source_files / "MLmodel").read_text() == (target_files / "MLmodel").read_text()
    assert "signature" in (target_files / "MLmodel").read_text()
    assert source_snapshot.read_bytes() == target_snapshot.read_bytes()
    assert target.data_version == source.data_version
    assert [d.dataset.digest for d in target_run.inputs.dataset_inputs] == [
        d.dataset.digest for d in source_run.inputs.dataset_inputs]
    # Lineage, on the version and the run; prod's own gate passed it.
    lineage = {FROM_REGISTRY_TAG: staging.uri, FROM_VERSION_TAG: "1", FROM_RUN_TAG: source.run_id}
    assert lineage.items() <= tags.items() and lineage.items() <= target_run.data.tags.items()
    assert tags[VALIDATION_TAG] == "passed"
    assert target.run_id != source.run_id
    # The same predictions on the eval set.
    features = holdout[source.data.features]
    np.testing.assert_array_equal(source_model.predict(features), target_model.predict(features))
    np.testing.assert_array_equal(source_model.predict_proba(features), target_model.predict_proba(features))


def test_a_promotion_whose_gate_fails_leaves_the_target_unchanged(registries):
    staging, prod = registries
    before = registry_state(prod)
    assert before["versions"], "runs after the successful promotion: prod already holds a version"
    raw = yaml.safe_load(prod.path.read_text())
    raw["gates"]["min_metrics"] = {"accuracy": 0.999}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=prod.path.parent, delete=False) as strict:
        yaml.safe_dump(raw, strict)
    output = run("promote", "1", "--from", staging.uri, config=Path(strict.name), expect=1)
    assert "gate failed in the target" in output
    assert registry_state(prod) == before


def test_the_same_registry_twice_is_refused(registries):
    staging, _ = registries
    output = run("promote", "1", "--from", staging.uri, "--to", staging.uri + "/", config=staging.path, expect=2)
    assert "the same registry" in output


AUTH_MODEL = "promote-auth-test"


@dataclass(frozen=True)
class Guarded:
    """An auth-enabled MLflow behind a recording proxy, and the config of a registry at the proxy."""

    server: AuthMLflow
    proxy: RecordingProxy
    registry: Registry

    @property
    def login(self) -> str:
        return ":".join(self.server.admin)


@pytest.fixture(scope="module")
def guarded_registries(
    auth_mlflow_servers: AuthServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Guarded, Guarded]]:
    """Staging and prod with basic auth on, each behind its proxy; v1 trained in staging with staging's login."""
    servers = (auth_mlflow_servers.staging, auth_mlflow_servers.prod)
    with RecordingProxy(servers[0].url).running() as staging_proxy, \
            RecordingProxy(servers[1].url).running() as prod_proxy:
        guarded = []
        for server, proxy in zip(servers, (staging_proxy, prod_proxy), strict=True):
            path, raw = write_test_config(tmp_path_factory.mktemp(f"guarded-{server.name}"))
            path.write_text(yaml.safe_dump({**raw, "model_name": AUTH_MODEL, "tracking": {"uri": proxy.url}}))
            guarded.append(Guarded(server, proxy, Registry(load_config(path), path, server.admin)))
        staging, prod = guarded
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_USERNAME", staging.server.admin[0])
            env.setenv("MLFLOW_TRACKING_PASSWORD", staging.server.admin[1])
            run("train", config=staging.registry.path)
        staging_proxy.seen.clear()
        yield staging, prod


def test_each_registry_sees_only_its_own_login(guarded_registries, monkeypatch):
    staging, prod = guarded_registries
    # promote.yml's env: prod's login for the configured registry (prod), staging's as PROMOTE_FROM_*.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", prod.registry.uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", prod.server.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", prod.server.admin[1])
    monkeypatch.setenv("PROMOTE_FROM_USERNAME", staging.server.admin[0])
    monkeypatch.setenv("PROMOTE_FROM_PASSWORD", staging.server.admin[1])

    output = run("promote", "1", "--from", staging.registry.uri, config=prod.registry.path)

    assert "v1 (@challenger)" in output
    assert staging.proxy.seen and prod.proxy.seen
    assert staging.proxy.logins() == {staging.login}, "staging saw another login than its own"
    assert prod.proxy.logins() == {prod.login}, "prod saw another login than its own"
    assert [r for r in staging.proxy.seen + prod.proxy.seen if r.status == 401] == []
    assert registry_state(prod.registry)["aliases"] == {"challenger": "1"}
