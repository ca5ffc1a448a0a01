"""The release loop against a real MLflow server and real `bentoml serve` processes, through the CLI.

One scenario in order: first release, bad requests, the inference log, a second release, a failed
gate, a failed deploy, a rollback, a reproduction. Each step checks what serves and where the aliases are.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import psutil
import pytest
from typer.testing import CliRunner

from pipelines import local
from pipelines.cli import app
from pipelines.deploy import DeployError
from pipelines.registry import aliases_of, connect
from pipelines.serving_state import live_release, model_url, slot_process
from services.contract import AUDIT_EXPERIMENT
from tests.load import under_load
from tests.status_rows import model_row

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROW = {"age": 41, "income": 52000.0, "loan_amount": 12000.0, "credit_score": 690, "debt_ratio": 0.31,
       "employment": "salaried", "region": "east", "purpose": "car"}


def cli(*args: str, config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    crash = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output + (f"\nuncaught: {crash!r}" if crash else "")


@pytest.fixture(scope="module")
def release(local_platform):
    """Helpers bound to the session's platform."""

    class Release:
        config = local_platform.config
        path = local_platform.config_path
        url = local_platform.config.platform.serving_url

        def run(self, *args: str, config: Path | None = None, expect: int = 0) -> str:
            code, output = cli(*args, config=config or self.path)
            assert code == expect, f"`pipelines {' '.join(args)}` exited {code}, expected {expect}:\n{output}"
            return output

        def aliases(self) -> dict[str, str]:
            return aliases_of(connect(self.config), self.config.model_name)

        def predict(self, rows: list[dict], **kwargs) -> httpx.Response:
            return httpx.post(f"{self.url}/predict", json={"rows": rows}, timeout=30, **kwargs)

        def serving_version(self) -> str:
            response = self.predict([ROW])
            assert response.status_code == 200, response.text
            return response.json()["model_version"]

        def log_records(self, torn_allowed: bool = False) -> list[dict]:
            """Every record; a killed writer may leave one torn line at the end of its file, nowhere else."""
            records = []
            for path in sorted(self.config.platform.inference_log_dir.glob("*.jsonl")):
                lines = path.read_text().splitlines()
                for number, line in enumerate(lines):
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        assert torn_allowed and number == len(lines) - 1, f"torn line {number} in {path}"
            return records

    return Release()


def test_first_release(release):
    release.run("train")
    output = release.run("deploy")
    assert "gate passed" in output and "no @champion yet" in output
    assert release.aliases() == {"champion": "1"}
    body = release.predict([ROW, {**ROW, "credit_score": 420, "employment": "unemployed"}]).json()
    assert body["model_version"] == "1"
    assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {0, 1}
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in body["probabilities"])
    assert httpx.get(f"{release.url}/livez", timeout=5).status_code == 200
    metrics = httpx.get(f"{release.url}/metrics", timeout=5).text
    assert "predictions_total" in metrics
    # What the stack's Prometheus joins BentoML's request metrics with (services/prometheus/rules).
    assert f'serving_model_info{{model_name="{release.config.model_name}",model_version="1"}} 1.0' in metrics


def test_the_gated_version_has_a_model_card_in_the_registry_and_on_the_cli(release):
    client = connect(release.config)
    version = client.get_model_version(release.config.model_name, "1")
    assert version.description.startswith(f"# Model card: {release.config.model_name} v1")
    printed = release.run("card", "1")
    for section in ("## Intended use", "## Training data", "## Metrics on the frozen eval set", "## Fairness",
                    "| applicant_group | group_a |", "demographic_parity_difference[applicant_group]",
                    "## Gate checks", "## Lineage", version.run_id):
        assert section in printed, section
    html = mlflow.artifacts.load_text(f"runs:/{version.run_id}/card/model-card.html")
    assert "<table>" in html and "Model card" in html
    served = httpx.get(f"{release.url}/card", timeout=10)  # the bento the first release serves carries it
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/markdown")
    # As the gate wrote it before the build: the release's later facts come after (in the registry).
    recorded = mlflow.artifacts.load_text(f"runs:/{version.run_id}/card/model-card.md")
    assert served.text.rstrip() == recorded.split("\n\n## Later facts")[0].rstrip()


def test_audit_record_of_the_deploy(release):
    connect(release.config)
    runs = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], filter_string="tags.outcome = 'serving'")
    latest = runs.iloc[0]
    assert latest["tags.model_version"] == "1" and latest["tags.action"] == "deploy"
    for tag in ("who", "when", "git_sha", "data_version", "run_id", "bento_tag"):
        assert latest[f"tags.{tag}"], tag


def test_rollback_without_previous_is_refused(release):
    output = release.run("rollback", expect=1)
    assert "nothing to roll back to" in output and "no @previous" in output
    assert release.aliases() == {"champion": "1"}
    assert release.serving_version() == "1"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"rows": [{**ROW, "age": "forty"}]}, "age"),
        ({"rows": [{k: v for k, v in ROW.items() if k != "region"}]}, "region"),
        ({"rows": [{**ROW, "shoe_size": 44}]}, "shoe_size"),
        ({"rows": [{**ROW, "purpose": 3}]}, "purpose"),
        ({"rows": []}, "rows"),
        ({"rows": "all of them"}, "rows"),
        ({"records": [ROW]}, "rows"),
    ],
)
def test_bad_request_is_a_400_naming_the_field(release, body, named):
    response = httpx.post(f"{release.url}/predict", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert named in response.text


def test_oversized_batch_and_garbage_are_4xx_and_the_server_lives(release):
    too_many = release.predict([ROW] * (release.config.serving.max_batch_rows + 1))
    assert 400 <= too_many.status_code < 500
    garbage = httpx.post(f"{release.url}/predict", content=b"{not json", timeout=30,
                         headers={"content-type": "application/json"})
    assert 400 <= garbage.status_code < 500
    assert httpx.get(f"{release.url}/readyz", timeout=5).status_code == 200
    assert release.serving_version() == "1"


def test_inference_log_keeps_every_row_of_concurrent_requests(release):
    before = len(release.log_records())
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: release.predict([{**ROW, "age": 20 + i}] * 10), range(24)))
    assert all(r.status_code == 200 for r in responses)
    records = release.log_records()
    assert len(records) == before + 240
    logged = {r["request_id"] for r in records}
    assert {r.json()["request_id"] for r in responses} <= logged
    assert {"timestamp", "model_version", "features", "prediction"} <= records[-1].keys()


def test_second_release_promotes_without_dropping_a_request(release):
    release.run("train")
    with under_load(release.url, "local deploy v1 -> v2", "1", "2") as load:
        output = release.run("deploy")
    assert set(load.versions) == {"1", "2"}
    assert "vs champion v1" in output
    assert release.aliases() == {"champion": "2", "previous": "1"}
    assert release.serving_version() == "2"


def test_failed_gate_moves_nothing(release, local_platform):
    strict = local_platform.variant("strict-gates", gates={"min_metrics": {"accuracy": 0.99}})
    release.run("train", config=strict)
    output = release.run("validate", config=strict, expect=1)
    assert "FAIL" in output and "gate failed" in output
    output = release.run("deploy", config=strict, expect=1)
    assert "nothing was built or deployed" in output
    assert release.aliases() == {"champion": "2", "previous": "1", "challenger": "3"}
    assert release.serving_version() == "2"
    tags = connect(release.config).get_model_version(release.config.model_name, "3").tags
    assert tags["validation"] == "failed"


def test_failed_deploy_leaves_the_old_server_serving(release, local_platform):
    impatient = local_platform.variant("impatient", platform={"startup_timeout_s": 0.2})
    release.run("train", config=impatient)
    output = release.run("deploy", config=impatient, expect=1)
    assert "deploy failed, nothing moved" in output and "not ready" in output
    assert release.aliases() == {"champion": "2", "previous": "1", "challenger": "4"}
    assert release.serving_version() == "2"
    connect(release.config)
    failed = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT],
                                filter_string="tags.outcome = 'failed' and tags.action = 'deploy'")
    assert failed.iloc[0]["tags.model_version"] == "4"


def test_rollback_serves_previous_and_swaps_aliases_without_dropping_a_request(release):
    with under_load(release.url, "local rollback v2 -> v1", "2", "1") as load:
        output = release.run("rollback")
    assert set(load.versions) == {"1", "2"}
    assert "Rolled back" in output
    assert release.aliases() == {"champion": "1", "previous": "2", "challenger": "4"}
    assert release.serving_version() == "1"
    champion_row = model_row(release.run("status"), release.config.model_name, "@champion")
    assert "v1 (classification" in champion_row
    # Each version's card tells its releases after the gate, a later gate keeping them.
    later = release.run("card", "1").split("## Later facts")[1]
    assert later.index("deploy to local: serving at") < later.index("rollback to local: serving at")
    assert "deploy to local: serving at" in release.run("card", "2").split("## Later facts")[1]


def test_reproduce_gives_identical_metrics(release):
    output = release.run("reproduce", "2")
    assert "identical metrics" in output


def test_a_killed_worker_loses_no_acknowledged_record(release):
    """Kill the serving worker mid-traffic: every request answered 200 is in the log, every line whole."""
    server = psutil.Process(slot_process(release.config, live_release(release.config).slot).pid())
    workers = [p for p in server.children(recursive=True) if "python" in p.name().lower()]
    assert workers, "bentoml serve has no worker process"
    acknowledged: list[str] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(release.predict, [ROW] * 5) for _ in range(40)]
        time.sleep(0.3)
        os.kill(workers[-1].pid, signal.SIGKILL)
        for future in futures:
            try:
                response = future.result()
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                acknowledged.append(response.json()["request_id"])
    assert acknowledged
    logged = {record["request_id"] for record in release.log_records(torn_allowed=True)}
    assert set(acknowledged) <= logged
    deadline = time.monotonic() + 60  # the server replaces the worker and serves again
    while time.monotonic() < deadline:
        try:
            if release.predict([ROW]).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    assert release.serving_version() == "1"


def test_a_server_failing_after_the_switch_gives_the_port_back(release, monkeypatch):
    """The rehearsal passes, the new server on the serving port then fails its check: v1 serves again."""
    release.run("train")
    checks = []

    def fails_on_the_serving_port(url, bento, smoke, where_to_look, headers=None):
        checks.append(url)
        if len(checks) == 2:  # rehearsal first, then the switched server
            raise DeployError(f"smoke request to {url}/predict answered 500 (injected)")
        return real_check(url, bento, smoke, where_to_look, headers)

    real_check = local.check_serving
    monkeypatch.setattr(local, "check_serving", fails_on_the_serving_port)
    output = release.run("deploy", expect=1)
    assert "injected" in output and len(checks) == 2 and checks[1] == model_url(release.config)  # via the front
    assert release.serving_version() == "1"
    assert release.aliases() == {"champion": "1", "previous": "2", "challenger": "5"}
    connect(release.config)
    audit = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], filter_string="tags.model_version = '5'")
    assert audit.iloc[0]["tags.outcome"] == "failed"


def test_a_gate_that_cannot_compare_with_the_champion_fails_closed(release, local_platform):
    # A fork drops most features: far worse than the champion, above lowered floors, and the eval set no
    # longer has the champion's columns, so the two cannot be compared.
    weak = local_platform.variant(
        "weak-fork", data={"numeric_features": ["age"], "categorical_features": ["region"]},
        gates={"min_metrics": {"accuracy": 0.5}, "max_slice_drop": 1.0})
    release.run("train", config=weak)
    output = release.run("validate", config=weak, expect=1)
    assert "gate failed: 1 check(s) failed" in output
    run_id = connect(release.config).get_model_version(release.config.model_name, "6").run_id
    (failed,) = [c for c in mlflow.artifacts.load_dict(f"runs:/{run_id}/validation/report.json")["checks"]
                 if not c["passed"]]
    assert failed["name"] == "comparable with champion v1" and "lacks the champion's column(s)" in failed["candidate"]
    output = release.run("deploy", config=weak, expect=1)
    assert "nothing was built or deployed" in output
    assert release.aliases() == {"champion": "1", "previous": "2", "challenger": "6"}


def test_waiving_the_comparison_is_recorded_and_audited(release, local_platform):
    weak = local_platform.config_path.with_name("weak-fork.yaml")
    output = release.run("deploy", "--allow-incomparable", config=weak)
    assert "waived" in output
    assert release.aliases() == {"champion": "6", "previous": "1"}
    tags = connect(release.config).get_model_version(release.config.model_name, "6").tags
    assert tags["validation"] == "passed" and "not compared" in tags["validation_override"]
    connect(release.config)
    audit = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT], filter_string="tags.model_version = '6'")
    assert audit.iloc[0]["tags.outcome"] == "serving"
    assert "champion v1 not compared" in audit.iloc[0]["tags.gate_override"]


def test_the_audit_trail_tells_the_story_catches_an_edit_and_records_a_retirement(release):
    """From the records alone: every step of this module's releases, in one chain that verifies; a retirement
    adds to it; a tag edited through MLflow's API is named by `audit verify`."""
    assert "intact" in release.run("audit", "verify")
    timeline = json.loads(release.run("audit", "--format", "json"))
    assert {"train", "gate", "deploy", "rollback"} <= {record["action"] for record in timeline}
    assert [record["audit.sequence"] for record in timeline] == [str(n) for n in range(1, len(timeline) + 1)]
    assert all(record["who"] for record in timeline)

    refused = release.run("retire", "6", "--reason", "superseded", expect=2)
    assert "v6 cannot retire: it is @champion" in " ".join(refused.split())
    assert "Retired" in release.run("retire", "4", "--reason", "never served: too slow to start")
    import bentoml  # its store, as the release used it (pipelines.bento.use_store)

    assert not [b for b in bentoml.bentos.list(release.config.model_name) if str(b.tag.version).startswith("v4-")]
    client = connect(release.config)
    version = client.get_model_version(release.config.model_name, "4")
    assert "never served: too slow to start" in version.tags["retired"]
    assert "retired by" in version.description.split("## Later facts")[1]
    assert "cannot set aliases to" in release.run("set-aliases", "--champion", "4", expect=2)
    (retired,) = json.loads(release.run("audit", "--version", "4", "--format", "json"))[-1:]
    assert (retired["action"], retired["outcome"]) == ("retire", "retired") and "too slow" in retired["reason"]
    assert "| retire | 4 | retired |" in release.run("audit", "--version", "4")

    deploy_record = mlflow.search_runs(experiment_names=[AUDIT_EXPERIMENT],
                                       filter_string="tags.action = 'deploy' and tags.outcome = 'serving'").iloc[-1]
    who = deploy_record["tags.who"]
    client.set_tag(deploy_record["run_id"], "who", "mallory")
    try:
        output = " ".join(release.run("audit", "verify", expect=1).split())
    finally:
        client.set_tag(deploy_record["run_id"], "who", who)
    assert f"sequence {deploy_record['tags.audit.sequence']} (run {deploy_record['run_id']})" in output
    assert f"tag who is 'mallory', the record says '{who}'" in output
    assert "intact" in release.run("audit", "verify")


def test_gc_retires_what_falls_outside_the_lifecycle_and_keeps_what_has_a_role(release, local_platform):
    tidy = local_platform.variant("tidy", lifecycle={"keep_last": 1})
    planned = " ".join(release.run("gc", "--dry-run", config=tidy).split())
    assert "v2, v3, v5" in planned and "@previous" in planned  # v1 is @previous, v4 retired already, v6 @champion
    assert not connect(release.config).get_model_version(release.config.model_name, "2").tags.get("retired")
    release.run("gc", config=tidy)
    client = connect(release.config)
    assert [bool(client.get_model_version(release.config.model_name, n).tags.get("retired"))
            for n in ("1", "2", "3", "5", "6")] == [False, True, True, True, False]
    assert "intact" in release.run("audit", "verify")
