"""The command-line tool, run as a real process against the simulator it starts itself."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE_PARENT = Path(__file__).resolve().parents[2] / "custom_components" / "daly_active_balance"
ENV = {**os.environ, "PYTHONPATH": str(PACKAGE_PARENT)}


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protocol.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def simulator_url(socket_enabled: None) -> object:
    proc = subprocess.Popen(
        [sys.executable, "-m", "protocol.cli", "simulate", "--tcp", "0", "--pty", "--cells", "8"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    urls = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
    yield urls
    proc.terminate()
    assert proc.wait(10) == 0


def test_read_write_round_trip(simulator_url: list[str]) -> None:
    tcp, pty = simulator_url
    assert tcp.startswith("socket://127.0.0.1:")
    assert pty.startswith("/dev/")
    for url in (tcp, pty):
        result = _cli("read", "--port", url)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["protocol"] == "d2"
        assert data["status"]["cell_count"] == 8
        assert len(data["status"]["cell_voltages"]) == 8
        assert "password" not in data["identity"]
        assert "123456" not in result.stdout + result.stderr
    write = _cli("write", "--port", tcp, "balance_start_voltage", "3.41")
    assert write.returncode == 0, write.stderr
    assert json.loads(write.stdout) == {"name": "balance_start_voltage", "value": 3.41}
    again = json.loads(_cli("read", "--port", pty).stdout)
    assert again["settings"]["balance_start_voltage"] == 3.41
    off = _cli("write", "--port", tcp, "balancer_enabled", "off")
    assert json.loads(off.stdout)["value"] is False


def test_errors_are_clear(simulator_url: list[str]) -> None:
    tcp, _ = simulator_url
    bad = _cli("write", "--port", tcp, "balance_start_voltage", "9")
    assert bad.returncode == 1
    assert "refused" in bad.stderr
    assert _cli("write", "--port", tcp, "balancer_enabled", "maybe").returncode == 1
    assert _cli("write", "--port", tcp, "sleep_time", "soon").returncode == 1
    missing = _cli("read", "--port", "/dev/nonexistent-port", "--timeout", "0.2")
    assert missing.returncode == 1
    assert "cannot open" in missing.stderr
    assert _cli("simulate").returncode == 1
