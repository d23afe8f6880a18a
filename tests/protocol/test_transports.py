"""The real transports: serialx over a real pty and a real TCP socket, BLE through the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
import os

from bleak.backends.device import BLEDevice
import pytest

from custom_components.daly_active_balance.protocol.ble_standin import standin_client_class
from custom_components.daly_active_balance.protocol.client import DalyClient
from custom_components.daly_active_balance.protocol.errors import DalyConnectionError, DalyTimeoutError
from custom_components.daly_active_balance.protocol.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
    serve_pty,
    serve_tcp,
)
from custom_components.daly_active_balance.protocol.transport import SerialTransport
from custom_components.daly_active_balance.protocol.transport_ble import BleTransport


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def sim() -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=24, seed=5), clock=lambda: 0.0)


@pytest.fixture
async def tcp_url(sim: SimulatedBalancer, socket_enabled: None) -> AsyncIterator[str]:
    server = await serve_tcp(sim)
    yield server.url
    await server.close()


async def test_serial_over_a_real_pty(sim: SimulatedBalancer) -> None:
    server = await serve_pty(sim)
    try:
        assert server.url.startswith("/dev/")
        client = DalyClient(SerialTransport(server.url), timeout=1)
        status = await client.read_status()
        assert status.cell_voltages == sim.cell_voltages()
        assert await client.write_setting("balance_start_voltage", 3.5) == 3.5
        assert sim.value("balance_start_voltage") == 3.5
        await client.close()
    finally:
        await server.close()


async def test_serial_over_tcp_leaves_no_descriptor(sim: SimulatedBalancer, tcp_url: str) -> None:
    # One connection first: the event loop creates its executor lazily on first use.
    warm = DalyClient(SerialTransport(tcp_url), timeout=1)
    await warm.read_status()
    await warm.close()
    before = _open_fds()
    for _ in range(3):
        client = DalyClient(SerialTransport(tcp_url), timeout=1)
        status = await client.read_status()
        assert status.cell_count == 24
        await client.close()
    assert _open_fds() == before


async def test_nonexistent_port() -> None:
    client = DalyClient(SerialTransport("/dev/does-not-exist"), timeout=0.2, retries=0)
    with pytest.raises(DalyConnectionError, match="cannot open"):
        await client.read_status()


async def test_refusing_tcp_bridge_then_accepting(sim: SimulatedBalancer, socket_enabled: None) -> None:
    server = await serve_tcp(sim)
    port = server.port
    await server.close()
    client = DalyClient(SerialTransport(f"socket://127.0.0.1:{port}"), timeout=0.5, retries=0)
    with pytest.raises(DalyConnectionError):
        await client.read_status()
    server = await serve_tcp(sim, port=port)
    try:
        assert (await client.read_status()).cell_count == 24
    finally:
        await client.close()
        await server.close()


async def test_bridge_that_goes_away_mid_session(sim: SimulatedBalancer, socket_enabled: None) -> None:
    server = await serve_tcp(sim)
    client = DalyClient(SerialTransport(server.url), timeout=0.3, retries=0)
    await client.read_status()
    port = server.port
    await server.close()
    with pytest.raises((DalyConnectionError, DalyTimeoutError)):
        await client.read_status()
    server = await serve_tcp(sim, port=port)
    try:
        assert (await client.read_status()).cell_count == 24
    finally:
        await client.close()
        await server.close()


def _device() -> BLEDevice:
    return BLEDevice("40:17:10:01:5C:9B", "DL-401710015C9B", {})


@pytest.mark.parametrize(("mtu", "merge"), [(23, False), (512, True)])
async def test_ble_through_the_standin(sim: SimulatedBalancer, mtu: int, merge: bool) -> None:
    client_class = standin_client_class(sim, mtu=mtu, merge=merge)
    transport = BleTransport(_device(), client_class=client_class)
    client = DalyClient(transport, timeout=1)
    for _ in range(3):
        poll = await client.poll(settings=True)
        assert poll.status.cell_voltages == sim.cell_voltages()
    assert transport.connects == 1  # keep-connected: no reconnect per poll
    assert await client.set_balancer(False) is False
    assert sim.value("balancer_enabled") is False
    await client.close()
    assert not transport.is_open


async def test_ble_release_mode_reconnects_each_poll(sim: SimulatedBalancer) -> None:
    transport = BleTransport(_device(), client_class=standin_client_class(sim), keep_connected=False)
    client = DalyClient(transport, timeout=1)
    for _ in range(3):
        await client.poll()
        assert not transport.is_open
    assert transport.connects == 3


async def test_ble_device_out_of_range() -> None:
    transport = BleTransport(lambda: None)
    client = DalyClient(transport, timeout=0.2, retries=0)
    with pytest.raises(DalyConnectionError, match="not in range"):
        await client.read_status()
