"""Under CI a real tier may not skip: a skipped integration or stack test fails the run.

Locally a tier skips when its real dependency (a Docker daemon, say) is absent; CI installs and starts
every dependency (.ci/run), so a skip there means something is missing and the run must not go green.
"""

from __future__ import annotations

import os

import pytest

REAL_TIERS = ("tests/integration/", "tests/stack/", "tests/template/", "tests/kubernetes/test_pods_on_docker.py")


class SkippedRealTiers:
    """Collects the real-tier tests that skipped in this session."""

    def __init__(self) -> None:
        self.ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.nodeid.startswith(REAL_TIERS):
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.ci and self.skipped and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.ci and self.skipped:
            terminalreporter.section("real tiers skipped under CI", red=True)
            terminalreporter.line(f"{len(self.skipped)} integration/stack test(s) skipped; CI must run every tier:")
            for nodeid in self.skipped[:20]:
                terminalreporter.line(f"  {nodeid}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkippedRealTiers(), "skipped-real-tiers")
