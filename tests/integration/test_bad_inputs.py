"""Bad inputs against a real `bentoml serve` of a trained demo model, and a bad model artifact against the
gate, the bento build and the serving process.

One bento serves the whole module (its own registered model, so the release-loop tests' versions and
aliases stay theirs). Every bad request must get its expected 4xx, never a 5xx, and leave no row in the
inference log; a valid request is still served afterwards. A model version whose artifact asks skops to
trust a type outside the pin is refused at validate, build and serve; its bento (built around the check)
starts alongside the good one, so the module waits for one server start-up, not two.
"""

from __future__ import annotations

import json
import operator
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from pipelines import bento as bento_module
from pipelines.bento import build, use_store
from pipelines.cli import app
from pipelines.config import PipelineConfig
from pipelines.data import load_versioned
from pipelines.features import build_pipeline
from pipelines.platform import Process, free_port, url_ok, wait_until
from pipelines.registry import CHALLENGER, PASSED, ResolvedVersion, connect, resolve
from pipelines.snapshots import load_snapshot
from pipelines.task import CLASSIFICATION_TASK
from pipelines.train import MODEL_PACKAGES, train
from pipelines.validate import validate
from services.contract import (
    INFERENCE_LOG_ENV,
    ONNX_RUNTIME,
    SERVING_TOKEN_FILE_ENV,
    SKLEARN_RUNTIME,
    SMOKE_LOG_SUBDIR,
    SMOKE_TOKEN_FILE_ENV,
    SMOKE_TOKEN_HEADER,
)
from services.serving.model_trust import TRUSTED_TYPES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MODEL_NAME = "bad-inputs"
MAX_ROWS = 50
MAX_BODY = 64 * 1024
MAX_ABS = 1e15
ROW = {"age": 41, "income": 52000.0, "loan_amount": 12000.0, "credit_score": 690, "debt_ratio": 0.31,
       "employment": "salaried", "region": "east", "purpose": "car"}
SMOKE_TOKEN = uuid.uuid4().hex
SERVING_TOKEN = uuid.uuid4().hex


@dataclass
class Served:
    config: PipelineConfig
    config_path: Path
    url: str
    log_dir: Path
    crafted_version: str  # the registered version asking to trust a type outside the pin (@challenger)
    crafted: Process  # `bentoml serve` of its bento, built around the build-time check
    crafted_url: str
    guarded: Process  # the honest bento again, with a serving token (access control on)
    guarded_url: str
    on_sklearn: Process  # the honest bento again, on the scikit-learn runtime (a version with no ONNX)
    on_sklearn_url: str
    refused_ids: list[str] = field(default_factory=list)

    def predict(self, rows: list[dict], **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}/predict", json={"rows": rows}, timeout=30, **kwargs)

    def logged(self, directory: Path | None = None) -> list[dict]:
        return [json.loads(line) for path in sorted((directory or self.log_dir).glob("*.jsonl"))
                for line in path.read_text().splitlines()]


def serve(config: PipelineConfig, tag: str, name: str, env: dict[str, str],
          bento_args: tuple[str, ...] = ()) -> tuple[Process, str]:
    process = Process(name, config.platform.state_dir)
    process.stop()
    port = free_port(config.platform.host)
    process.start([sys.executable, "-m", "bentoml", "serve", tag, "--host", config.platform.host, "--port", str(port),
                   *(arg for pair in bento_args for arg in ("--arg", pair))],
                  env={"BENTOML_HOME": str(use_store(config)), "BENTOML_DO_NOT_TRACK": "true", **env})
    return process, f"http://{config.platform.host}:{port}"


def register_crafted_version(honest: ResolvedVersion) -> str:
    """A version registered outside `train` and made @challenger: the demo pipeline plus a FunctionTransformer
    whose callable (`operator.neg`, harmless here; `builtins.exec` in an attack) is outside the pin, its
    MLmodel listing it as trusted, in the honest version's run (same snapshot, eval set and config)."""
    train_rows, _ = CLASSIFICATION_TASK.split_snapshot(load_snapshot(honest.run_id), honest.data)
    model = build_pipeline(honest.trained_with)
    model.steps.insert(1, ("negate", FunctionTransformer(operator.neg)))
    model.fit(train_rows[honest.data.features], train_rows[honest.data.target])
    with mlflow.start_run(run_id=honest.run_id):
        info = mlflow.sklearn.log_model(
            model, name="crafted", registered_model_name=honest.name,
            pip_requirements=[f"{p}=={metadata.version(p)}" for p in MODEL_PACKAGES],
            skops_trusted_types=[*sorted(TRUSTED_TYPES), "_operator.neg"])
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(honest.name, CHALLENGER, version)
    return version


@pytest.fixture(scope="module")
def served(local_platform, tmp_path_factory) -> Iterator[Served]:
    """The demo model trained, gated and built as a release does, served by one `bentoml serve` for the module;
    beside it the crafted version's bento, built around the check, which serving must refuse."""
    state = tmp_path_factory.mktemp("bad-inputs")
    raw = yaml.safe_load(yaml.safe_dump(local_platform.raw))
    raw["model_name"] = MODEL_NAME
    raw["serving"].update(max_batch_rows=MAX_ROWS, max_body_bytes=MAX_BODY, max_abs_value=MAX_ABS)
    config_path = state / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    config = PipelineConfig.model_validate(raw)
    client = connect(config)
    train(config, load_versioned(config))
    honest = resolve(client, MODEL_NAME, alias=CHALLENGER)
    assert validate(config, honest).passed
    built = build(config, honest)
    crafted_version = register_crafted_version(honest)
    with pytest.MonkeyPatch.context() as patch:  # as an older release tool would have built it
        patch.setattr(bento_module, "check_model", lambda *_: None)
        crafted_bento = build(config, resolve(client, MODEL_NAME, version=crafted_version))
    (state / "smoke-token").write_text(SMOKE_TOKEN + "\n")
    log_dir = state / "inference"
    process, url = serve(config, built.tag, "serving-bad-inputs",
                         {INFERENCE_LOG_ENV: str(log_dir), SMOKE_TOKEN_FILE_ENV: str(state / "smoke-token")})
    crafted, crafted_url = serve(config, crafted_bento.tag, "serving-crafted",
                                 {INFERENCE_LOG_ENV: str(state / "crafted-inference")})
    (state / "serving-token").write_text(SERVING_TOKEN + "\n")
    guarded, guarded_url = serve(config, built.tag, "serving-guarded",
                                 {INFERENCE_LOG_ENV: str(state / "guarded-inference"),
                                  SERVING_TOKEN_FILE_ENV: str(state / "serving-token")})
    # What serves a version whose pipeline did not convert (a fork's estimator): the same bento code with
    # the runtime argument a build gives such a version; it loads the skops model and scores DataFrames.
    on_sklearn, on_sklearn_url = serve(config, built.tag, "serving-on-sklearn",
                                       {INFERENCE_LOG_ENV: str(state / "sklearn-inference")},
                                       bento_args=(f"runtime={SKLEARN_RUNTIME}",))
    try:
        wait_until(lambda: url_ok(f"{url}/readyz"), process, config.platform.startup_timeout_s, "bad-inputs bento")
        yield Served(config, config_path, url, log_dir, crafted_version, crafted, crafted_url, guarded, guarded_url,
                     on_sklearn, on_sklearn_url)
    finally:
        for server in (process, crafted, guarded, on_sklearn):
            server.stop()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def row_with(**changes: Any) -> bytes:
    return body({"rows": [{**ROW, **changes}]})


def raw_row(field_name: str, literal: str) -> bytes:
    """A one-row body with a literal JSON token (NaN, a huge integer, ...) as the value of a field."""
    return body({"rows": [{**ROW, field_name: "@@"}]}).replace(b'"@@"', literal.encode())


def chunked(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 8192
        sent += 8192


JSON = {"content-type": "application/json"}
LONG = "x" * 257


@dataclass(frozen=True)
class Case:
    id: str
    content: bytes | None
    status: int
    named: str | None = None  # what the answer must name (the field, the header, ...)
    headers: dict[str, Any] = field(default_factory=lambda: dict(JSON))
    method: str = "POST"
    path: str = "/predict"
    stream: int = 0  # send this many bytes as a chunked body instead of `content`


CASES = [
    # wrong types: strict, a string or bool is never a number, a number is never a category
    Case("string-for-number", row_with(age="forty"), 400, "age"),
    Case("numeric-string-for-number", row_with(age="41"), 400, "age"),
    Case("exponent-string-for-number", row_with(income="5.2e4"), 400, "income"),
    Case("true-for-number", row_with(age=True), 400, "age"),
    Case("false-for-number", row_with(debt_ratio=False), 400, "debt_ratio"),
    Case("list-for-number", row_with(income=[52000]), 400, "income"),
    Case("object-for-number", row_with(income={"value": 52000}), 400, "income"),
    Case("number-for-category", row_with(region=3), 400, "region"),
    Case("bool-for-category", row_with(region=True), 400, "region"),
    Case("list-for-category", row_with(region=["east"]), 400, "region"),
    Case("object-for-category", row_with(purpose={"name": "car"}), 400, "purpose"),
    # numbers no model can score, or that overflow float32 in a tree ensemble
    Case("minus-1e308", row_with(income=-1e308), 400, "income"),
    Case("1e308", row_with(income=1e308), 400, "income"),
    Case("1e39", row_with(loan_amount=1e39), 400, "loan_amount"),
    Case("minus-1e39", row_with(credit_score=-1e39), 400, "credit_score"),
    Case("just-over-the-bound", row_with(age=MAX_ABS * 1.000001), 400, "age"),
    Case("NaN", raw_row("age", "NaN"), 400, "age"),
    Case("Infinity", raw_row("age", "Infinity"), 400, "age"),
    Case("minus-Infinity", raw_row("debt_ratio", "-Infinity"), 400, "debt_ratio"),
    Case("1e999-parses-to-inf", raw_row("income", "1e999"), 400, "income"),
    Case("5000-digit-integer", raw_row("income", "9" * 5000), 400, "JSON"),
    # nulls where a value must be
    Case("null-rows", body({"rows": None}), 400, "rows"),
    Case("null-row", body({"rows": [None]}), 400, "rows"),
    Case("null-body", b"null", 400),
    # unicode and encodings
    Case("unicode-key", body({"rows": [{**{k: v for k, v in ROW.items() if k != "age"}, "âge": 41}]}), 400, "age"),
    Case("lone-surrogate", raw_row("region", '"\\ud800"'), 400),
    Case("not-utf8", row_with(region="east").replace(b"east", b"\xff\xfe"), 400, "JSON"),
    Case("overlong-category", row_with(region=LONG), 400, "region"),
    Case("overlong-unicode-category", row_with(region="é" * 257), 400, "region"),
    # nesting and shape
    Case("row-is-a-list", body({"rows": [list(ROW.values())]}), 400, "rows"),
    Case("rows-is-an-object", body({"rows": {"0": ROW}}), 400, "rows"),
    Case("rows-is-a-string", body({"rows": "all of them"}), 400, "rows"),
    Case("rows-nested-in-rows", body({"rows": {"rows": [ROW]}}), 400, "rows"),
    Case("body-is-a-list", body([ROW]), 400),
    Case("deeply-nested-value", raw_row("income", "[" * 20000 + "]" * 20000), 400, "nested too deeply"),
    # one key, one value
    Case("duplicate-field", row_with().replace(b'"age": 41', b'"age": 41, "age": 99'), 400, "duplicate key 'age'"),
    Case("duplicate-rows", b'{"rows": [], "rows": ' + body([ROW]) + b"}", 400, "duplicate key 'rows'"),
    # media types
    Case("text-plain", row_with(), 415, "application/json", headers={"content-type": "text/plain"}),
    Case("form-urlencoded", b"rows=1", 415, "application/json",
         headers={"content-type": "application/x-www-form-urlencoded"}),
    Case("multipart", b"--x\r\n\r\n--x--", 415, "application/json",
         headers={"content-type": "multipart/form-data; boundary=x"}),
    Case("bentoml-pickle", b"\x80\x04N.", 415, headers={"content-type": "application/vnd.bentoml+pickle"}),
    Case("xml", b"<rows/>", 415, "application/json", headers={"content-type": "application/xml"}),
    # empty, broken and oversized bodies
    Case("empty-body", b"", 400, "empty body"),
    Case("whitespace-body", b"  \n ", 400, "empty body"),
    Case("empty-object", b"{}", 400, "rows"),
    Case("not-json", b"{not json", 400, "JSON"),
    Case("truncated-json", row_with()[:-5], 400, "JSON"),
    Case("oversized-body", b" " * (MAX_BODY + 1), 413, "larger than"),
    Case("oversized-chunked-body", None, 413, "larger than", stream=MAX_BODY * 2),
    # headers
    Case("overlong-request-id", row_with(), 400, "x-request-id", headers={**JSON, "x-request-id": "r" * 129}),
    Case("huge-request-id", row_with(), 400, "x-request-id", headers={**JSON, "x-request-id": "r" * 8000}),
    Case("non-ascii-request-id", row_with(), 400, "x-request-id", headers={**JSON, "x-request-id": b"caf\xe9"}),
    Case("request-id-with-space", row_with(), 400, "x-request-id", headers={**JSON, "x-request-id": "a b"}),
    Case("wrong-smoke-token", row_with(), 403, headers={**JSON, SMOKE_TOKEN_HEADER: "guess"}),
    Case("empty-smoke-token", row_with(), 403, headers={**JSON, SMOKE_TOKEN_HEADER: ""}),
    # batch limits
    Case("no-rows", body({"rows": []}), 400, "rows"),
    Case("one-row-too-many", body({"rows": [ROW] * (MAX_ROWS + 1)}), 400, "rows"),
    # missing and unknown fields
    Case("missing-field", body({"rows": [{k: v for k, v in ROW.items() if k != "region"}]}), 400, "region"),
    Case("empty-row", body({"rows": [{}]}), 400, "credit_score"),
    Case("unknown-field", row_with(shoe_size=44), 400, "shoe_size"),
    Case("records-not-rows", body({"records": [ROW]}), 400, "rows"),
    # routes and methods
    Case("get-predict", None, 405, method="GET"),
    Case("unknown-route", row_with(), 404, path="/predictions"),
]


def test_the_battery_is_big_enough():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_its_4xx_never_a_5xx(served, case):
    request_id = f"bad-{case.id}"
    headers = {"x-request-id": request_id, **case.headers}
    content = chunked(case.stream) if case.stream else case.content
    response = httpx.request(case.method, f"{served.url}{case.path}", content=content, headers=headers, timeout=30)
    assert response.status_code < 500, f"{case.id}: {response.status_code} {response.text[:300]}"
    assert response.status_code == case.status, f"{case.id}: {response.status_code} {response.text[:300]}"
    if case.named:
        assert case.named in response.text, f"{case.id}: {response.text[:300]}"
    served.refused_ids.append(request_id)


ACCEPTED = [
    ("int-for-float", {"income": 52000, "debt_ratio": 0}),
    ("all-nulls", dict.fromkeys(ROW)),
    ("unicode-categories", {"region": "東京", "purpose": "🚗", "employment": "Ärzt:in"}),
    ("longest-category", {"region": "é" * 256}),
    ("empty-category", {"region": ""}),
    ("the-bound-itself", {"income": MAX_ABS, "loan_amount": -MAX_ABS, "age": MAX_ABS, "credit_score": -MAX_ABS,
                          "debt_ratio": MAX_ABS}),
    ("tiny-numbers", {"income": 5e-324, "debt_ratio": -0.0, "age": -1e-300}),
]


@pytest.mark.parametrize(("case_id", "changes"), ACCEPTED, ids=[case_id for case_id, _ in ACCEPTED])
def test_odd_but_valid_rows_are_served(served, case_id, changes):
    response = served.predict([{**ROW, **changes}])
    assert response.status_code == 200, f"{case_id}: {response.status_code} {response.text[:300]}"
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in response.json()["probabilities"])


def test_the_limits_themselves_are_served(served):
    full = served.predict([ROW] * MAX_ROWS, headers={"x-request-id": "r" * 128})
    assert full.status_code == 200 and len(full.json()["predictions"]) == MAX_ROWS
    assert full.headers["x-request-id"] == "r" * 128
    charset = httpx.post(f"{served.url}/predict", content=row_with(), timeout=30,
                         headers={"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 200


def test_smoke_rows_go_to_their_own_directory(served):
    smoke_id, user_id = f"smoke-{uuid.uuid4()}", f"user-{uuid.uuid4()}"
    smoke_headers = {"x-request-id": smoke_id, SMOKE_TOKEN_HEADER: SMOKE_TOKEN}
    assert served.predict([ROW] * 3, headers=smoke_headers).status_code == 200
    assert served.predict([ROW], headers={"x-request-id": user_id}).status_code == 200
    smoke = {r["request_id"] for r in served.logged(served.log_dir / SMOKE_LOG_SUBDIR)}
    main = {r["request_id"] for r in served.logged()}
    assert smoke_id in smoke and smoke_id not in main
    assert user_id in main and user_id not in smoke


def test_the_scikit_learn_runtime_answers_as_the_onnx_runtime_does(served):
    url = served.on_sklearn_url
    wait_until(lambda: url_ok(f"{url}/readyz"), served.on_sklearn, served.config.platform.startup_timeout_s,
               "bento on scikit-learn")
    rows = [ROW, {**ROW, "employment": None, "income": None}, {**ROW, "region": "north", "age": 70}]
    on_onnx = served.predict(rows).json()
    on_sklearn = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30)
    assert on_sklearn.status_code == 200, on_sklearn.text
    assert on_sklearn.json()["predictions"] == on_onnx["predictions"]
    for ours, theirs in zip(on_sklearn.json()["probabilities"], on_onnx["probabilities"], strict=True):
        assert ours.keys() == theirs.keys() and all(abs(ours[c] - theirs[c]) < 1e-4 for c in ours)
    refused = httpx.post(f"{url}/predict", json={"rows": [{**ROW, "age": "old"}]}, timeout=30)
    assert refused.status_code == 400 and "age" in refused.text


@pytest.mark.parametrize("runtime", [ONNX_RUNTIME, SKLEARN_RUNTIME])
def test_interleaved_requests_keep_their_own_ids_rows_and_log_lines(served, runtime):
    # The API is async: requests interleave inside a worker, and none may take another's rows or id.
    on_sklearn = runtime == SKLEARN_RUNTIME
    url, log_dir = (served.on_sklearn_url, served.log_dir.parent / "sklearn-inference") if on_sklearn else (
        served.url, served.log_dir)
    if on_sklearn:
        wait_until(lambda: url_ok(f"{url}/readyz"), served.on_sklearn, served.config.platform.startup_timeout_s,
                   "bento on scikit-learn")
    sent = {f"interleaved-{runtime}-{i}-{uuid.uuid4().hex[:8]}": [{**ROW, "age": 20 + i}] * (1 + i % 3)
            for i in range(24)}

    def post(request_id: str) -> httpx.Response:
        return httpx.post(f"{url}/predict", json={"rows": sent[request_id]}, headers={"x-request-id": request_id},
                          timeout=60)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = dict(zip(sent, pool.map(post, sent), strict=True))
    for request_id, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == request_id and answer.json()["request_id"] == request_id
        assert len(answer.json()["predictions"]) == len(sent[request_id])
    logged: dict[str, list[float]] = {}
    for record in served.logged(log_dir):
        if record["request_id"] in sent:
            logged.setdefault(record["request_id"], []).append(record["features"]["age"])
    assert logged == {request_id: [row["age"] for row in rows] for request_id, rows in sent.items()}


def test_with_a_serving_token_everything_but_the_probes_needs_it(served):
    url = served.guarded_url
    wait_until(lambda: url_ok(f"{url}/readyz"), served.guarded, served.config.platform.startup_timeout_s, "guarded")
    anonymous = httpx.post(f"{url}/predict", json={"rows": [ROW]}, timeout=30)
    assert anonymous.status_code == 401 and "authentication required" in anonymous.text
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    wrong = httpx.post(f"{url}/predict", json={"rows": [ROW]}, headers={"authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    token = {"authorization": f"Bearer {SERVING_TOKEN}"}
    assert httpx.post(f"{url}/predict", json={"rows": [ROW]}, headers=token, timeout=30).status_code == 200
    assert "predictions_total" in httpx.get(f"{url}/metrics", headers=token, timeout=10).text
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200


def test_after_the_battery_the_server_serves_and_logged_nothing_it_refused(served):
    assert url_ok(f"{served.url}/readyz")
    response = served.predict([ROW, {**ROW, "credit_score": 420, "employment": "unemployed"}])
    assert response.status_code == 200 and response.json()["model_version"] == "1"
    logged = {r["request_id"] for r in served.logged()}
    assert response.json()["request_id"] in logged
    assert not logged & set(served.refused_ids)
    for path in served.log_dir.rglob("*.jsonl"):  # the lines hold request data
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path


def cli(*args: str, config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    crash = result.exception if not isinstance(result.exception, SystemExit) else None
    # One line: the console wraps long messages at its width.
    return result.exit_code, " ".join(result.output.split()) + (f" uncaught: {crash!r}" if crash else "")


def test_a_model_asking_to_trust_an_extra_type_is_refused_at_validate_build_and_serve(served):
    version = served.crafted_version
    code, output = cli("validate", config=served.config_path)  # @challenger is the crafted version
    assert code == 2 and f"v{version} refused" in output and "outside the pin: _operator.neg" in output, output
    assert connect(served.config).get_model_version(MODEL_NAME, version).tags.get("validation") != PASSED
    code, output = cli("build", config=served.config_path)
    assert code == 2 and f"v{version} refused" in output and "outside the pin: _operator.neg" in output, output

    # Serving checks again: the bento built around the build-time check never becomes ready.
    deadline = time.monotonic() + served.config.platform.startup_timeout_s
    while time.monotonic() < deadline and "outside the pin: _operator.neg" not in served.crafted.log_tail(400):
        assert not url_ok(f"{served.crafted_url}/readyz"), "the bento of an untrusted model became ready"
        time.sleep(1)
    assert "outside the pin: _operator.neg" in served.crafted.log_tail(400), served.crafted.log_tail(40)
    assert not url_ok(f"{served.crafted_url}/readyz")
