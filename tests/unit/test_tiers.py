"""A skipped real tier fails the run under CI, and only there."""

import pytest

SKIPPING_STACK_TEST = """
import pytest

def test_needs_docker():
    pytest.skip("no Docker daemon answers")
"""


@pytest.mark.parametrize(("ci", "expected"), [("true", pytest.ExitCode.TESTS_FAILED), ("", pytest.ExitCode.OK)])
def test_a_skipped_stack_tier_fails_only_under_ci(pytester, monkeypatch, ci, expected):
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(**{"tests/stack/test_skipping.py": SKIPPING_STACK_TEST})
    result = pytester.runpytest("-p", "tests.tiers", "-p", "no:cacheprovider")
    assert result.ret == expected
    result.assert_outcomes(skipped=1)
    if ci:
        result.stdout.fnmatch_lines(["*real tiers skipped under CI*", "*tests/stack/test_skipping.py::test_needs*"])


def test_a_skipped_unit_test_is_fine_under_ci(pytester, monkeypatch):
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(**{"tests/unit/test_skipping.py": SKIPPING_STACK_TEST})
    assert pytester.runpytest("-p", "tests.tiers", "-p", "no:cacheprovider").ret == pytest.ExitCode.OK
