"""The link a config entry describes: its address or port, and the transport that opens it.

The config flow probes through the same transport setup uses, without the coordinator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components import bluetooth
from homeassistant.const import CONF_ADDRESS, CONF_PORT
from homeassistant.core import HomeAssistant

from aiodalybalancer.transport import SerialTransport, Transport
from aiodalybalancer.transport_ble import BleTransport

from .const import CONF_CONNECTION, CONNECTION_BLE


def entry_link(data: Mapping[str, Any]) -> str:
    """The Bluetooth address or the serial port / URL a config entry's data connects to."""
    return str(data[CONF_ADDRESS] if data.get(CONF_CONNECTION) == CONNECTION_BLE else data[CONF_PORT])


def create_transport(hass: HomeAssistant, data: Mapping[str, Any], *, keep_connected: bool = True) -> Transport:
    """The transport a config entry's data describes."""
    link = entry_link(data)
    if data.get(CONF_CONNECTION) == CONNECTION_BLE:
        return BleTransport(
            lambda: bluetooth.async_ble_device_from_address(hass, link, connectable=True),
            keep_connected=keep_connected,
        )
    return SerialTransport(link)
