"""A stand-in for ``bleak.BleakClient`` that talks to a simulated module (tests, benchmarks).

No Bluetooth is involved. Writes to ``fff2`` go to a :class:`~.simulator.SimulatedBalancer`; its
replies come back as notifications on ``fff1`` the way the HLK-B40 dongle forwards UART bytes:

* at most ``mtu - 3`` bytes per notification, one notification per ``notification_interval``;
* ``merge=False``: a notification never mixes two replies; ``merge=True``: whatever bytes are
  ready go out together, so consecutive reply frames share a notification (as in the capture,
  where one notification carried three frames);
* reply delays and the simulator's split chunks are honoured; bytes never interleave.

The constructor and ``connect`` take what ``bleak_retry_connector.establish_connection`` (4.7.x)
passes: ``client_class(device, disconnected_callback=..., pair=..., _is_retry_client=True, **kw)``
once, then ``await client.connect(timeout=..., dangerous_use_bleak_cache=...)`` per attempt.
:func:`standin_client_class` binds a subclass to one simulator, with its own counters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
import inspect
from types import TracebackType
from typing import Any, ClassVar, Final, Self
import uuid

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak_retry_connector import BleakClientWithServiceCache

from aiodalybalancer.transport_ble import NOTIFY_UUID, SERVICE_UUID, WRITE_UUID

from .simulator import SimulatedBalancer

#: The dongle's AT-command characteristic (its replies come back on ``fff1``, ref §2.1).
AT_UUID: Final = "0000fff3-0000-1000-8000-00805f9b34fb"
#: Value handles of the captured GATT database (ref §2.1): fff1 0x0010, fff2 0x0014, fff3 0x0018.
_SERVICE_HANDLE: Final = 0x000E
_CHARACTERISTICS: Final[tuple[tuple[str, int, list[CharacteristicPropertyName]], ...]] = (
    (NOTIFY_UUID, 0x0010, ["read", "notify"]),
    (WRITE_UUID, 0x0014, ["read", "write", "write-without-response"]),
    (AT_UUID, 0x0018, ["read", "write", "write-without-response"]),
)
#: What the HLK-B40 answers on ``fff1`` to AT commands written to ``fff3`` (captured, ref §2.1).
_AT_REPLIES: Final = {b"AT+BAND=?": b"9600", b"AT+PRODUCTINFO=?": b"AT+PRODUCTINFO=NoPID"}

#: How many clients a bound class remembers in ``instances``.
_KEEP_INSTANCES: Final = 100

NotifyCallback = Callable[[BleakGATTCharacteristic, bytearray], Awaitable[None] | None]
CharSpecifier = BleakGATTCharacteristic | int | str | uuid.UUID


def _gatt_services(mtu: int) -> BleakGATTServiceCollection:
    """The fff0 service with fff1 (notify), fff2 (write) and fff3 (AT commands)."""
    collection = BleakGATTServiceCollection()
    service = BleakGATTService(None, _SERVICE_HANDLE, SERVICE_UUID)
    collection.add_service(service)
    for char_uuid, handle, properties in _CHARACTERISTICS:
        collection.add_characteristic(
            BleakGATTCharacteristic(None, handle, char_uuid, list(properties), lambda: mtu - 3, service)
        )
    return collection


class StandInBleClient(BleakClientWithServiceCache):
    """A ``BleakClient`` (with service cache, the HA default) whose far end is a simulator.

    It is a real subclass so it type-checks wherever a ``type[BleakClient]`` is taken, but it
    never builds a platform backend: every method a backend would serve is overridden here.
    """

    sim: ClassVar[SimulatedBalancer]
    #: Negotiated ATT MTU: notifications carry at most ``mtu - 3`` bytes.
    mtu: ClassVar[int] = 23
    #: Coalesce ready reply frames into one notification.
    merge: ClassVar[bool] = False
    #: Time between two notifications (the dongle asks for a 15 ms connection interval; BLE can
    #: carry more than one notification per interval).
    notification_interval: ClassVar[float] = 0.0075
    #: Counters (each bound subclass has its own).
    connect_attempts: ClassVar[int] = 0
    connects: ClassVar[int] = 0
    disconnects: ClassVar[int] = 0
    drops: ClassVar[int] = 0
    writes: ClassVar[int] = 0
    notifications: ClassVar[int] = 0
    #: Fault hook: ``connect`` raises ``BleakError`` (the device is gone / out of range).
    fail_connect: ClassVar[bool] = False
    #: The clients built from the class, newest last (the last ``_KEEP_INSTANCES``).
    instances: ClassVar[list[StandInBleClient]] = []

    def __init__(  # BleakClient.__init__ is not called: it would build a platform backend
        self,
        address_or_ble_device: BLEDevice | str,
        disconnected_callback: Callable[[Any], None] | None = None,
        services: Iterable[str] | None = None,
        *,
        timeout: float = 30.0,
        pair: bool = False,
        **kwargs: Any,
    ) -> None:
        """Same signature as ``BleakClient``; nothing connects yet."""
        if not hasattr(type(self), "sim"):
            raise TypeError("use standin_client_class(sim) to bind the stand-in to a simulator")
        if isinstance(address_or_ble_device, BLEDevice):
            self._address = address_or_ble_device.address
            self._name = address_or_ble_device.name or self._address
        else:
            self._address = self._name = str(address_or_ble_device)
        self._disconnected_callback = disconnected_callback
        self._connected = False
        self._services: BleakGATTServiceCollection | None = None
        self._notify: NotifyCallback | None = None
        self._outbox: list[tuple[float, bytes]] = []  # (ready at, segment) in wire order
        self._timer: asyncio.TimerHandle | None = None
        self._next_slot = 0.0
        self._tasks: set[asyncio.Future[None]] = set()
        instances = type(self).instances
        instances.append(self)
        del instances[:-_KEEP_INSTANCES]  # a long benchmark in release mode builds one per poll

    # --- connection -------------------------------------------------------------------------

    @property
    def backend_id(self) -> str:
        """No platform backend."""
        return "standin"

    @property
    def name(self) -> str:
        """The advertised name (or the address)."""
        return self._name

    @property
    def address(self) -> str:
        """The device's Bluetooth address."""
        return self._address

    def __repr__(self) -> str:
        return f"<{type(self).__name__}, {self._address}, simulator>"

    @property
    def is_connected(self) -> bool:
        """True between connect and disconnect (or a dropped link)."""
        return self._connected

    @property
    def mtu_size(self) -> int:
        """The negotiated MTU."""
        return type(self).mtu

    @property
    def services(self) -> BleakGATTServiceCollection:
        """The GATT database; like bleak, only after a connect has discovered it."""
        if self._services is None:
            raise BleakError("Service Discovery has not been performed yet")
        return self._services

    async def connect(self, **kwargs: Any) -> None:
        """Connect, or fail like a device that is gone."""
        cls = type(self)
        cls.connect_attempts += 1
        await asyncio.sleep(0)
        if cls.fail_connect:
            raise BleakError(f"Device with address {self.address} was not found")
        if self._connected:
            return
        self._connected = True
        self._services = _gatt_services(cls.mtu)
        cls.connects += 1

    async def disconnect(self) -> None:
        """Disconnect from the host side (bleak calls the disconnected callback then too)."""
        if not self._connected:
            return
        type(self).disconnects += 1
        self._lose_link()
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback, self)

    def drop_link(self) -> None:
        """The device side drops the link (out of range, power loss), as a lost link mid-poll."""
        if not self._connected:
            return
        type(self).drops += 1
        self._lose_link()
        if self._disconnected_callback is not None:
            self._disconnected_callback(self)

    @classmethod
    def drop_links(cls) -> int:
        """Drop every connected client of this class; returns how many were connected."""
        connected = [client for client in cls.instances if client.is_connected]
        for client in connected:
            client.drop_link()
        return len(connected)

    def _lose_link(self) -> None:
        self._connected = False
        self._services = None
        self._notify = None
        self._outbox.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def clear_cache(self) -> bool:
        """Nothing is cached (``BleakClientWithServiceCache`` API)."""
        return True

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """The dongle uses no pairing (ref §2.1): nothing to do."""

    async def unpair(self) -> None:
        """Nothing was paired."""

    async def __aenter__(self) -> Self:
        """Connect on entering ``async with``."""
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Disconnect on leaving ``async with``."""
        await self.disconnect()

    # --- GATT -------------------------------------------------------------------------------

    def _characteristic(self, specifier: CharSpecifier) -> BleakGATTCharacteristic:
        if not self._connected:
            raise BleakError("Not connected")
        if isinstance(specifier, BleakGATTCharacteristic):
            specifier = specifier.uuid
        found = self.services.get_characteristic(specifier)
        if found is None:
            raise BleakError(f"Characteristic {specifier} was not found!")
        return found

    async def read_gatt_char(
        self, char_specifier: CharSpecifier, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Reading is not how the dongle talks: an empty value, like its idle characteristics."""
        self._characteristic(char_specifier)
        return bytearray()

    async def read_gatt_descriptor(
        self, desc_specifier: BleakGATTDescriptor | int, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        """Descriptors are not modelled."""
        raise BleakError("the stand-in has no descriptors")

    async def write_gatt_descriptor(self, desc_specifier: BleakGATTDescriptor | int, data: SizedBuffer) -> None:
        """Descriptors are not modelled (``start_notify`` stands for the CCCD write)."""
        raise BleakError("the stand-in has no descriptors")

    async def start_notify(self, char_specifier: CharSpecifier, callback: NotifyCallback, **kwargs: Any) -> None:
        """Subscribe to ``fff1`` (the only characteristic that notifies)."""
        char = self._characteristic(char_specifier)
        if "notify" not in char.properties:
            raise BleakError(f"characteristic {char.uuid} does not notify")
        self._notify = callback

    async def stop_notify(self, char_specifier: CharSpecifier) -> None:
        """Unsubscribe."""
        self._characteristic(char_specifier)
        self._notify = None

    async def write_gatt_char(
        self, char_specifier: CharSpecifier, data: SizedBuffer, response: bool | None = None
    ) -> None:
        """Hand the bytes to the simulator (fff2) or the dongle (fff3); replies notify on fff1."""
        char = self._characteristic(char_specifier)
        cls = type(self)
        payload = bytes(data)
        if not response and len(payload) > cls.mtu - 3:
            raise BleakError(f"{len(payload)} bytes exceed a write without response at MTU {cls.mtu}")
        if char.uuid == AT_UUID:
            answer = _AT_REPLIES.get(payload.strip())
            if answer is not None:
                self._enqueue(0.0, (answer,))
            return
        if char.uuid != WRITE_UUID:
            raise BleakError(f"characteristic {char.uuid} is not writable here")
        cls.writes += 1
        for reply in cls.sim.receive(payload):
            self._enqueue(reply.delay, reply.chunks)
        await asyncio.sleep(0)

    # --- notifications ----------------------------------------------------------------------

    def _enqueue(self, delay: float, chunks: tuple[bytes, ...]) -> None:
        """Queue a reply's chunks: the dongle forwards each once it is ready, in order."""
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        for index, chunk in enumerate(chunks):
            self._outbox.append((ready + index * 0.02, chunk))
        self._schedule(loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None or not self._outbox:
            return
        when = max(self._outbox[0][0], self._next_slot)
        self._timer = loop.call_at(when, self._pump)

    def _pump(self) -> None:
        """Send one notification: the bytes ready now, at most ``mtu - 3`` of them."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        cls = type(self)
        room = max(1, cls.mtu - 3)
        fragment = bytearray()
        while self._outbox and self._outbox[0][0] <= now and len(fragment) < room:
            ready, segment = self._outbox[0]
            take = segment[: room - len(fragment)]
            fragment += take
            if len(take) < len(segment):
                self._outbox[0] = (ready, segment[len(take) :])
                break
            self._outbox.pop(0)
            if not cls.merge:
                break  # a notification never mixes two replies
        if fragment:
            self._next_slot = now + cls.notification_interval
            self._notify_host(bytearray(fragment))
        self._schedule(loop)

    def _notify_host(self, fragment: bytearray) -> None:
        callback = self._notify
        if not self._connected or callback is None:
            return  # nobody subscribed: the dongle's notification goes nowhere
        type(self).notifications += 1
        char = self.services.get_characteristic(NOTIFY_UUID)
        assert char is not None
        result = callback(char, fragment)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def standin_client_class(sim: SimulatedBalancer, *, mtu: int = 23, merge: bool = False) -> type[StandInBleClient]:
    """A stand-in client class bound to ``sim``, with its own counters and fault switches."""
    if mtu < 23:
        raise ValueError(f"the ATT MTU is at least 23, got {mtu}")
    attributes: dict[str, Any] = {
        "sim": sim,
        "mtu": mtu,
        "merge": merge,
        "connect_attempts": 0,
        "connects": 0,
        "disconnects": 0,
        "drops": 0,
        "writes": 0,
        "notifications": 0,
        "fail_connect": False,
        "instances": [],
    }
    return type("BoundStandInBleClient", (StandInBleClient,), attributes)
