"""The monitoring user's password reaches MLflow's auth database exactly as the job logs in with it:
the stack writes both files with `%` doubled (configparser), so both readers must interpolate."""

from __future__ import annotations

import pytest
from mlflow.utils import credentials

from services.tracking.service_users import read_users
from tests.infra.program import run_program
from tests.infra.test_stack_program import AUTH_SECRETS, env_of


@pytest.mark.parametrize("password", ["100%-sure-%(x)s-%%-pw", "semi;colon#hash = eq-pw"])
def test_the_provisioned_password_is_the_one_the_job_sends(tmp_path, monkeypatch, password):
    stack = run_program({"authEnabled": "true"}, {**AUTH_SECRETS, "monitoringPassword": password})
    tracking, job = stack.container("mlflow"), stack.container("monitoring")
    uploads = {upload["file"]: upload["content"] for c in (tracking, job) for upload in c.plain["uploads"]}
    users_file, credentials_file = tmp_path / "service_users.ini", tmp_path / "credentials"
    users_file.write_text(uploads[env_of(tracking)["SERVICE_USERS_FILE"]])
    credentials_file.write_text(uploads["/home/app/.mlflow/credentials"])
    monkeypatch.setattr(credentials, "_get_credentials_path", lambda: str(credentials_file))

    assert credentials._read_mlflow_creds_from_file()[1] == password
    assert read_users(users_file)["monitoring"]["password"] == password


def test_an_unreadable_users_file_names_it(tmp_path):
    with pytest.raises(OSError, match="service_users.ini"):
        read_users(tmp_path / "service_users.ini")
