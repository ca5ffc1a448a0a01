"""What a failed release build says: the package its runtime image lacks."""

from __future__ import annotations

from pipelines.stack import release_build_error

LACKING = ("the serving runtime image lacks lightgbm==4.7.0 that model demand v3 needs; add it to "
           "services/serving/requirements.in")


def test_a_release_build_refused_for_a_missing_package_says_which():
    log = f"Step 6/6 : RUN python ...\n ---> Running in 1f2e\n{LACKING}\n{LACKING}\nThe command returned 1\n"
    assert str(release_build_error("mlops-serving:v3-x", log)) == f"release image mlops-serving:v3-x refused: {LACKING}"
    assert "failed:\nno space left" in str(release_build_error("t", "no space left"))
