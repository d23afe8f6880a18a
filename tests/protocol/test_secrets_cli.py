"""The command-line tool never prints the module's password (issue: "Secrets and bad input").

Run as real processes against a simulator the tool starts itself, with debug logging on.
(``decode`` of captured bytes: ``test_cli.test_decode_skips_garbage_and_bad_crcs_and_redacts_the_password``.)
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import subprocess
import sys

import pytest

from custom_components.daly_active_balance.protocol.registers import PASSWORD
from custom_components.daly_active_balance.protocol.simulator import SimulatedBalancer

PACKAGE_PARENT = Path(__file__).resolve().parents[2] / "custom_components" / "daly_active_balance"
ENV = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protocol.cli", *args], capture_output=True, text=True, env=ENV, timeout=30, check=False
    )


def _secret_forms() -> list[str]:
    """The password as decoded, and its raw words as they could be printed."""
    sim = SimulatedBalancer()
    words = [sim.read_word(a) for a in range(PASSWORD.start, PASSWORD.end)]
    password = sim.value("password")
    assert isinstance(password, str) and password
    return [
        password,
        ", ".join(str(w) for w in words),
        "".join(f"{w:04x}" for w in words),
        " ".join(f"{w >> 8:02x} {w & 0xFF:02x}" for w in words),
    ]


@pytest.fixture
def simulator_url(socket_enabled: None) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "protocol.cli", "simulate", "--tcp", "0"], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(10)


def test_read_with_debug_logging_never_prints_the_password(simulator_url: str) -> None:
    """Secrets, "never appears in ... the CLI's output": ``read -v`` (debug log on stderr) reads the
    password block from the module, yet neither output stream shows it in any form."""
    result = _cli("-v", "read", "--port", simulator_url)
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr
    for form in _secret_forms():
        assert form not in result.stdout, form
        assert form not in result.stderr, form
