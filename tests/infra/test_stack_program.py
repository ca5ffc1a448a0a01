"""The real Pulumi program under mocks: what `pulumi up` would create, for the default and other stacks."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc

from services.contract import MODELS_KEY
from tests.infra.certificates import self_signed
from tests.infra.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    PROJECT,
    REMOTE_IMAGE,
    REPO_ROOT,
    VOLUME,
    program_module,
    run_program,
)

ALIASES = {"mlflow", "serving", "front", "monitoring", "monitoring-ui", "prometheus"}
ADMIN_PASSWORD = "adm%n:pw-7f3a"
POSTGRES_PASSWORD = "pg\\pass:9c1e"
HARDENED = {"trackingBackend": "postgres", "exposePorts": "true", "authEnabled": "true"}
SERVICE_SECRETS = {"servingToken": "srv-tok-51c0-9a2e7b", "monitoringPassword": "monitoring-pw-8d2e",
                   "monitoringUiSecret": "ui-sec-77aa-4c1f03d", "smokeToken": "smk-tok-3b9f-6e8d21"}
AUTH_SECRETS = {"adminPassword": ADMIN_PASSWORD, **SERVICE_SECRETS}
HARDENED_SECRETS = {**AUTH_SECRETS, "postgresPassword": POSTGRES_PASSWORD}
SMOKE = {"smokeToken": SERVICE_SECRETS["smokeToken"]}  # a candidate or canary needs one (the front's route)
EDGE_TLS = self_signed("serving.test")  # a throwaway certificate for a DNS name, made at run time
SECRET_KEYS = {"postgresPassword", *AUTH_SECRETS, "postgresUri", "s3AccessKeyId", "s3SecretAccessKey",
               "driftAlertWebhookUrl", "driftAlertToken", "tlsCertificate", "tlsPrivateKey", "mlflowSecretKey"}


@pytest.fixture(scope="module")
def default_stack():
    return run_program()


@pytest.fixture(scope="module")
def hardened_stack():
    return run_program(HARDENED, HARDENED_SECRETS)


def load_module(path: Path) -> ModuleType:
    """Import one file of the program by path, without putting its folder on sys.path."""
    spec = importlib.util.spec_from_file_location(f"under_test_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def env_of(container) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in container.plain.get("envs", []))


def secret_uploads(container) -> list[dict]:
    """The files only the container's user reads (its other uploads are plain settings, as the front's routes)."""
    return [upload for upload in container.plain.get("uploads", []) if upload["permissions"] == "0600"]


def mounts_of(container) -> dict[str, dict]:
    return {mount["containerPath"]: mount for mount in container.plain.get("volumes", [])}


def test_every_port_is_published_on_loopback_by_default(default_stack):
    published = {
        port["external"]: port["ip"] for c in default_stack.of_type(CONTAINER) for port in c.plain.get("ports", [])
    }
    assert published == {5000: "127.0.0.1", 3000: "127.0.0.1", 8000: "127.0.0.1", 9090: "127.0.0.1"}


def test_expose_ports_publishes_on_all_interfaces(hardened_stack):
    ips = {port["ip"] for c in hardened_stack.of_type(CONTAINER) for port in c.plain.get("ports", [])}
    assert ips == {"0.0.0.0"}


def test_containers_share_one_network_under_their_aliases(default_stack, hardened_stack):
    (network,) = default_stack.of_type(NETWORK)
    assert network.plain["name"] == "mlops-net"
    for stack, aliases in ((default_stack, ALIASES), (hardened_stack, ALIASES | {"postgres"})):
        attached = [n for c in stack.of_type(CONTAINER) for n in c.plain["networksAdvanced"]]
        assert {alias for n in attached for alias in n["aliases"]} == aliases
        assert {n["name"] for n in attached} == {"mlops-net"}


def test_mlflow_serves_artifacts_from_volumes_to_the_network(default_stack):
    mlflow = default_stack.container("mlflow")
    command = mlflow.plain["command"]
    assert "--serve-artifacts" in command
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////mlflow/backend/mlflow.db"
    allowed = set(command[command.index("--allowed-hosts") + 1].split(","))
    assert {"mlflow", "mlflow:5000", "localhost:*", "127.0.0.1:*"} <= allowed
    assert env_of(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    mounts = mounts_of(mlflow)
    assert mounts["/mlflow/backend"]["volumeName"] == "mlops-mlflow-backend"
    assert mounts["/mlflow/artifacts"]["volumeName"] == "mlops-mlflow-artifacts"
    assert "--app-name" not in command


def test_clients_reach_mlflow_by_its_alias_and_share_the_inference_log(default_stack):
    serving, job = default_stack.container("serving"), default_stack.container("monitoring")
    for container in (serving, job):
        assert env_of(container)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    log_dir = env_of(serving)["INFERENCE_LOG_DIR"]
    assert env_of(job)["INFERENCE_LOG_DIR"] == log_dir
    assert mounts_of(serving)[log_dir]["volumeName"] == mounts_of(job)[log_dir]["volumeName"] == "mlops-inference-log"
    assert mounts_of(job)[log_dir]["readOnly"] is True
    assert json.loads(env_of(job)["MONITORING_POLICY"])["interval_minutes"] == 5  # the demo config's


def test_monitoring_ui_shows_the_workspace_the_job_writes(default_stack):
    job, ui = default_stack.container("monitoring"), default_stack.container("monitoring-ui")
    workspace = env_of(job)["MONITORING_WORKSPACE"]
    command = ui.plain["command"]
    assert command[:3] == ["python", "-m", "services.monitoring.ui"]  # evidently ui, behind access control
    assert command[command.index("--workspace") + 1] == workspace
    state = mounts_of(job)["/var/lib/monitoring"]["volumeName"]
    assert workspace.startswith("/var/lib/monitoring/")
    assert mounts_of(ui)["/var/lib/monitoring"]["volumeName"] == state
    assert "/api/version" in " ".join(ui.plain["healthcheck"]["tests"])
    assert job.plain["command"] == ["python", "-m", "services.monitoring", "--loop"]
    assert job.plain["healthcheck"]["tests"][-2:] == ["services.monitoring", "--healthcheck"]


def test_state_lives_on_named_volumes(default_stack, hardened_stack):
    names = {v.plain["name"] for v in default_stack.of_type(VOLUME)}
    assert names == {"mlops-mlflow-backend", "mlops-mlflow-artifacts", "mlops-inference-log", "mlops-monitoring-state",
                     "mlops-prometheus-tsdb"}
    postgres = hardened_stack.container("postgres")
    assert mounts_of(postgres)["/var/lib/postgresql/data"]["volumeName"] == "mlops-postgres-data"


def test_postgres_is_built_from_services_unless_the_stack_names_an_image(hardened_stack):
    postgres = hardened_stack.container("postgres")
    (built,) = [i.plain for i in hardened_stack.of_type(IMAGE) if i.plain["build"]["dockerfile"].endswith(
        "services/postgres/Dockerfile")]
    assert postgres.plain["image"] == built["imageName"] == "mlops-postgres:latest"
    assert postgres.plain["user"] == "10001:10001"
    assert postgres.plain["healthcheck"]["tests"][1] == "pg_isready"
    named = run_program({**HARDENED, "postgresImage": "registry.example/pg:15"}, HARDENED_SECRETS)
    assert named.container("postgres").plain["image"] == "registry.example/pg:15"
    assert [i.plain["name"] for i in named.of_type(REMOTE_IMAGE)] == ["registry.example/pg:15"]


@pytest.mark.parametrize("stack_fixture", ["default_stack", "hardened_stack"])
def test_every_container_is_hardened_and_waited_for(stack_fixture, request):
    for container in request.getfixturevalue(stack_fixture).of_type(CONTAINER):
        props = container.plain
        check = props["healthcheck"]
        assert check["tests"][0] == "CMD" and check["timeout"] and check["retries"] >= 1, container.name
        assert props["restart"] == "unless-stopped"
        assert props["user"].split(":")[0] not in ("", "0", "root"), container.name
        assert props["memory"] >= 256
        assert props["wait"] is True and props["waitTimeout"] == 300
        assert props["name"].startswith("mlops-")


def test_images_are_built_from_services_and_feed_the_containers(default_stack):
    images = {i.plain["imageName"]: i.plain["build"] for i in default_stack.of_type(IMAGE)}
    assert set(images) == {"mlops-tracking:latest", "mlops-serving-runtime:latest", "mlops-monitoring:latest",
                           "mlops-front:latest", "mlops-prometheus:latest"}
    for build in images.values():
        # One context for every image (services/, so each can carry services/contract.py), one Dockerfile per folder.
        dockerfile = Path(build["dockerfile"])
        assert Path(build["context"]) == REPO_ROOT / "services"
        assert dockerfile.parent.parent == REPO_ROOT / "services" and dockerfile.is_file()
        assert build["args"] == {"BASE_IMAGE": "python:3.11-slim-bookworm"}
        assert build["builderVersion"] == "BuilderV1" and build["network"] == "host"
    # The mocks report an image's name as its digest: containers run exactly the image built here.
    assert default_stack.container("mlflow").plain["image"] == "mlops-tracking:latest"
    assert default_stack.container("serving").plain["image"] == "mlops-serving-runtime:latest"
    assert default_stack.container("monitoring-ui").plain["image"] == "mlops-monitoring:latest"


def test_resources_are_children_of_their_components(default_stack):
    parents = {(r.type, r.name): r.parent_type for r in default_stack.resources}
    assert parents[(NETWORK, "network")] == "pulumi:pulumi:Stack"
    for component in ("Tracking", "Serving", "Front", "Monitoring"):
        assert parents[(f"mlops-platform:index:{component}", component.lower())] == "pulumi:pulumi:Stack"
    for resource in default_stack.resources:
        if resource.type in (CONTAINER, IMAGE, VOLUME):
            prefix = resource.name.split("-")[0]
            assert resource.parent_type == f"mlops-platform:index:{prefix.capitalize()}", resource.name


def test_exports_name_the_urls_image_and_model_version(default_stack):
    assert default_stack.exports == {
        "mlflow_url": "http://127.0.0.1:5000",
        "serving_url": "http://127.0.0.1:3000",
        "monitoring_ui_url": "http://127.0.0.1:8000",
        "serving_image": "mlops-serving-runtime:latest",
        "model_version": "none",
        "canary_version": "none",
        "candidate_version": "none",
        "prometheus_url": "http://127.0.0.1:9090",
    }


def test_a_release_image_replaces_the_runtime_image(default_stack):
    stack = run_program({"servingImage": "mlops-serving:v7", "modelVersion": "7", "servingPort": "3100"})
    (release,) = stack.of_type(REMOTE_IMAGE)
    assert release.plain["name"] == "mlops-serving:v7"
    assert stack.container("serving").plain["image"] == "mlops-serving:v7"
    assert stack.exports["serving_image"] == "mlops-serving:v7" and stack.exports["model_version"] == "7"
    assert stack.exports["serving_url"] == "http://127.0.0.1:3100"


def test_the_front_owns_the_serving_port_and_each_release_is_its_own_container(default_stack):
    """Zero-downtime releases under `pulumi up` (docs/zero-downtime.md): the front publishes the port; a
    release changes the serving container's name, so Pulumi's default replacement creates the new one
    beside the old one; the new one is healthy only once ready; the old one is stopped gracefully."""
    front, runtime = default_stack.container("front"), default_stack.container("serving")
    assert [p["external"] for p in front.plain["ports"]] == [3000] and not runtime.plain.get("ports")
    assert front.plain["healthcheck"]["tests"][-1].endswith("urlopen('http://127.0.0.1:3000/-/front', timeout=4)")
    assert "/livez" in runtime.plain["healthcheck"]["tests"][-1]  # no model: never ready, still healthy
    v7 = run_program({"servingImage": "mlops-serving:v7-a", "modelVersion": "7"}).container("serving")
    v7_again = run_program({"servingImage": "mlops-serving:v7-b", "modelVersion": "7"}).container("serving")
    v8 = run_program({"servingImage": "mlops-serving:v8-a", "modelVersion": "8"}).container("serving")
    names = [c.plain["name"] for c in (runtime, v7, v7_again, v8)]
    assert len(set(names)) == 4
    assert names[1].startswith("mlops-serving-v7-") and names[3].startswith("mlops-serving-v8-")
    assert all(c.name == "serving-server" for c in (v7, v8))  # one resource, replaced: not two resources
    assert "/readyz" in v7.plain["healthcheck"]["tests"][-1]
    assert v7.plain["wait"] is True and v7.plain["destroyGraceSeconds"] >= 30


def test_a_canary_serves_beside_the_champion_with_its_share_as_weight():
    stack = run_program({"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
                         "canaryImage": "mlops-serving:v8-a", "canaryVersion": "8", "canaryPercent": "10"},
                        SMOKE)
    champion, canary = stack.container("serving"), stack.container("serving-canary")
    assert canary.name == "serving-canary" and canary.plain["name"].startswith("mlops-serving-canary-v8-")
    assert champion.plain["image"] == "mlops-serving:v7-a" and canary.plain["image"] == "mlops-serving:v8-a"
    # 10 % of requests: weight 11 beside the champion's 100 (11 / 111).
    assert env_of(canary)["SERVING_CANARY_WEIGHT_PERCENT"] == "11"
    assert "SERVING_CANARY_WEIGHT_PERCENT" not in env_of(champion)
    assert {u["file"] for u in canary.plain["uploads"]} == {u["file"] for u in champion.plain["uploads"]}
    assert canary.plain["volumes"] == champion.plain["volumes"]  # it logs where monitoring reads
    assert stack.exports["canary_version"] == "8" and stack.exports["model_version"] == "7"


def test_a_candidate_runs_beside_the_champion_where_only_routed_checks_reach_it():
    """A release's candidate (issue 18, item 9): the champion's container is untouched, the candidate has its
    own alias, which no user-facing backend of the front lists, only the one its routing header picks."""
    champion_only = run_program({"servingImage": "mlops-serving:v7-a", "modelVersion": "7"}, SMOKE)
    stack = run_program({"servingImage": "mlops-serving:v7-a", "modelVersion": "7",
                         "candidateImage": "mlops-serving:v8-a", "candidateVersion": "8"}, SMOKE)
    champion, candidate = stack.container("serving"), stack.container("serving-candidate")
    assert champion.plain == champion_only.container("serving").plain  # no diff: `pulumi up` leaves it serving
    assert candidate.name == "serving-candidate" and candidate.plain["name"].startswith("mlops-serving-candidate-v8-")
    assert candidate.plain["image"] == "mlops-serving:v8-a" and "/readyz" in candidate.plain["healthcheck"]["tests"][-1]
    assert candidate.plain["wait"] is True and candidate.plain["uploads"] == champion.plain["uploads"]
    assert stack.exports["candidate_version"] == "8" and stack.exports["model_version"] == "7"
    # The first release's candidate stands beside the runtime image ("no model deployed").
    first = run_program({"candidateImage": "mlops-serving:v1-a", "candidateVersion": "1"}, SMOKE)
    assert first.container("serving").plain["image"].startswith("mlops-serving-runtime")
    haproxy = (REPO_ROOT / "services" / "front" / "haproxy.cfg").read_text()
    backends = {block.split()[0]: block for block in haproxy.split("\nbackend ")[1:]}
    assert [name for name, block in backends.items() if "serving-candidate:3000" in block] == ["candidate"]
    assert "use_backend candidate if { req.hdr(x-mlops-route) -m str candidate }" in haproxy


def test_postgres_and_basic_auth_get_their_secrets_only_as_secret_files(hardened_stack):
    mlflow, postgres = hardened_stack.container("mlflow"), hardened_stack.container("postgres")
    command = mlflow.plain["command"]
    assert command[command.index("--backend-store-uri") + 1] == "postgresql+psycopg2://mlflow@postgres:5432/mlflow"
    assert command[command.index("--app-name") + 1] == "basic-auth"
    uploads = {u["file"]: u for u in mlflow.plain["uploads"]}
    assert env_of(mlflow)["MLFLOW_AUTH_CONFIG_PATH"] in uploads and env_of(mlflow)["PGPASSFILE"] in uploads
    assert f"admin_password = {ADMIN_PASSWORD.replace('%', '%%')}" in uploads["/home/app/basic_auth.ini"]["content"]
    assert uploads["/home/app/.pgpass"]["content"] == "postgres:5432:mlflow:mlflow:pg\\\\pass\\:9c1e\n"
    assert all(u["permissions"] == "0600" and u["owner"] == "10001" for u in uploads.values())
    assert env_of(postgres)["POSTGRES_PASSWORD_FILE"] == "/run/postgres-password"
    job_uploads = hardened_stack.container("monitoring").plain["uploads"]
    assert [u["file"] for u in job_uploads] == ["/home/app/.mlflow/credentials"]
    for container in (mlflow, postgres, hardened_stack.container("monitoring")):
        assert rpc.is_rpc_secret(container.inputs["uploads"]), f"{container.name} uploads are not secret"


def test_mlflow_with_auth_refuses_the_routes_its_permission_map_does_not_cover(hardened_stack):
    """Fail-closed, set explicitly: MLflow's default may change, or an env say otherwise (test_mlflow_auth.py)."""
    assert env_of(hardened_stack.container("mlflow"))["MLFLOW_BASIC_AUTH_FAIL_CLOSED"] == "true"


def test_the_monitoring_job_logs_in_as_its_own_user_not_the_admin(hardened_stack):
    mlflow, job = hardened_stack.container("mlflow"), hardened_stack.container("monitoring")
    users = {u["file"]: u["content"] for u in mlflow.plain["uploads"]}[env_of(mlflow)["SERVICE_USERS_FILE"]]
    assert users.splitlines() == ["[monitoring]", "password = monitoring-pw-8d2e"]  # no grant on the model
    (credentials,) = [u["content"] for u in job.plain["uploads"]]
    assert "mlflow_tracking_username = monitoring" in credentials and "monitoring-pw-8d2e" in credentials
    assert "admin" not in credentials and ADMIN_PASSWORD.replace("%", "%%") not in credentials


def test_with_auth_every_service_requires_a_credential_delivered_as_a_file(hardened_stack):
    serving, ui = hardened_stack.container("serving"), hardened_stack.container("monitoring-ui")
    files = {u["file"]: u["content"] for u in serving.plain["uploads"]}
    assert files[env_of(serving)["SERVING_TOKEN_FILE"]] == "srv-tok-51c0-9a2e7b"
    assert files[env_of(serving)["SMOKE_TOKEN_FILE"]] == "smk-tok-3b9f-6e8d21"
    command = ui.plain["command"]
    assert command[:3] == ["python", "-m", "services.monitoring.ui"]
    assert {u["file"]: u["content"] for u in ui.plain["uploads"]}[command[command.index("--secret-file") + 1]] == (
        "ui-sec-77aa-4c1f03d")
    for container in hardened_stack.of_type(CONTAINER):
        labels = {item["label"]: item["value"] for item in container.plain["labels"]}
        if container.plain.get("ports"):
            assert labels["mlops-platform.access"] == "required", container.name
        if container.plain.get("uploads"):
            assert rpc.is_rpc_secret(container.inputs["uploads"]), container.name


def test_without_auth_nothing_claims_access_control(default_stack):
    for container in default_stack.of_type(CONTAINER):
        labels = {item["label"]: item["value"] for item in container.plain["labels"]}
        assert labels["mlops-platform.access"] == "open", container.name
    assert "--secret-file" not in default_stack.container("monitoring-ui").plain["command"]


def test_passwords_appear_nowhere_but_in_secret_uploads(hardened_stack):
    for resource in hardened_stack.resources:
        visible = {key: value for key, value in resource.inputs.items() if not rpc.is_rpc_secret(value)}
        for password in (*HARDENED_SECRETS.values(), "adm%%n:pw-7f3a"):
            assert password not in repr(visible), f"{password!r} in plain inputs of {resource.name}"
    assert not any(p in repr(hardened_stack.exports) for p in HARDENED_SECRETS.values())
    assert hardened_stack.secret_exports == set()


def test_the_declared_containers_pass_the_policy_pack(default_stack, hardened_stack):
    policies = load_module(REPO_ROOT / "infra" / "policy" / "policies.py")
    for container in default_stack.of_type(CONTAINER):
        props = container.plain
        found = [*policies.public_ports(props), *policies.root_user(props), *policies.missing_healthcheck(props),
                 *policies.plaintext_secrets(props)]
        assert found == [], container.name
    exposed = [policies.public_ports(c.plain) for c in hardened_stack.of_type(CONTAINER) if c.plain.get("ports")]
    assert exposed and all(exposed)
    assert all(policies.plaintext_secrets(c.plain) == [] for c in hardened_stack.of_type(CONTAINER))
    assert all(policies.public_without_credential(c.plain) == [] for c in hardened_stack.of_type(CONTAINER))


def test_pulumi_yaml_documents_the_defaults_the_code_uses(default_stack):
    known_keys = program_module("config").KNOWN_KEYS
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    # `models` is a list of objects, which the project schema cannot type (Pulumi.yaml says so in a comment).
    assert set(declared) == known_keys - SECRET_KEYS - {MODELS_KEY}
    for key, spec in declared.items():
        # What the Pulumi CLI's project schema accepts (sdk/go/common/workspace/project.json).
        assert set(spec) <= {"type", "description", "default", "secret", "items"}, key
        assert spec["type"] in ("string", "integer", "boolean") and spec["description"], key
        assert isinstance(spec["default"], {"string": str, "integer": int, "boolean": bool}[spec["type"]]), key
    defaults = {key: str(spec["default"]).lower() if isinstance(spec["default"], bool) else str(spec["default"])
                for key, spec in declared.items()}
    with_defaults = run_program(defaults)
    assert with_defaults.exports == default_stack.exports
    def by_name(stack):
        return {(r.type, r.name): r.plain for r in stack.resources}

    assert by_name(with_defaults) == by_name(default_stack)
    example = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert run_program({k.removeprefix(f"{PROJECT}:"): v for k, v in example.items()}).exports == default_stack.exports


@pytest.mark.parametrize(
    ("config", "secrets", "message"),
    [
        ({"mlflowPort": "70000"}, {}, "mlops-platform:mlflowPort: must be between 1 and 65535"),
        ({"servingPort": "http"}, {}, "mlops-platform:servingPort: must be a whole number"),
        ({"servingPort": "5000"}, {}, "ports must differ"),
        ({"trackingBackend": "mysql"}, {}, "mlops-platform:trackingBackend: must be one of sqlite, postgres"),
        ({"trackingBackend": "postgres"}, {}, "mlops-platform:postgresPassword: is required when trackingBackend"),
        ({"authEnabled": "true"}, {}, "mlops-platform:adminPassword: is required when authEnabled is true"),
        ({"authEnabled": "true"}, {"adminPassword": "x" * 12},
         "mlops-platform:servingToken: is required when authEnabled"),
        ({"exposePorts": "true"}, {}, "mlops-platform:exposePorts: true needs authEnabled: true"),
        ({"authEnabled": "yes"}, {}, "mlops-platform:authEnabled: must be true or false"),
        ({"restartPolicy": "sometimes"}, {}, "mlops-platform:restartPolicy"),
        ({"namePrefix": "My Stack"}, {}, "mlops-platform:namePrefix"),
        ({"mlflowPrt": "5001"}, {}, "unknown stack config key(s) mlops-platform:mlflowPrt"),
        ({"servingMemoryMb": "8"}, {}, "mlops-platform:servingMemoryMb: must be between 64"),
        ({"canaryImage": "mlops-serving:v8"}, {}, "mlops-platform:canaryImage: a canary needs a champion"),
        ({"servingImage": "s:v1", "canaryImage": "s:v2", "canaryPercent": "80"}, SMOKE,
         "mlops-platform:canaryPercent: must be between 1 and 50"),
        ({"candidateImage": "mlops-serving:v8", "candidateVersion": "v 8"}, SMOKE, "mlops-platform:candidateVersion"),
        ({"candidateImage": "mlops-serving:v8"}, {}, "mlops-platform:smokeToken: is required when candidateImage"),
        ({"servingImage": "s:v1", "canaryImage": "s:v2"}, {}, "mlops-platform:smokeToken: is required when "),
        ({"driftAlertKind": "pager"}, {}, "mlops-platform:driftAlertKind: must be one of slack, github"),
        ({"driftAlertKind": "github"}, {"driftAlertWebhookUrl": "https://api.github.com/repos/o/r/dispatches"},
         "mlops-platform:driftAlertToken: is required when driftAlertKind is github"),
        ({}, {"tlsCertificate": EDGE_TLS.certificate}, "mlops-platform:tlsPrivateKey: is required"),
        ({"tlsCertificate": EDGE_TLS.certificate}, {"tlsPrivateKey": EDGE_TLS.private_key},
         "mlops-platform:tlsCertificate: must be a secret"),
        ({}, {"tlsCertificate": "not a certificate", "tlsPrivateKey": EDGE_TLS.private_key},
         "mlops-platform:tlsCertificate: must hold a PEM certificate"),
        ({}, {**EDGE_TLS.as_secrets(), "tlsPrivateKey": EDGE_TLS.certificate},
         "mlops-platform:tlsPrivateKey: must hold a PEM private key"),
    ],
)
def test_bad_config_fails_naming_the_key(config, secrets, message):
    with pytest.raises(pulumi.RunError) as raised:
        run_program(config, secrets)
    assert message in str(raised.value)


def test_the_drift_alert_webhook_reaches_the_job_as_files_only():
    url, token = "https://api.github.com/repos/acme/models/dispatches", "ghp-tok-2c4e"
    stack = run_program({"driftAlertKind": "github"}, {"driftAlertWebhookUrl": url, "driftAlertToken": token})
    job = stack.container("monitoring")
    files = {u["file"]: u["content"] for u in job.plain["uploads"]}
    env = env_of(job)
    assert files[env["MONITORING_ALERT_WEBHOOK_URL_FILE"]] == url and files[env["MONITORING_ALERT_TOKEN_FILE"]] == token
    assert env["MONITORING_ALERT_KIND"] == "github"
    assert url not in repr(job.plain["envs"]) + repr(stack.exports) and token not in repr(job.plain["envs"])
    assert "MONITORING_ALERT_WEBHOOK_URL_FILE" not in env_of(run_program().container("monitoring"))


def test_a_password_mlflow_would_refuse_fails_naming_the_key():
    with pytest.raises(pulumi.RunError, match="mlops-platform:monitoringPassword: must be at least 12 characters"):
        run_program({"authEnabled": "true"}, {**AUTH_SECRETS, "monitoringPassword": "short"})


def test_an_empty_secret_fails_naming_the_key():
    with pytest.raises(pulumi.RunError, match="mlops-platform:adminPassword: must be one non-empty line"):
        run_program({"authEnabled": "true"}, {**AUTH_SECRETS, "adminPassword": "  "})



def test_the_pipelines_values_for_nothing_there_declare_what_the_programs_defaults_do(default_stack):
    """What a release applies to clear the champion, candidate and canary is what the program reads as unset:
    both take the keys and their "none" values from services/contract.py (issue 18, item 6)."""
    from pipelines.release_pointer import NO_MODEL
    from pipelines.stack import WITHOUT_CANARY, WITHOUT_CANDIDATE
    from services.contract import NO_VERSION

    cleared = run_program({**NO_MODEL, **WITHOUT_CANDIDATE, **WITHOUT_CANARY})  # unknown keys would be refused
    assert cleared.exports == default_stack.exports
    assert ({c.name: c.plain for c in cleared.of_type(CONTAINER)}
            == {c.name: c.plain for c in default_stack.of_type(CONTAINER)})
    assert {cleared.exports[key] for key in ("model_version", "canary_version", "candidate_version")} == {NO_VERSION}
