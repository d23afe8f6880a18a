"""The command-line tool, run as a real process against the simulator it starts itself."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import pytest

from aiodalybalancer.frames import with_crc
from aiodalybalancer.registers import PASSWORD
from aiodalybalancer.tools.pack import weak_cell_simulator
from aiodalybalancer.tools.simulator import SimulatedBalancer

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodalybalancer.tools.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def simulator_url(socket_enabled: None) -> object:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodalybalancer.tools.cli", "simulate", "--tcp", "0", "--pty", "--cells", "8"],
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


def _decode(data: str, *requests: str, direction: str | None = None) -> list[dict[str, Any]]:
    args = ["decode", "--data", data]
    for request in requests:
        args += ["--request", request]
    if direction:
        args += ["--direction", direction]
    result = _cli(*args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_decode_names_values_like_the_captured_vectors(capture: dict[str, Any]) -> None:
    """Every captured answer, decoded with its request, gives exactly the vectors' ``expect`` values."""
    for response in capture["responses"]:
        requests = response["request"] if isinstance(response["request"], list) else [response["request"]]
        found = _decode(response["hex"], *requests)
        assert len(found) == response.get("expect_frames", 1), response["hex"]
        raw = bytes.fromhex(response["hex"])
        assert found[0]["function"] == raw[1]
        if raw[1] == 3:
            assert found[0]["byte_count"] == raw[2]
        expect = response.get("expect", {})
        if "password" in expect:
            assert found[0]["values"] == {"password": "**REDACTED**"}
            assert found[0]["registers"] == "**REDACTED**"
            continue
        for key, value in expect.items():
            assert found[0]["values"][key] == value, key


def test_decode_skips_garbage_and_bad_crcs_and_redacts_the_password(capture: dict[str, Any]) -> None:
    """Only valid frames are printed; the password's words never are, even mixed with others."""
    balancer = next(r["hex"] for r in capture["responses"] if r["request"] == "d20300cc00055655")
    password = next(r["hex"] for r in capture["responses"] if r["request"] == "d20300c90003c656")
    broken = balancer[:-4] + ("0000" if balancer[-4:] != "0000" else "ffff")
    data = "41542b4f4b0d0a" + broken + "d2d2ff" + balancer + password + "00"
    found = _decode(data, "d20300cc00055655", "d20300c90003c656")
    assert [f["byte_count"] for f in found] == [10, 6]
    assert found[0]["values"]["balancer_enabled"] is True
    assert found[0]["other"] == {"production_date": "2000-01-01"}
    printed = _cli("decode", "--data", data, "--request", "d20300c90003c656").stdout
    assert "123456" not in printed
    assert "12594" not in printed  # 0x3132, the password's first word
    # Without its request a 3-word answer cannot be known to be the password: shown raw.
    assert _decode(password)[0]["registers"] == [0x3132, 0x3334, 0x3536]


def test_decode_writes_requests_and_exceptions() -> None:
    """Echoes are decoded with their request; host frames with --direction request; exceptions too."""
    echo = _decode("d2:06:00:cf:00:00:aa:56", "d20600cf0000aa56")
    assert echo == [
        {"function": 6, "byte_count": 2, "start": 0xCF, "registers": [0], "values": {"balancer_enabled": False}}
    ]
    requests = _decode("d20300cc00055655 d21000d40003180b0709341cf7d8", direction="request")
    assert requests[0] == {"function": 3, "byte_count": 0, "start": 0xCC, "count": 5, "registers": []}
    assert requests[1]["registers"] == [0x180B, 0x0709, 0x341C]
    ack = _decode("d210000c00029268")
    assert ack == [{"function": 16, "byte_count": 0, "start": 0x0C, "count": 2, "registers": []}]
    exception = bytes((0xD2, 0x83, 0x02))
    assert _decode(with_crc(exception).hex())[0] == {
        "function": 0x83,
        "byte_count": 0,
        "exception_code": 2,
        "registers": [],
    }


def test_decode_refuses_bad_input() -> None:
    """Input that is not hex, or a request that is not a valid D2 request, is a clear error."""
    not_hex = _cli("decode", "--data", "d2 zz")
    assert not_hex.returncode == 1
    assert "not hexadecimal" in not_hex.stderr
    bad_request = _cli("decode", "--data", "d2", "--request", "d2030000003e0000")
    assert bad_request.returncode == 1
    assert "not a valid D2 request" in bad_request.stderr


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


def test_read_with_debug_logging_never_prints_the_password(simulator_url: list[str]) -> None:
    """Secrets, "never appears in ... the CLI's output": ``read -v`` (debug log on stderr) reads the
    password block from the module, yet neither output stream shows it in any form."""
    result = _cli("-v", "read", "--port", simulator_url[0])
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr
    for form in _secret_forms():
        assert form not in result.stdout, form
        assert form not in result.stderr, form


def test_simulate_a_pack_with_a_weak_cell_days_in(socket_enabled: None) -> None:
    """``--pack-days 14``: the cells of the library's pack with a weak cell after 14 days."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiodalybalancer.tools.cli", "simulate", "--tcp", "0", "--pack-days", "14"],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        result = _cli("read", "--port", url)
        assert result.returncode == 0, result.stderr
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    cells = json.loads(result.stdout)["status"]["cell_voltages"]
    # The same pack built here, at the moment it was built there; the seconds between then and
    # the read move a night-time pack by less than a millivolt.
    expected = weak_cell_simulator(14, clock=lambda: 0.0).cell_voltages()
    assert cells == pytest.approx(expected, abs=0.0015)
    assert cells != pytest.approx(SimulatedBalancer(clock=lambda: 0.0).cell_voltages(), abs=0.0015)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pack-days", "-1"], "days must be 0..365"),
        (["--pack-days", "soon"], "days must be 0..365, got 'soon'"),
        (["--pack-days", "nan"], "days must be 0..365, got 'nan'"),
        (["--speed", "0.5"], "speed must be 1..1000000"),
        (["--speed", "abc"], "speed must be 1..1000000, got 'abc'"),
    ],
)
def test_simulate_refuses_bad_pack_options(args: list[str], message: str) -> None:
    result = _cli("simulate", "--tcp", "0", *args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["simulate", "--tcp", "99999"], id="simulate-port-above-65535"),
        pytest.param(["simulate", "--tcp", "-5"], id="simulate-negative-port"),
        pytest.param(["simulate", "--tcp", "0", "--cells", "0"], id="simulate-0-cells"),
        pytest.param(["simulate", "--tcp", "0", "--cells", "100"], id="simulate-100-cells"),
        pytest.param(["read", "--ble", "ZZ", "--timeout", "0.2"], id="read-malformed-ble-address"),
    ],
)
def test_bad_input_is_a_clear_error_never_a_traceback(args: list[str]) -> None:
    """Out-of-range simulator options and a malformed Bluetooth address end with one line that
    says what is wrong and a non-zero exit code, as a bad port or bad hex does."""
    result = _cli(*args, timeout=20)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "error" in result.stderr.lower()


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
def test_a_timeout_that_is_not_a_positive_finite_number_is_refused(timeout: str) -> None:
    """A timeout of 0, below 0, NaN or infinity is refused as such, not tried and then reported
    as a module that did not answer."""
    result = _cli("read", "--port", "/dev/nonexistent-port", "--timeout", timeout)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    assert f"--timeout: seconds must be a positive number, got '{timeout}'" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e9", "sleep_time: 1000000000 refused: allowed 10 to 65535 s"),
        ("3600.5", "sleep_time: expected a whole number, got '3600.5'"),
        ("nan", "sleep_time: expected a whole number, got 'nan'"),
        ("soon", "sleep_time: expected a number, got 'soon'"),
    ],
)
def test_a_setting_out_of_range_says_so_with_the_range_before_connecting(value: str, message: str) -> None:
    """A number the register cannot hold is out of range (with the range), not "not a number";
    it is refused before the link is opened (the port here does not exist)."""
    result = _cli("write", "--port", "/dev/nonexistent-port", "sleep_time", value)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {message}"
