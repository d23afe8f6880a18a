"""The real transports: serialx over a real pty and a real TCP socket, BLE through the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
from pathlib import Path
import time
from typing import Any

from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
import pytest
from serialx import descriptor_transport

from aiodalybalancer import transport_ble
from aiodalybalancer.client import DalyClient
from aiodalybalancer.errors import DalyConnectionError, DalyTimeoutError
from aiodalybalancer.models import ProtocolFamily
from aiodalybalancer.registers import BY_KEY, LIVE
from aiodalybalancer.tools.ble_standin import standin_client_class
from aiodalybalancer.tools.simulator import (
    Reply,
    SimulatedBalancer,
    SimulatorConfig,
    serve_pty,
    serve_tcp,
)
from aiodalybalancer.transport import SerialTransport
from aiodalybalancer.transport_ble import BleTransport

from .leaks import open_fds, until


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
        status = (await client.poll()).status
        assert status.cell_voltages == sim.cell_voltages()
        assert await client.write_setting(BY_KEY["balance_start_voltage"], 3.5) == 3.5
        assert sim.value("balance_start_voltage") == 3.5
        await client.close()
    finally:
        await server.close()


async def test_serial_reopen_ignores_the_old_links_callbacks(sim: SimulatedBalancer) -> None:
    """A closed serial link's loss or bytes, reported after the next link opened, change nothing:
    the new link stays open and is neither reported lost nor fed the old link's bytes."""
    server = await serve_pty(sim)
    transport = SerialTransport(server.url)
    received: list[bytes] = []
    lost: list[Exception | None] = []
    transport.attach(received.append, lost.append)
    try:
        await transport.open()
        assert transport._transport is not None
        first = transport._transport.get_protocol()
        await transport.close()
        await transport.open()
        assert transport._transport is not None
        assert transport._transport.get_protocol() is not first
        first.data_received(b"\xd2\x03")  # late, as a slow executor close would deliver them
        first.connection_lost(OSError(5, "Input/output error"))
        assert transport.is_open
        assert (received, lost) == ([], [])
        client = DalyClient(transport, timeout=1)  # the new link still carries requests
        assert (await client.poll()).status.cell_count == 24
        await client.close()
    finally:
        await transport.close()
        await server.close()


async def test_replug_while_the_old_links_close_still_runs(
    sim: SimulatedBalancer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter unplugged and plugged back in (as another tty behind the same stable path)
    while serialx still closes the old descriptor in its executor (slow, as a USB adapter's close
    can be): the old link's loss, reported late, leaves the new link open, and the port reopens
    (its lock was released with the link it belonged to)."""
    link = tmp_path / "usb-DALY-if00-port0"  # like /dev/serial/by-id/…
    first = await serve_pty(sim)
    link.symlink_to(first.url)
    real_close = descriptor_transport._safe_close
    closing: list[int] = []

    def slow_close(fd: int) -> None:
        closing.append(fd)
        time.sleep(0.5)
        real_close(fd)

    transport = SerialTransport(str(link))
    client = DalyClient(transport, timeout=1)
    second = None
    try:
        await transport.open()
        monkeypatch.setattr(descriptor_transport, "_safe_close", slow_close)
        await first.close()  # unplugged: the old link sees a hang-up and starts closing
        assert await until(lambda: not transport.is_open and bool(closing), 2)
        monkeypatch.setattr(descriptor_transport, "_safe_close", real_close)
        second = await serve_pty(sim)
        link.unlink()
        link.symlink_to(second.url)
        await transport.open()  # the old descriptor is still being closed
        await asyncio.sleep(0.8)  # its loss is reported now
        assert transport.is_open, "the old link's late loss ended the new link"
        assert (await client.poll()).status.cell_count == 24
        await transport.close()
        await transport.open()  # the port's lock is free again
        assert (await client.poll()).status.cell_count == 24
    finally:
        await client.close()
        if second is not None:
            await second.close()
        await first.close()


async def test_serial_over_tcp_leaves_no_descriptor(sim: SimulatedBalancer, tcp_url: str) -> None:
    # One connection first: the event loop creates its executor lazily on first use.
    warm = DalyClient(SerialTransport(tcp_url), timeout=1)
    await warm.poll()
    await warm.close()
    before = len(open_fds())
    for _ in range(3):
        client = DalyClient(SerialTransport(tcp_url), timeout=1)
        status = (await client.poll()).status
        assert status.cell_count == 24
        await client.close()
    assert len(open_fds()) == before


async def test_nonexistent_port() -> None:
    client = DalyClient(SerialTransport("/dev/does-not-exist"), timeout=0.2, retries=0)
    with pytest.raises(DalyConnectionError, match="cannot open"):
        await client.poll()


async def test_refusing_tcp_bridge_then_accepting(sim: SimulatedBalancer, socket_enabled: None) -> None:
    server = await serve_tcp(sim)
    port = server.port
    await server.close()
    client = DalyClient(SerialTransport(f"socket://127.0.0.1:{port}"), timeout=0.5, retries=0)
    with pytest.raises(DalyConnectionError):
        await client.poll()
    server = await serve_tcp(sim, port=port)
    try:
        assert (await client.poll()).status.cell_count == 24
    finally:
        await client.close()
        await server.close()


async def test_bridge_that_goes_away_mid_session(sim: SimulatedBalancer, socket_enabled: None) -> None:
    server = await serve_tcp(sim)
    client = DalyClient(SerialTransport(server.url), timeout=0.3, retries=0)
    await client.poll()
    port = server.port
    await server.close()
    with pytest.raises((DalyConnectionError, DalyTimeoutError)):
        await client.poll()
    server = await serve_tcp(sim, port=port)
    try:
        assert (await client.poll()).status.cell_count == 24
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
    assert await client.write_setting(BY_KEY["balancer_enabled"], False) is False
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
        await client.poll()


async def test_ble_link_lost_mid_poll_then_back(sim: SimulatedBalancer) -> None:
    """The dongle drops the link half-way through a reply: the poll fails at once, the next reconnects."""
    client_class = standin_client_class(sim, mtu=23)
    transport = BleTransport(_device(), client_class=client_class)
    client = DalyClient(transport, timeout=1, retries=0)
    await client.poll()
    before = client_class.notifications
    poll = asyncio.create_task(client.poll())
    while client_class.notifications < before + 2:  # noqa: ASYNC110 - the first fragments arrive
        await asyncio.sleep(0.001)
    client_class.drop_links()
    with pytest.raises(DalyConnectionError):
        await poll
    assert not transport.is_open
    again = await client.poll()
    assert again.status.cell_voltages == sim.cell_voltages()
    assert transport.connects == 2
    await client.close()


async def test_ble_write_errors_and_a_messy_disconnect(
    sim: SimulatedBalancer, caplog: pytest.LogCaptureFixture
) -> None:
    """GATT errors become connection errors; errors while closing are logged, never raised."""
    base = standin_client_class(sim)

    class Broken(base):  # type: ignore[misc, valid-type]
        async def write_gatt_char(self, *args: Any, **kwargs: Any) -> None:
            raise BleakError("GATT write failed")

        async def stop_notify(self, *args: Any) -> None:
            raise BleakError("stop_notify failed")

        async def disconnect(self) -> None:
            raise TimeoutError

    transport = BleTransport(_device(), client_class=Broken)
    with pytest.raises(DalyConnectionError, match="not connected"):
        await transport.write(b"\xd2")  # never opened
    await transport.open()
    with pytest.raises(DalyConnectionError, match="GATT write failed"):
        await transport.write(b"\xd2")
    caplog.set_level(logging.DEBUG, logger=transport_ble.__name__)
    await transport.close()
    assert not transport.is_open
    assert "stop_notify on 40:17:10:01:5C:9B failed" in caplog.text
    assert "disconnect from 40:17:10:01:5C:9B failed" in caplog.text


async def test_ble_reconnect_ignores_the_old_links_callback(sim: SimulatedBalancer) -> None:
    """A disconnect callback of a closed link that arrives after reconnecting changes nothing."""
    client_class = standin_client_class(sim)
    transport = BleTransport(_device(), client_class=client_class)
    await transport.open()
    first = client_class.instances[-1]
    await transport.close()
    await transport.open()  # the first link's callback runs while this one is being made
    await asyncio.sleep(0.01)
    assert transport.is_open
    assert client_class.instances[-1] is not first
    first._disconnected_callback(first)  # late, again: still ignored
    assert transport.is_open
    await transport.close()


async def test_a_paced_line_is_read_once_per_answer(socket_enabled: None) -> None:
    """Over a line as slow as the module's UART, reads wait until an answer can be complete.

    The client learns that the link takes the wire time, then the transport leaves the pieces
    of each answer in the OS buffer until then: far fewer wake-ups, the same answers.
    """
    paced = SimulatedBalancer(SimulatorConfig(cells=24, seed=5, pace_baud=9600))
    server = await serve_tcp(paced)
    transport = SerialTransport(server.url)
    client = DalyClient(transport, timeout=2)
    chunks: list[int] = []
    on_data = client.link._on_data

    def counting(data: bytes) -> None:
        chunks.append(len(data))
        on_data(data)

    transport.attach(counting, client.link._on_lost)
    held: list[float] = []
    hold = transport.hold_reads

    def spy(seconds: float) -> None:
        held.append(seconds)
        hold(seconds)

    transport.hold_reads = spy  # type: ignore[method-assign]
    try:
        first = (await client.poll()).status
        assert client.link._wire_paced
        assert 0 < len(held) < client.stats.requests  # the first read showed the pace
        chunks.clear()
        held.clear()
        second = (await client.poll()).status
        assert held[0] == pytest.approx((8 + 129) * 10 / 9600 - 0.005)  # the live block's wire time
        assert len(second.cell_voltages) == len(first.cell_voltages) == 24
        assert sum(chunks) == 129 + 23 + 15
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("timeout", [0.1, 0.03])
async def test_one_slow_answer_never_makes_a_fast_link_fail(socket_enabled: None, timeout: float) -> None:
    """A fast link whose first answers came late looks paced. Holding its reads must not cost
    answers (they once cost every answer under a timeout shorter than the wire time): a hold
    lasts at most half a timeout, so the answer is read in time; a reopened link (maybe another
    adapter) learns its pace anew."""
    sim = SimulatedBalancer(SimulatorConfig(cells=24, seed=5))
    server = await serve_tcp(sim)
    original = sim.receive
    late = True

    def slow_at_first(data: bytes) -> list[Reply]:
        return [Reply(r.chunks, 0.2 if late else r.delay) for r in original(data)]

    sim.receive = slow_at_first  # type: ignore[method-assign]
    client = DalyClient(SerialTransport(server.url), timeout=2)
    try:
        await client.poll()
        assert client.link._wire_paced  # answers took 0.2 s, longer than their wire time: a UART?
        late = False
        client.timeout = timeout  # shorter than the live block's wire time (0.143 s)
        status = (await client.poll()).status
        assert len(status.cell_voltages) == 24
        assert (client.stats.timeouts, client.stats.late_answers, client.stats.ambiguous) == (0, 0, 0)

        client.link._wire_paced = True  # looked paced, then the link is lost
        await client.transport.close()
        await client.poll()
        assert client.stats.timeouts == 0
        assert not client.link._wire_paced  # the new link's answers were timed unheld: fast
    finally:
        await client.close()
        await server.close()


async def test_held_reads_resume_and_stop_with_the_link(sim: SimulatedBalancer, tcp_url: str) -> None:
    transport = SerialTransport(tcp_url)
    transport.hold_reads(1)  # not open: nothing to hold
    received: list[bytes] = []
    transport.attach(received.append, lambda exc: None)
    await transport.open()
    transport.hold_reads(0)  # nothing to wait for
    assert transport._resume is None
    transport.hold_reads(0.05)
    await transport.write(bytes.fromhex("d2030000003ed7b9"))
    await asyncio.sleep(0.02)
    assert not received  # held
    for _ in range(100):
        if sum(map(len, received)) >= 129:
            break
        await asyncio.sleep(0.01)
    assert sum(map(len, received)) == 129
    received.clear()
    transport.hold_reads(5)
    await transport.write(bytes.fromhex("d2030000003ed7b9"))
    await asyncio.sleep(0.05)
    assert not received  # held
    transport.hold_reads(0)  # ends the hold: what came is read now
    assert transport._resume is None
    for _ in range(100):
        if sum(map(len, received)) >= 129:
            break
        await asyncio.sleep(0.01)
    assert sum(map(len, received)) == 129
    transport.hold_reads(5)
    await transport.close()  # closing cancels the hold
    assert transport._resume is None
    transport._resume_reading()  # a late timer on a closed link does nothing


async def test_a_link_that_cannot_pause_reads_as_it_comes(sim: SimulatedBalancer, tcp_url: str) -> None:
    transport = SerialTransport(tcp_url)
    await transport.open()
    inner = transport._transport
    assert isinstance(inner, asyncio.ReadTransport)

    def cannot() -> None:
        raise NotImplementedError

    inner.pause_reading = cannot  # type: ignore[method-assign]
    transport.hold_reads(1)
    assert transport._resume is None
    await transport.close()


def _drifting_and_late(sim: SimulatedBalancer, delays: list[float]) -> list[int]:
    """Every request finds cell 1 1 mV higher (drifting readings: every live answer differs),
    and the live answers come after ``delays`` in turn (then at once). Returns cell 1's
    values in the order the live answers were made."""
    original = sim.receive
    cell = BY_KEY["cell_voltages"].address
    made: list[int] = []

    def receive(data: bytes) -> list[Reply]:
        sim.write_word(cell, sim.read_word(cell) + 1)
        replies = original(data)
        live = [r for r in replies if len(r.data) == 5 + 2 * LIVE.count]
        if live:
            made.append(sim.read_word(cell))
        if live and delays:
            delay = delays.pop(0)
            return [Reply(r.chunks, delay) for r in replies]
        return replies

    sim.receive = receive  # type: ignore[method-assign]
    return made


async def test_a_late_answer_to_a_timed_out_request_is_never_taken_for_the_retry(socket_enabled: None) -> None:
    """The live block's first answer comes half a timeout after its request timed out (the
    soak's ``delay`` fault), the retry's answer a little later: the retry returns its own answer,
    never the late one, though both fit (same block, same size) and the readings drift."""
    sim = SimulatedBalancer(SimulatorConfig(cells=24, seed=5))
    sim.write_word(BY_KEY["cell_voltages"].address, 3300)
    made = _drifting_and_late(sim, [0.45, 0.09])
    server = await serve_tcp(sim)
    client = DalyClient(SerialTransport(server.url), timeout=0.3)
    try:
        status = (await client.poll()).status
        assert len(made) == 2  # the late answer and the retry's
        assert status.cell_voltages[0] == made[-1] / 1000, f"took {status.cell_voltages[0]}, answers {made}"
        assert client.stats.late_answers == 1
    finally:
        await client.close()
        await server.close()


async def test_an_answer_later_than_any_window_is_never_taken_for_the_next_request(socket_enabled: None) -> None:
    """A read times out and its answer comes much later (a stalled bridge or event loop), while
    the next read of the same block waits: in-order delivery, not a time window, tells them
    apart, so the next read returns its own answer (the long soak's one stale poll)."""
    sim = SimulatedBalancer(SimulatorConfig(cells=24, seed=5))
    sim.write_word(BY_KEY["cell_voltages"].address, 3300)
    made = _drifting_and_late(sim, [1.0, 1.0])
    server = await serve_tcp(sim)
    client = DalyClient(SerialTransport(server.url), timeout=0.2, retries=0)
    client.family = ProtocolFamily.D2
    try:
        with pytest.raises(DalyTimeoutError):
            await client._read_words(LIVE.start, LIVE.count)
        client.timeout = 2.0
        words = await client._read_words(LIVE.start, LIVE.count)
        assert len(made) == 2
        assert words[0] == made[-1], f"took {words[0]}, answers {made}"
    finally:
        await client.close()
        await server.close()
