"""The serving images as Docker builds them: the runtime image imports the estimators a team may name
(LightGBM needs the system's OpenMP), and a release image whose bento needs a package the runtime lacks is
refused at build time, naming it (release.Dockerfile's requirement check)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from services.serving.requirements_check import HINT

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = REPO_ROOT / "services"
RUNTIME_TAG = "mlops-test-serving-runtime:images"


def docker_build(*args: str) -> subprocess.CompletedProcess[str]:
    # The classic builder, as pipelines/stack.py builds release images.
    return subprocess.run(["docker", "build", "--network", "host", *args], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "DOCKER_BUILDKIT": "0"})


@pytest.fixture(scope="module")
def runtime_image(docker_client: docker.DockerClient, base_image: str) -> str:
    done = docker_build("--file", str(SERVICES / "serving" / "Dockerfile"), "--build-arg", f"BASE_IMAGE={base_image}",
                        "--tag", RUNTIME_TAG, str(SERVICES))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return RUNTIME_TAG


def test_the_runtime_image_imports_lightgbm_and_xgboost(docker_client, runtime_image):
    out = docker_client.containers.run(
        runtime_image, entrypoint=["python", "-c", "import lightgbm, xgboost; print(lightgbm.__version__, "
                                   "xgboost.__version__)"], remove=True)
    assert out.decode().split() == ["4.7.0", "3.2.0"]


def fake_bento(root: Path, requirements: str) -> Path:
    """What the release build reads of an exported bento: its requirements and the check it carries."""
    (root / "env" / "python").mkdir(parents=True)
    (root / "env" / "python" / "requirements.txt").write_text(requirements)
    check = root / "src" / "services" / "serving" / "requirements_check.py"
    check.parent.mkdir(parents=True)
    shutil.copyfile(SERVICES / "serving" / "requirements_check.py", check)
    return root


def release(runtime_image: str, context: Path) -> subprocess.CompletedProcess[str]:
    return docker_build("--file", str(SERVICES / "serving" / "release.Dockerfile"),
                        "--build-arg", f"RUNTIME_IMAGE={runtime_image}", "--build-arg", "MODEL_NAME=demand",
                        "--build-arg", "MODEL_VERSION=3", "--tag", "mlops-test-serving:images", str(context))


def test_a_release_whose_bento_needs_a_missing_package_is_refused_naming_it(runtime_image, tmp_path):
    done = release(runtime_image, fake_bento(tmp_path / "bad", "lightgbm==4.7.0\ncatboost==1.2.8\n"))
    assert done.returncode != 0
    assert f"the serving runtime image lacks catboost==1.2.8 that model demand v3 needs; {HINT}" \
        in done.stdout + done.stderr


def test_a_release_whose_runtime_has_every_package_builds(runtime_image, tmp_path):
    done = release(runtime_image, fake_bento(tmp_path / "good", "lightgbm==4.7.0\nxgboost-cpu==3.2.0\n"
                                                                "scikit-learn==1.9.1\nbentoml==1.4.40\n"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
