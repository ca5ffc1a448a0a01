"""The release image's build-time check: every requirement of the bento is installed at its version, or the
build stops naming the package (services/serving/requirements_check.py, run as release.Dockerfile runs it)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "services" / "serving" / "requirements_check.py"
PYTEST = metadata.version("pytest")


def check(tmp_path: Path, requirements: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "requirements.txt"
    path.write_text(requirements)
    # -I: only the standard library and the installed packages, as in the image
    return subprocess.run([sys.executable, "-I", str(SCRIPT), str(path), "churn", "3"], capture_output=True,
                          text=True, timeout=60)


def test_installed_pins_pass(tmp_path):
    padded = f"{PYTEST}.0" if PYTEST.count(".") < 3 else PYTEST
    done = check(tmp_path, f"# the bento's pins\npytest=={PYTEST}\nPyTest=={padded}\npluggy\n\nscikit_learn=="
                           f"{metadata.version('scikit-learn')}\nbentoml[io]=={metadata.version('bentoml')}\n")
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(("line", "named"), [
    ("not-a-package-anywhere==1.2.3", "not-a-package-anywhere==1.2.3"),
    ("pytest==0.0.1", "pytest==0.0.1"),
])
def test_a_missing_or_different_package_is_refused_naming_it(tmp_path, line, named):
    done = check(tmp_path, f"pytest=={PYTEST}\n{line}\n")
    assert done.returncode == 1
    assert f"the serving runtime image lacks {named} that model churn v3 needs" in done.stderr
    assert ("; list it under model.requirements in the pipeline config (a team's package: the release image "
            "installs it) or add it to services/serving/requirements.in (the template's runtime)") in done.stderr


def test_a_line_that_is_not_a_pin_is_refused(tmp_path):
    done = check(tmp_path, "pytest>=1\n")
    assert done.returncode == 1 and "requirements.txt:1: 'pytest>=1' is not name==version" in done.stderr
