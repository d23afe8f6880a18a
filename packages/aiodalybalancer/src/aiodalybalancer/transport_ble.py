"""BLE transport: the DALY dongle (HiLink HLK-B40) is a transparent BLE↔UART byte pipe.

GATT (reference §2.1, from the capture): service ``fff0``; ``fff1`` notifies everything the
module sends (D2 frames and the dongle's ASCII AT replies); ``fff2`` takes host frames as
write-without-response. Notification boundaries are not frame boundaries: the client's stream
re-assembler puts frames back together.

The dongle accepts one central at a time, so while Home Assistant holds the link the phone app
cannot connect. ``keep_connected=False`` releases the link after every poll.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any, Final, override

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

from .errors import DalyConnectionError
from .transport import Transport

_LOGGER = logging.getLogger(__name__)

SERVICE_UUID: Final = "0000fff0-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID: Final = "0000fff1-0000-1000-8000-00805f9b34fb"
WRITE_UUID: Final = "0000fff2-0000-1000-8000-00805f9b34fb"

DeviceSource = Callable[[], BLEDevice | None]


class BleTransport(Transport):
    """A link to the module's BLE dongle through bleak and bleak-retry-connector."""

    def __init__(
        self,
        device: BLEDevice | DeviceSource,
        *,
        keep_connected: bool = True,
        client_class: type[BleakClient] = BleakClientWithServiceCache,
    ) -> None:
        """``device`` is a BLEDevice or a callable returning the freshest one (HA's lookup)."""
        super().__init__()
        self._source: DeviceSource = device if callable(device) else (lambda: device)
        first = self._source()
        self._address = first.address if first is not None else "unknown"
        self.keep_connected = keep_connected
        self._client_class = client_class
        self._client: BleakClient | None = None
        #: Connections made since creation (for diagnostics and the benchmark).
        self.connects = 0

    @property
    @override
    def description(self) -> str:
        return self._address

    @property
    @override
    def is_open(self) -> bool:
        return self._client is not None and self._client.is_connected

    @override
    async def open(self) -> None:
        if self.is_open:
            return
        device = self._source()
        if device is None:
            raise DalyConnectionError(f"{self._address} is not in range of any Bluetooth adapter or proxy")
        self._address = device.address
        try:
            client = await establish_connection(
                self._client_class,
                device,
                device.name or device.address,
                disconnected_callback=self._disconnected,
                ble_device_callback=lambda: self._source() or device,
            )
            await client.start_notify(NOTIFY_UUID, self._notification)
        except (BleakError, TimeoutError, OSError) as err:
            raise DalyConnectionError(f"cannot connect to {device.address}: {err}") from err
        self._client = client
        self.connects += 1
        _LOGGER.debug("connected to %s", device.address)

    def _notification(self, _char: BleakGATTCharacteristic | int | str, data: bytearray) -> None:
        self._received(bytes(data))

    def _disconnected(self, client: Any) -> None:
        if client is not self._client:
            return
        self._client = None
        _LOGGER.debug("%s disconnected", self._address)
        self._lost(None)

    @override
    async def write(self, data: bytes) -> None:
        client = self._client
        if client is None or not client.is_connected:
            raise DalyConnectionError(f"{self._address} is not connected")
        try:
            await client.write_gatt_char(WRITE_UUID, data, response=False)
        except (BleakError, TimeoutError, OSError) as err:
            raise DalyConnectionError(f"write to {self._address} failed: {err}") from err

    @override
    async def release(self) -> None:
        if not self.keep_connected:
            await self.close()

    @override
    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.stop_notify(NOTIFY_UUID)
        except (BleakError, TimeoutError, OSError) as err:
            _LOGGER.debug("stop_notify on %s failed: %s", self._address, err)
        try:
            await client.disconnect()
        except (BleakError, TimeoutError, OSError) as err:
            _LOGGER.debug("disconnect from %s failed: %s", self._address, err)
