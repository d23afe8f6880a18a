"""Link benchmarks: a poll cycle over a real pty at 9600 baud, and BLE writes and connections.

Serial: the simulator runs in a child process on a real pseudo-terminal, paced at 9600 baud
(``SimulatorConfig.pace_baud``): it takes a request to arrive one wire time after it was
written, and hands over each 8-byte piece of its reply when that piece's last byte would have
crossed the line. The client is the real one: ``DalyClient`` over ``SerialTransport`` (serialx),
which, once a read has shown the link takes its wire time, leaves each reply in the OS buffer
until it can be complete (``Transport.hold_reads``): that must not make a cycle any longer.
A raw reference client (no frame logic: write the request, count reply bytes) over the same kind
of link measures the floor the simulator, the pty and the event loop impose by themselves.

BLE: the stand-in BleakClient (``ble_standin.py``) counts ``connect`` and ``write_gatt_char``
calls while the real ``BleTransport`` and ``DalyClient`` poll through it.
"""

from __future__ import annotations

import asyncio
import os
import termios
import time
import tty
from typing import Any, Final

from bleak.backends.device import BLEDevice

from aiodalybalancer.client import DalyClient
from aiodalybalancer.frames import ReadRequest, ReadResponse
from aiodalybalancer.registers import Block
from aiodalybalancer.tools.ble_standin import standin_client_class
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig
from aiodalybalancer.transport import BAUDRATE, SerialTransport
from aiodalybalancer.transport_ble import BleTransport

from .common import POLL_BLOCKS, POLL_SETTINGS_BLOCKS, SimProcess, log, median, wire_ms

SERIAL_CYCLES: Final = 50
SETTINGS_CYCLES: Final = 20
FLOOR_CYCLES: Final = 30
BLE_POLLS: Final = 100
_DEVICE: Final = BLEDevice("40:17:10:01:5C:9B", "DL-401710015C9B", {})


async def _timed_polls(client: DalyClient, count: int, *, settings: bool) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        await client.poll(settings=settings)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def serial_cycles(path: str) -> dict[str, Any]:
    """Poll cycles through the real client and transport, with and without the settings."""
    client = DalyClient(SerialTransport(path))
    try:
        await client.poll(settings=True)  # opens the port, learns the family (one more read)
        requests_before = client.stats.requests
        cycles = await _timed_polls(client, SERIAL_CYCLES, settings=False)
        requests = client.stats.requests - requests_before
        with_settings = await _timed_polls(client, SETTINGS_CYCLES, settings=True)
        if client.stats.retries or client.stats.timeouts:
            raise RuntimeError(f"the serial benchmark saw retries or timeouts: {client.stats}")
    finally:
        await client.close()
    return {
        "cycles_ms": cycles,
        "settings_cycles_ms": with_settings,
        "requests_per_cycle": requests / SERIAL_CYCLES,
    }


async def _raw_exchange(fd: int, request: bytes, reply_length: int, loop: asyncio.AbstractEventLoop) -> None:
    done: asyncio.Future[None] = loop.create_future()
    received = 0

    def readable() -> None:
        nonlocal received
        received += len(os.read(fd, 4096))
        if received >= reply_length and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        os.write(fd, request)
        await asyncio.wait_for(done, 2)
    finally:
        loop.remove_reader(fd)


async def raw_floor(path: str, blocks: tuple[Block, ...]) -> list[float]:
    """Cycle times of a client with no frame logic at all (the simulator's and pty's floor)."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
        exchanges = [
            (ReadRequest(b.start, b.count).encode(), len(ReadResponse((0,) * b.count).encode())) for b in blocks
        ]
        times: list[float] = []
        for _ in range(FLOOR_CYCLES + 1):
            start = time.perf_counter()
            for request, reply_length in exchanges:
                await _raw_exchange(fd, request, reply_length, loop)
            times.append((time.perf_counter() - start) * 1000)
        return times[1:]
    finally:
        os.close(fd)


async def ble_counts() -> dict[str, float]:
    """Writes and connections per poll through the stand-in BLE client, after a first poll."""
    results: dict[str, float] = {}
    for keep in (True, False):
        sim = SimulatedBalancer(SimulatorConfig(cells=24, seed=3))
        client_class = standin_client_class(sim)
        transport = BleTransport(_DEVICE, keep_connected=keep, client_class=client_class)
        client = DalyClient(transport)
        try:
            await client.poll()  # first poll: connects and learns the family
            connects, writes = client_class.connects, client_class.writes
            for _ in range(BLE_POLLS):
                await client.poll()
            connects_per_poll = (client_class.connects - connects) / BLE_POLLS
            writes_per_poll = (client_class.writes - writes) / BLE_POLLS
        finally:
            await client.close()
        if keep:
            results["ble_writes_per_poll"] = writes_per_poll
            results["ble_connects_per_poll_keep"] = connects_per_poll
        else:
            results["ble_connects_per_poll_release"] = connects_per_poll
            results["ble_writes_per_poll_release"] = writes_per_poll
    return results


async def _serial_all(ours_path: str, floor_path: str) -> dict[str, Any]:
    serial = await serial_cycles(ours_path)
    floor = await raw_floor(floor_path, POLL_BLOCKS)
    return {**serial, "floor_ms": floor}


def run() -> dict[str, Any]:
    """Serial cycles against a paced pty simulator in a child process, then the BLE counts."""
    log(f"serial: {SERIAL_CYCLES} + {SETTINGS_CYCLES} poll cycles over a pty at {BAUDRATE} baud")
    with SimProcess([f"pty:16:{BAUDRATE}", f"pty:16:{BAUDRATE}"]) as sims:
        serial = asyncio.run(_serial_all(sims.urls[0], sims.urls[1]))
    log(f"ble: {BLE_POLLS} polls keep-connected and {BLE_POLLS} in release mode")
    ble = asyncio.run(ble_counts())
    cycle = median(serial["cycles_ms"])
    wire = wire_ms(POLL_BLOCKS)
    settings_wire = wire_ms(POLL_SETTINGS_BLOCKS)
    return {
        "serial_cycle_ms": cycle,
        "serial_wire_ms": wire,
        "serial_cycle_ratio": cycle / wire,
        "serial_cycle_p90_ms": sorted(serial["cycles_ms"])[int(0.9 * len(serial["cycles_ms"]))],
        "serial_floor_ms": median(serial["floor_ms"]),
        "serial_requests_per_cycle": serial["requests_per_cycle"],
        "serial_settings_cycle_ms": median(serial["settings_cycles_ms"]),
        "serial_settings_wire_ms": settings_wire,
        **ble,
    }
