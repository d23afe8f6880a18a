"""Under CI, a skipped test fails the run unless it is expected (``ALLOWED_SKIPS``, with a reason).

A skip that nobody sees is a test that silently stopped running: a missing package, browser or
fixture turns a red run green. On a developer's machine a skip stays a skip (the browser test
says loudly why); under CI (``CI=true``, which GitHub Actions sets) the session fails and lists
every unexpected skip with its reason.
"""

from __future__ import annotations

import os

import pytest

#: True when running under CI.
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}

#: Skips CI accepts: a node id (or the start of one, e.g. a file) → why it may skip there.
ALLOWED_SKIPS: dict[str, str] = {}


def allowed(nodeid: str) -> bool:
    """True when ``nodeid`` is in the allow-list (itself or below one of its entries)."""
    return any(nodeid == entry or nodeid.startswith((f"{entry}::", f"{entry}[")) for entry in ALLOWED_SKIPS)


class SkipGate:
    """Collects unexpected skips and turns the session's result into a failure."""

    def __init__(self) -> None:
        """Nothing skipped yet."""
        self.unexpected: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note a skip (in any phase) that the allow-list does not name; xfail is no skip."""
        if report.skipped and not hasattr(report, "wasxfail") and not allowed(report.nodeid):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.unexpected.append((report.nodeid, reason))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that skips itself while being collected is a skip too."""
        if report.skipped and not allowed(report.nodeid):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.unexpected.append((report.nodeid, reason))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """List the unexpected skips where the run's summary is read."""
        if self.unexpected:
            terminalreporter.section("unexpected skips under CI (tests/skip_gate.py)", red=True, bold=True)
            for nodeid, reason in self.unexpected:
                terminalreporter.write_line(f"{nodeid}: {reason}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Fail a session that would otherwise pass."""
        if self.unexpected and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    """Install the gate under CI."""
    if IN_CI:
        config.pluginmanager.register(SkipGate(), "daly-skip-gate")
