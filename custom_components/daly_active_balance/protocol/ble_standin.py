"""A stand-in for ``bleak.BleakClient`` that talks to a simulated module (tests, benchmarks).

Writes to ``fff2`` go to the simulator; its replies come back as notifications on ``fff1``,
fragmented to ``mtu - 3`` bytes per notification, and with ``merge=True`` consecutive frames are
coalesced into one notification, as the real capture shows. It can be used as ``client_class``
for ``bleak_retry_connector.establish_connection``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from bleak.exc import BleakError

from .simulator import SimulatedBalancer
from .transport_ble import NOTIFY_UUID, WRITE_UUID

NotifyCallback = Callable[[Any, bytearray], None]


class StandInBleClient:
    """Mimics the parts of ``BleakClient`` a transport uses."""

    sim: ClassVar[SimulatedBalancer]
    mtu: ClassVar[int] = 23
    merge: ClassVar[bool] = False
    #: Class-level counters and fault switches (per bound subclass).
    connects: ClassVar[int] = 0
    disconnects: ClassVar[int] = 0
    writes: ClassVar[int] = 0
    fail_connect: ClassVar[bool] = False
    instances: ClassVar[list[StandInBleClient]]

    def __init__(
        self,
        address_or_ble_device: Any,
        disconnected_callback: Callable[[Any], None] | None = None,
        services: Any = None,
        *,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        """Same signature as ``BleakClient``; nothing connects yet."""
        self.address: str = getattr(address_or_ble_device, "address", str(address_or_ble_device))
        self._disconnected_callback = disconnected_callback
        self._connected = False
        self._notify: NotifyCallback | None = None
        self._handles: set[asyncio.Handle] = set()
        type(self).instances.append(self)

    @property
    def is_connected(self) -> bool:
        """True between connect and disconnect."""
        return self._connected

    @property
    def mtu_size(self) -> int:
        """The negotiated MTU."""
        return type(self).mtu

    async def connect(self, **kwargs: Any) -> bool:
        """Connect, or fail like a device that is gone."""
        cls = type(self)
        if cls.fail_connect:
            raise BleakError(f"Device with address {self.address} was not found")
        self._connected = True
        cls.connects += 1
        return True

    async def start_notify(self, char: Any, callback: NotifyCallback, **kwargs: Any) -> None:
        """Subscribe to ``fff1``."""
        if str(char) != NOTIFY_UUID:
            raise BleakError(f"characteristic {char} does not notify")
        self._notify = callback

    async def stop_notify(self, char: Any) -> None:
        """Unsubscribe."""
        self._notify = None

    async def write_gatt_char(self, char: Any, data: bytes | bytearray, response: bool = False) -> None:
        """Hand the bytes to the simulator and schedule its replies as notifications."""
        if not self._connected:
            raise BleakError("Not connected")
        if str(char) != WRITE_UUID:
            raise BleakError(f"characteristic {char} is not writable")
        cls = type(self)
        cls.writes += 1
        loop = asyncio.get_running_loop()
        replies = cls.sim.receive(bytes(data))
        size = max(1, cls.mtu - 3)
        if cls.merge and replies:
            payload = b"".join(r.data for r in replies)
            self._schedule(loop, max(r.delay for r in replies), payload, size)
            return
        for reply in replies:
            self._schedule(loop, reply.delay, reply.data, size)

    def _schedule(self, loop: asyncio.AbstractEventLoop, delay: float, payload: bytes, size: int) -> None:
        for index, offset in enumerate(range(0, len(payload), size)):
            handle = loop.call_later(delay + index * 0.0075, self._deliver, payload[offset : offset + size])
            self._handles.add(handle)

    def _deliver(self, fragment: bytes) -> None:
        if self._connected and self._notify is not None:
            self._notify(NOTIFY_UUID, bytearray(fragment))

    def _cancel(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    async def disconnect(self) -> bool:
        """Disconnect from the host side."""
        if self._connected:
            type(self).disconnects += 1
        self._connected = False
        self._cancel()
        return True

    async def clear_cache(self) -> bool:
        """Nothing is cached."""
        return True

    def drop_link(self) -> None:
        """The device side drops the link (out of range, power loss)."""
        if not self._connected:
            return
        self._connected = False
        self._cancel()
        if self._disconnected_callback is not None:
            self._disconnected_callback(self)


def standin_client_class(sim: SimulatedBalancer, *, mtu: int = 23, merge: bool = False) -> type[StandInBleClient]:
    """A stand-in client class bound to ``sim``, with its own counters."""
    attributes: dict[str, Any] = {
        "sim": sim,
        "mtu": mtu,
        "merge": merge,
        "connects": 0,
        "disconnects": 0,
        "writes": 0,
        "fail_connect": False,
        "instances": [],
    }
    return type("BoundStandInBleClient", (StandInBleClient,), attributes)
