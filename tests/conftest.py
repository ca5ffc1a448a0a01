"""Session-wide settings for every test tier."""

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

pytest_plugins = ["pytester", "tests.tiers", "tests.load"]

# BentoML fixes its store on first use in a process; one store for the whole session (and the processes
# it starts) keeps in-process builds and `bentoml serve` subprocesses looking at the same bentos.
_OWN_STORE = None if "BENTOML_HOME" in os.environ else tempfile.mkdtemp(prefix="bentoml-tests-")
if _OWN_STORE:
    os.environ["BENTOML_HOME"] = _OWN_STORE
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


@pytest.fixture(autouse=True)
def _no_tracking_uri_from_elsewhere() -> Iterator[None]:
    """Each test names its own MLflow server. `mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI,
    so without this one test's server (or a developer's) would pose as the next test's override."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _OWN_STORE:
        shutil.rmtree(_OWN_STORE, ignore_errors=True)
