"""The stand-in BLE client, driven through bleak-retry-connector's real ``establish_connection``."""

from __future__ import annotations

import asyncio
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import BleakNotFoundError, establish_connection
import pytest

from aiodalybalancer.frames import Direction, ReadRequest, ReadResponse, WriteSingle
from aiodalybalancer.registers import BY_KEY
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.tools.ble_standin import (
    AT_UUID,
    StandInBleClient,
    standin_client_class,
)
from aiodalybalancer.tools.simulator import (
    Fault,
    FaultPlan,
    SimulatedBalancer,
    SimulatorConfig,
)
from aiodalybalancer.transport_ble import NOTIFY_UUID, SERVICE_UUID, WRITE_UUID

LIVE_REQUEST = ReadRequest(0, 62).encode()  # 129-byte reply
BALANCER_REQUEST = ReadRequest(0xCC, 5).encode()  # 15-byte reply


def _device() -> BLEDevice:
    return BLEDevice("40:17:10:01:5C:9B", "DL-401710015C9B", {})


@pytest.fixture
def sim() -> SimulatedBalancer:
    return SimulatedBalancer(SimulatorConfig(cells=16, seed=3), clock=lambda: 0.0)


class Collector:
    """A notification callback that keeps every fragment."""

    def __init__(self) -> None:
        self.fragments: list[bytes] = []
        self.chars: list[BleakGATTCharacteristic] = []
        self._arrived = asyncio.Event()

    def __call__(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        assert isinstance(data, bytearray)
        self.chars.append(char)
        self.fragments.append(bytes(data))
        self._arrived.set()

    @property
    def data(self) -> bytes:
        return b"".join(self.fragments)

    async def wait_for(self, size: int, timeout: float = 5) -> bytes:
        async with asyncio.timeout(timeout):
            while len(self.data) < size:
                self._arrived.clear()
                await self._arrived.wait()
        return self.data


async def _connect(
    client_class: type[StandInBleClient], **kwargs: Any
) -> tuple[StandInBleClient, Collector, list[Any]]:
    lost: list[Any] = []
    client = await establish_connection(client_class, _device(), "DL-401710015C9B", lost.append, **kwargs)
    collector = Collector()
    await client.start_notify(NOTIFY_UUID, collector)
    return client, collector, lost


def _expected(sim: SimulatedBalancer, start: int, count: int) -> bytes:
    return ReadResponse(tuple(sim.words[start : start + count])).encode()


async def test_establish_connection_builds_and_connects_the_standin(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim)
    client, _, lost = await _connect(client_class)
    assert isinstance(client, client_class)
    assert client_class.instances == [client]
    assert client.is_connected
    assert client.address == "40:17:10:01:5C:9B"
    assert client.mtu_size == 23
    assert client_class.connects == client_class.connect_attempts == 1
    service = client.services.get_service(SERVICE_UUID)
    assert service is not None
    notify = client.services.get_characteristic(NOTIFY_UUID)
    write = client.services.get_characteristic(WRITE_UUID)
    assert notify is not None and "notify" in notify.properties
    assert write is not None and "write-without-response" in write.properties
    assert write.max_write_without_response_size == 20
    await client.disconnect()
    assert not client.is_connected
    assert client_class.disconnects == 1
    await asyncio.sleep(0)
    assert lost == [client]  # bleak calls the callback on a host-side disconnect too
    with pytest.raises(BleakError):
        _ = client.services


async def test_mtu_23_fragments_every_reply(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim, mtu=23)
    client, collector, _ = await _connect(client_class)
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST, response=False)
    data = await collector.wait_for(129)
    assert data == _expected(sim, 0, 62)
    assert [len(f) for f in collector.fragments] == [20] * 6 + [9]
    assert client_class.notifications == 7
    assert all(char.uuid == NOTIFY_UUID for char in collector.chars)
    # Without merging, two replies never share a notification.
    collector.fragments.clear()
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await collector.wait_for(30)
    assert [len(f) for f in collector.fragments] == [15, 15]
    assert client_class.writes == 3
    await client.disconnect()


async def test_mtu_512_with_merge_coalesces_frames(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim, mtu=512, merge=True)
    client, collector, _ = await _connect(client_class)
    assert client.mtu_size == 512
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    await collector.wait_for(129)
    assert collector.fragments == [_expected(sim, 0, 62)]  # the largest frame in one notification
    collector.fragments.clear()
    # Two requests outstanding: both answers arrive in one notification, as in the capture.
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await collector.wait_for(129 + 15)
    assert collector.fragments == [_expected(sim, 0, 62) + _expected(sim, 0xCC, 5)]
    frames = FrameStream(D2Framing(Direction.RESPONSE)).feed(collector.fragments[0])
    assert len(frames) == 2
    await client.disconnect()


async def test_mtu_512_without_merge_sends_one_frame_per_notification(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim, mtu=512)
    client, collector, _ = await _connect(client_class)
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await collector.wait_for(129 + 15)
    assert [len(f) for f in collector.fragments] == [129, 15]
    await client.disconnect()


async def test_write_and_echo(sim: SimulatedBalancer) -> None:
    client, collector, _ = await _connect(standin_client_class(sim))
    request = WriteSingle(BY_KEY["balancer_enabled"].address, 0).encode()
    await client.write_gatt_char(WRITE_UUID, request)
    assert await collector.wait_for(8) == request
    assert sim.value("balancer_enabled") is False
    await client.disconnect()


async def test_fail_connect_is_a_missing_device(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim)
    client_class.fail_connect = True
    with pytest.raises(BleakNotFoundError):
        await establish_connection(client_class, _device(), "DL", max_attempts=1)
    assert client_class.connect_attempts >= 1
    assert client_class.connects == 0
    client_class.fail_connect = False
    client, _, _ = await _connect(client_class)
    assert client_class.connects == 1
    await client.disconnect()


async def test_drop_link_mid_poll(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim, mtu=23)
    client, collector, lost = await _connect(client_class)
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    await collector.wait_for(1)
    client.drop_link()  # the device side goes away half-way through the reply
    assert lost == [client]
    assert not client.is_connected
    assert client_class.drops == 1
    assert client_class.disconnects == 0
    received = len(collector.data)
    await asyncio.sleep(0.1)
    assert len(collector.data) == received < 129  # nothing arrives after the link is gone
    with pytest.raises(BleakError):
        await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    # establish_connection connects the same way again.
    client, collector, _ = await _connect(client_class)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    assert await collector.wait_for(15) == _expected(sim, 0xCC, 5)
    assert client_class.drop_links() == 1
    assert client_class.connects == 2


async def test_gatt_misuse_is_refused(sim: SimulatedBalancer) -> None:
    client_class = standin_client_class(sim)
    client = client_class(_device())
    with pytest.raises(BleakError):
        _ = client.services  # no discovery before connect
    with pytest.raises(BleakError):
        await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    await client.connect()
    with pytest.raises(BleakError):
        await client.write_gatt_char("0000ffff-0000-1000-8000-00805f9b34fb", LIVE_REQUEST)
    with pytest.raises(BleakError):
        await client.write_gatt_char(NOTIFY_UUID, LIVE_REQUEST)
    with pytest.raises(BleakError):
        await client.start_notify(WRITE_UUID, Collector())
    with pytest.raises(BleakError):  # 21 bytes do not fit a write without response at MTU 23
        await client.write_gatt_char(WRITE_UUID, bytes(21), response=False)
    assert client_class.writes == 0
    with pytest.raises(TypeError):
        StandInBleClient(_device())  # unbound: no simulator behind it
    with pytest.raises(ValueError):
        standin_client_class(sim, mtu=20)


async def test_characteristic_objects_and_the_at_channel(sim: SimulatedBalancer) -> None:
    client, collector, _ = await _connect(standin_client_class(sim, mtu=512))
    write = client.services.get_characteristic(WRITE_UUID)
    assert write is not None
    await client.write_gatt_char(write, BALANCER_REQUEST)
    await collector.wait_for(15)
    collector.fragments.clear()
    # The dongle's AT replies share the notify characteristic (ref §2.1).
    await client.write_gatt_char(AT_UUID, b"AT+BAND=?\r\n")
    assert await collector.wait_for(4) == b"9600"
    assert type(client).writes == 1  # AT commands never reach the module
    await client.stop_notify(NOTIFY_UUID)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await asyncio.sleep(0.05)
    assert collector.data == b"9600"  # unsubscribed: nothing more
    await client.disconnect()


async def test_async_callback(sim: SimulatedBalancer) -> None:
    client = await establish_connection(standin_client_class(sim), _device(), "DL")
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def callback(_char: BleakGATTCharacteristic, data: bytearray) -> None:
        await got.put(bytes(data))

    await client.start_notify(NOTIFY_UUID, callback)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    parts = [await asyncio.wait_for(got.get(), 5)]
    assert parts == [_expected(sim, 0xCC, 5)]
    await client.disconnect()


async def test_simulator_faults_and_delays_pass_through(sim: SimulatedBalancer) -> None:
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.SPLIT,), seed=1)
    client, collector, _ = await _connect(standin_client_class(sim, mtu=512))
    await client.write_gatt_char(WRITE_UUID, LIVE_REQUEST)
    assert await collector.wait_for(129) == _expected(sim, 0, 62)
    assert len(collector.fragments) >= 2  # each chunk of the split reply is its own notification
    collector.fragments.clear()
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.DELAY,), delay=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await collector.wait_for(15)
    assert loop.time() - started >= 0.2 * 0.9
    await client.disconnect()


async def test_each_bound_class_counts_on_its_own(sim: SimulatedBalancer) -> None:
    one, two = standin_client_class(sim), standin_client_class(sim)
    client, collector, _ = await _connect(one)
    await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
    await collector.wait_for(15)
    assert (one.connects, one.writes) == (1, 1)
    assert (two.connects, two.writes, two.instances) == (0, 0, [])
    assert StandInBleClient.instances == []
    await client.disconnect()


async def test_the_rest_of_the_bleak_client_surface(sim: SimulatedBalancer) -> None:
    """What bleak-retry-connector and HA's bluetooth helpers may touch behaves like bleak's."""
    client_class = standin_client_class(sim, mtu=185)
    by_address = client_class("40:17:10:01:5C:9B")
    assert (by_address.address, by_address.name) == ("40:17:10:01:5C:9B", "40:17:10:01:5C:9B")
    client = client_class(_device())
    assert client.name == "DL-401710015C9B"
    assert client.backend_id == "standin"
    assert client.mtu_size == 185
    assert "40:17:10:01:5C:9B" in repr(client)
    await client.disconnect()  # not connected: nothing happens, nothing is counted
    assert client_class.disconnects == 0
    async with client as entered:
        assert entered is client and client.is_connected
        await client.connect()  # connecting a connected client is a no-op
        assert client_class.connects == 1
        assert await client.clear_cache() is True
        await client.pair()
        await client.unpair()
        assert await client.read_gatt_char(NOTIFY_UUID) == bytearray()
        with pytest.raises(BleakError):
            await client.read_gatt_descriptor(0)
        with pytest.raises(BleakError):
            await client.write_gatt_descriptor(0, b"\x01\x00")
        with pytest.raises(BleakError, match="was not found"):
            await client.read_gatt_char("0000ffff-0000-1000-8000-00805f9b34fb")
        # A reply the host never subscribed to goes nowhere (the dongle notifies regardless).
        await client.write_gatt_char(WRITE_UUID, BALANCER_REQUEST)
        await asyncio.sleep(0.05)
        assert client_class.notifications == 0
    assert not client.is_connected
    assert client_class.disconnects == 1
