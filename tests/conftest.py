"""Session-wide settings for every test tier."""

import os
import shutil
import tempfile

import pytest

# BentoML fixes its store on first use in a process; one store for the whole session (and the processes
# it starts) keeps in-process builds and `bentoml serve` subprocesses looking at the same bentos.
_OWN_STORE = None if "BENTOML_HOME" in os.environ else tempfile.mkdtemp(prefix="bentoml-tests-")
if _OWN_STORE:
    os.environ["BENTOML_HOME"] = _OWN_STORE
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _OWN_STORE:
        shutil.rmtree(_OWN_STORE, ignore_errors=True)
