"""Bluetooth helpers for the Home Assistant tests: real advertisements and the stand-in dongle.

Advertisements go in through Home Assistant's own advertisement callback (the entry point every
scanner, local adapter or ESPHome proxy, feeds), so the bluetooth integration matches them
against the manifest's matchers, starts discovery flows and answers
``async_ble_device_from_address`` exactly as it does for a real dongle.

Connections go through the real ``create_transport`` → ``BleTransport`` →
``bleak_retry_connector.establish_connection`` path; only the BleakClient class at its end is
the simulator-backed stand-in (``aiodalybalancer.tools.ble_standin``).
"""

from __future__ import annotations

import time

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from homeassistant.components.bluetooth import BluetoothServiceInfoBleak, async_get_advertisement_callback
from homeassistant.core import HomeAssistant
import pytest

from aiodalybalancer.tools.ble_standin import StandInBleClient, standin_client_class
from aiodalybalancer.tools.simulator import SimulatedBalancer
from aiodalybalancer.transport_ble import BleTransport

#: The captured dongle (reference §2.1): it advertises as ``DL-<12 hex MAC>``.
DALY_ADDRESS = "40:17:10:01:5C:9B"
DALY_NAME = "DL-401710015C9B"
#: Manufacturer data of a DALY dongle (reference §2.1, [INF] reading of aiobmsble's test data):
#: id 0x0302, payload = 1 byte + the 6-byte MAC + ASCII ``DL``.
DALY_MANUFACTURER_ID = 0x0302
DALY_MANUFACTURER_PAYLOAD = bytes.fromhex("16401710015c9b444c")
#: Where injected advertisements come from (Home Assistant's name for the local adapter).
SOURCE = "local"


def service_info(
    address: str = DALY_ADDRESS,
    name: str = DALY_NAME,
    manufacturer_data: dict[int, bytes] | None = None,
    *,
    connectable: bool = True,
    rssi: int = -60,
) -> BluetoothServiceInfoBleak:
    """One advertisement as a scanner reports it."""
    manufacturer = {DALY_MANUFACTURER_ID: DALY_MANUFACTURER_PAYLOAD} if manufacturer_data is None else manufacturer_data
    advertisement = AdvertisementData(
        local_name=name,
        manufacturer_data=manufacturer,
        service_data={},
        service_uuids=[],
        tx_power=-127,
        rssi=rssi,
        platform_data=(),
    )
    return BluetoothServiceInfoBleak(
        name=name,
        address=address,
        rssi=rssi,
        manufacturer_data=manufacturer,
        service_data={},
        service_uuids=[],
        source=SOURCE,
        device=BLEDevice(address, name, {"source": SOURCE}),
        advertisement=advertisement,
        connectable=connectable,
        time=time.monotonic(),
        tx_power=-127,
    )


async def inject_advertisement(hass: HomeAssistant, info: BluetoothServiceInfoBleak) -> None:
    """Hand an advertisement to Home Assistant's bluetooth manager, as a scanner does.

    Waits until the discovery flows it starts (background tasks) have reached their first step.
    """
    async_get_advertisement_callback(hass)(info)
    await hass.async_block_till_done(wait_background_tasks=True)


def use_standin_dongle(
    monkeypatch: pytest.MonkeyPatch, sim: SimulatedBalancer, *, mtu: int = 23, merge: bool = False
) -> type[StandInBleClient]:
    """Make every ``BleTransport`` built without an explicit client class reach ``sim``.

    ``create_transport`` builds ``BleTransport(device_source, keep_connected=...)`` and leaves the
    client class at its default (``BleakClientWithServiceCache``); that default is the one value
    replaced here, so HA's device lookup and bleak-retry-connector's connect loop stay real.
    """
    client_class = standin_client_class(sim, mtu=mtu, merge=merge)
    defaults = BleTransport.__init__.__kwdefaults__
    assert defaults is not None and "client_class" in defaults
    monkeypatch.setitem(defaults, "client_class", client_class)
    return client_class
