"""Fixtures for the browser tests: Chromium, a real Home Assistant and the device simulator.

Home Assistant runs as a subprocess of the test, with its own config folder (made by
scripts/ha_config/ha_setup.py) and a free port on 127.0.0.1; Chromium is Debian's, driven by
Playwright (which never downloads a browser here); the simulator runs inside the test's event
loop, so that the test can read and change the simulated module directly.

These tests need sockets on 127.0.0.1, so every fixture that opens one asks for pytest-socket's
``socket_enabled``. They stay out of tests/components/, whose conftest sets Home Assistant's
in-process test harness up for every test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
import importlib.metadata
import importlib.util
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING
import warnings

import pytest

from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig, serve_tcp
from tests.scripts import load_script
from tests.skip_gate import IN_CI

if TYPE_CHECKING:
    from playwright.async_api import Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
REQUIREMENTS_RUN = REPO / "requirements_run.txt"
LIBRARY_SRC = REPO / "packages" / "aiodalybalancer" / "src"
# Debian's Chromium headless, as root, on a machine with no network but loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A first start on a fresh folder creates the database and compiles translations: be generous.
HA_START_TIMEOUT = 300.0
HA_STOP_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker (run only these with ``-m e2e``, skip them with ``-m 'not e2e'``)."""
    config.addinivalue_line("markers", "e2e: browser end-to-end test against a real Home Assistant")


def loud_skip(config: pytest.Config, reason: str) -> None:
    """Skip, and say so where nobody can miss it: the terminal and the warnings summary.

    Under CI the browser test must run: there it fails instead.
    """
    if IN_CI:
        pytest.fail(f"browser end-to-end tests cannot run under CI: {reason}")
    banner = f"\n{'!' * 100}\n!! BROWSER END-TO-END TESTS SKIPPED: {reason}\n{'!' * 100}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(banner, red=True, bold=True)
    warnings.warn(pytest.PytestWarning(f"browser end-to-end tests skipped: {reason}"), stacklevel=2)
    pytest.skip(f"browser end-to-end tests skipped: {reason}")


def run_env_function(function: str) -> bool:
    """Run one of scripts/_env.sh's ``daly_ensure_*`` functions; True when it succeeded.

    Inside the project's Debian root the root *is* the machine to install on, so the function
    runs in host mode there (the root's marker file tells where we are).
    """
    env = dict(os.environ)
    if Path("/.daly-root-ok").exists():
        env["DALY_MODE"] = "host"
    command = f'source "{REPO}/scripts/_env.sh" && {function}'
    try:
        result = subprocess.run(["bash", "-c", command], env=env, timeout=900, check=False)
    except OSError, subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def find_chromium() -> str | None:
    """Debian's Chromium, or the one named by ``DALY_CHROMIUM``."""
    candidates = [os.environ.get("DALY_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium(pytestconfig: pytest.Config) -> str:
    """The system Chromium, installed through scripts/_env.sh when missing."""
    if importlib.util.find_spec("playwright") is None:
        loud_skip(pytestconfig, "the 'playwright' package is not installed (requirements_test.txt)")
    path = find_chromium()
    if path is None and run_env_function("daly_ensure_chromium"):
        path = find_chromium()
    if path is None:
        loud_skip(pytestconfig, "Debian's chromium is not installed and could not be installed (daly_ensure_chromium)")
    assert path is not None
    return path


def missing_run_requirements() -> list[str]:
    """The lines of requirements_run.txt this environment does not satisfy."""
    from packaging.requirements import Requirement  # Home Assistant's own dependency

    missing = []
    for raw in REQUIREMENTS_RUN.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        # The library (an editable install of this repository's package): Home Assistant gets it
        # from this checkout instead (``_start``).
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(line)
    return missing


@pytest.fixture(scope="session")
def ha_runtime_packages(pytestconfig: pytest.Config) -> None:
    """Install what Home Assistant needs to serve its UI (requirements_run.txt) when missing.

    The web UI does not load unless every base entity platform imports (its service helper imports
    them all, the voice pipeline included), and the test runs Home Assistant with ``--skip-pip``.
    pymicro-vad and pyspeex-noise have no wheel for Python 3.14: pip builds them, with a C++
    compiler that scripts/_env.sh installs when needed. The pins agree with requirements_test.txt
    and Home Assistant's package_constraints.txt: nothing already installed changes version.
    """
    if not missing_run_requirements():
        return
    import homeassistant

    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    command += ["-r", str(REQUIREMENTS_RUN), "-c", str(constraints)]
    if run_env_function("daly_ensure_cxx"):
        subprocess.run(command, check=False, timeout=1800)
    importlib.invalidate_caches()
    if still := missing_run_requirements():
        loud_skip(pytestconfig, f"could not install {', '.join(still)}: without them Home Assistant's UI never loads")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def http_status(port: int, path: str) -> int | None:
    """The status code of ``GET http://127.0.0.1:port/path``, or None when nothing answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except OSError, TimeoutError:
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
    except OSError, TimeoutError:
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


@dataclass
class HomeAssistantProcess:
    """A Home Assistant started by a test."""

    url: str
    port: int
    config_dir: Path
    output: Path
    process: asyncio.subprocess.Process

    def log_tail(self, lines: int = 60) -> str:
        """The end of Home Assistant's log, for failure messages."""
        log = self.config_dir / "home-assistant.log"
        source = log if log.exists() else self.output
        return "\n".join(source.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def integration_errors(self) -> list[str]:
        """Errors this integration logged (any thread)."""
        log = self.config_dir / "home-assistant.log"
        if not log.exists():
            return []
        pattern = re.compile(r" ERROR \([^)]*\) \[custom_components\.daly_active_balance")
        return [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if pattern.search(line)]


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group (Home Assistant stops cleanly), SIGKILL it after a while."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), HA_STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    # Nothing it started may outlive it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _start(config_dir: Path, output: Path, workdir: Path) -> asyncio.subprocess.Process:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "PYTHONPATH", "COV_"))}
    # The protocol library of this checkout, whatever another checkout installed.
    env["PYTHONPATH"] = str(LIBRARY_SRC)
    with output.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "homeassistant",
            "--config",
            str(config_dir),
            "--skip-pip",
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )


async def restart(ha: HomeAssistantProcess, while_stopped: Callable[[], None] = lambda: None) -> None:
    """Stop Home Assistant (it writes its stores), run ``while_stopped``, start it again and wait for its UI.

    The UI is served before the integrations are set up: ``ui.started`` waits for the rest.
    """
    await _stop(ha.process)
    while_stopped()
    ha.process = await _start(ha.config_dir, ha.output, ha.config_dir.parent)
    await _wait_ready(ha)


@pytest.fixture
async def home_assistant(
    tmp_path: Path, socket_enabled: None, ha_runtime_packages: None
) -> AsyncIterator[HomeAssistantProcess]:
    """A real Home Assistant with its web UI and this integration, on a free port of 127.0.0.1.

    Started with ``--skip-pip``: everything comes from the test environment, nothing is
    installed while the test runs. Stopped (process group and all) afterwards.
    """
    port = free_port()
    config_dir = tmp_path / "config"
    load_script("ha_config/ha_setup.py").prepare(config_dir, port)
    output = tmp_path / "home-assistant.out"
    process = await _start(config_dir, output, tmp_path)
    ha = HomeAssistantProcess(f"http://127.0.0.1:{port}", port, config_dir, output, process)
    try:
        await _wait_ready(ha)
        yield ha
    finally:
        await _stop(ha.process)


async def _wait_ready(ha: HomeAssistantProcess) -> None:
    """Wait until the web UI is served (its manifest answers 200)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HA_START_TIMEOUT
    while await http_status(ha.port, "/manifest.json") != 200:
        if ha.process.returncode is not None:
            pytest.fail(f"Home Assistant exited with {ha.process.returncode} while starting:\n{ha.log_tail()}")
        if loop.time() > deadline:
            pytest.fail(f"Home Assistant did not serve its UI within {HA_START_TIMEOUT:.0f} s:\n{ha.log_tail()}")
        await asyncio.sleep(0.5)


class FrozenClock:
    """The simulator's clock, moved only by the test: no drift between two readings."""

    def __init__(self) -> None:
        """Start at 0 s."""
        self.now = 0.0

    def __call__(self) -> float:
        """The current simulated time."""
        return self.now


@dataclass
class RunningSimulator:
    """The simulated module, its clock and the URL it is served on."""

    sim: SimulatedBalancer
    clock: FrozenClock
    url: str


@pytest.fixture
async def simulator(socket_enabled: None) -> AsyncIterator[RunningSimulator]:
    """A simulated 16S LiFePO4 balancer served on socket://127.0.0.1:<free port>, clock frozen."""
    clock = FrozenClock()
    sim = SimulatedBalancer(SimulatorConfig(cells=16, seed=7), clock=clock)
    server = await serve_tcp(sim)
    try:
        yield RunningSimulator(sim, clock, server.url)
    finally:
        await server.close()


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    """A fresh Chromium page (own temporary profile), 1280x900, English, UTC."""
    from playwright.async_api import async_playwright, expect

    # How long an expectation waits for the page to get there (Playwright's default is 5 s): a
    # loaded 2-core machine can take longer to draw a dashboard. A wait, not a timing assertion.
    expect.set_options(timeout=30_000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC"
            )
            context.set_default_timeout(30_000)
            yield await context.new_page()
            await context.close()
        finally:
            await browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The folder screenshots go to (artifacts/screenshots, ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
