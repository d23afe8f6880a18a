"""Switch platform (balancer, keep Bluetooth connected), against the simulated module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit

from bleak.backends.device import BLEDevice
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_ADDRESS,
    STATE_OFF,
    STATE_ON,
    Platform,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import slugify
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache_with_extra_data,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.registers import SLEEP_DEFAULT, SLEEP_NEVER, register
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorServer
from aiodalybalancer.transport import Transport
from aiodalybalancer.transport_ble import BleTransport
from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONF_KEEP_CONNECTED,
    CONF_UPDATE_INTERVAL,
    CONNECTION_BLE,
    DOMAIN,
    MAX_UPDATE_INTERVAL,
)
from custom_components.daly_active_balance.coordinator import DalyCoordinator

from .conftest import UNIQUE_ID, EntityIdFinder, Poll, turn_switch

pytestmark = pytest.mark.usefixtures("socket_enabled")

BLE_ADDRESS = "AA:BB:CC:DD:EE:FF"


@pytest.fixture
def platforms() -> list[Platform]:
    """Set up the switch platform alone."""
    return [Platform.SWITCH]


def ble_entity_id(entity_registry: er.EntityRegistry, key: str) -> str | None:
    """The entity id of the Bluetooth entry's switch with description key ``key``, if it exists."""
    return entity_registry.async_get_entity_id(Platform.SWITCH, DOMAIN, f"{BLE_ADDRESS}_{key}")


async def test_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """The switches of a serial entry: the balancer only."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_balancer_switch_writes_module(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Off and on reach register 0x00CF and are read back into the state."""
    balancer = entity_id(Platform.SWITCH, "balancer_enabled")
    assert simulator.value("balancer_enabled") is True
    assert hass.states.get(balancer).state == STATE_ON

    await turn_switch(hass, balancer, on=False)
    assert simulator.value("balancer_enabled") is False
    assert hass.states.get(balancer).state == STATE_OFF

    await turn_switch(hass, balancer, on=True)
    assert simulator.value("balancer_enabled") is True
    assert hass.states.get(balancer).state == STATE_ON


async def test_balancer_switch_follows_module(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A change made elsewhere (the phone app) shows after the next poll."""
    balancer = entity_id(Platform.SWITCH, "balancer_enabled")
    simulator.write_word(0x00CF, 0)
    await poll()
    assert hass.states.get(balancer).state == STATE_OFF


async def test_ignored_write_raises(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A switch the module echoes but does not take raises; the state stays on."""
    balancer = entity_id(Platform.SWITCH, "balancer_enabled")
    simulator.ignore_writes.add("balancer_enabled")
    with pytest.raises(HomeAssistantError) as caught:
        await turn_switch(hass, balancer, on=False)
    assert caught.value.translation_key == "write_not_accepted"
    assert simulator.value("balancer_enabled") is True
    assert hass.states.get(balancer).state == STATE_ON


async def test_no_keep_connected_on_serial(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    init_integration: MockConfigEntry,
) -> None:
    """The Bluetooth option has no entity on a wired entry."""
    assert entity_registry.async_get_entity_id(Platform.SWITCH, DOMAIN, f"{UNIQUE_ID}_{CONF_KEEP_CONNECTED}") is None
    assert entity_id(Platform.SWITCH, "balancer_enabled")


# --- Bluetooth ---------------------------------------------------------------------------------
# The radio is replaced by a GATT client double that carries the dongle's byte pipe over the
# simulator's TCP socket: the integration's BleTransport, coordinator and entities are real.


class SimulatorGattClient:
    """A stand-in for BleakClient: fff2 writes go to the simulator, its answers notify on fff1."""

    def __init__(self, device: BLEDevice, disconnected_callback: Callable[[Any], None] | None = None, **_: Any) -> None:
        self.device = device
        self._disconnected_callback = disconnected_callback
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._notify: Callable[[int, bytearray], None] | None = None

    @property
    def is_connected(self) -> bool:
        return self._writer is not None

    async def connect(self, **_: Any) -> None:
        url = urlsplit(self.device.details["url"])
        reader, self._writer = await asyncio.open_connection(url.hostname, url.port)
        self._pump = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(256):
            if self._notify is not None:
                self._notify(0, bytearray(data))

    async def start_notify(self, _uuid: str, callback: Callable[[int, bytearray], None]) -> None:
        self._notify = callback

    async def stop_notify(self, _uuid: str) -> None:
        self._notify = None

    async def write_gatt_char(self, _uuid: str, data: bytes, response: bool = False) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def disconnect(self) -> None:
        writer, self._writer = self._writer, None
        if self._pump is not None:
            self._pump.cancel()
        if writer is not None:
            writer.close()
            await writer.wait_closed()


async def _establish(
    client_class: type[SimulatorGattClient],
    device: BLEDevice,
    _name: str,
    disconnected_callback: Callable[[Any], None] | None = None,
    **_: Any,
) -> SimulatorGattClient:
    client = client_class(device, disconnected_callback=disconnected_callback)
    await client.connect()
    return client


@pytest.fixture
async def ble_entry(hass: HomeAssistant, sim_server: SimulatorServer) -> MockConfigEntry:
    """A Bluetooth entry whose dongle is the simulator behind the GATT client double."""
    device = BLEDevice(BLE_ADDRESS, "DL-TEST", {"url": sim_server.url})

    def transport(_hass: HomeAssistant, _data: dict[str, object], *, keep_connected: bool = True) -> Transport:
        return BleTransport(device, keep_connected=keep_connected, client_class=SimulatorGattClient)  # type: ignore[arg-type]

    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer BLE",
        unique_id=BLE_ADDRESS,
        data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: BLE_ADDRESS},
    )
    entry.add_to_hass(hass)
    with (
        patch("custom_components.daly_active_balance.create_transport", transport),
        patch("aiodalybalancer.transport_ble.establish_connection", _establish),
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        yield entry
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done(wait_background_tasks=True)


async def test_keep_connected_on_ble(
    poll: Poll,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    ble_entry: MockConfigEntry,
) -> None:
    """The BLE-only option: a config switch that changes the entry's option and the link."""
    coordinator: DalyCoordinator = ble_entry.runtime_data
    transport = coordinator.client.transport
    assert isinstance(transport, BleTransport)
    keep = ble_entity_id(entity_registry, CONF_KEEP_CONNECTED)
    assert keep is not None
    assert entity_registry.async_get(keep).entity_category is er.EntityCategory.CONFIG
    assert ble_entity_id(entity_registry, "balancer_enabled") is not None
    assert hass.states.get(keep).state == STATE_ON

    # Kept open: polls reuse the one connection.
    connects = transport.connects
    await poll()
    assert transport.is_open
    assert transport.connects == connects

    await turn_switch(hass, keep, on=False)
    assert ble_entry.options[CONF_KEEP_CONNECTED] is False
    assert hass.states.get(keep).state == STATE_OFF
    assert transport.keep_connected is False

    # Released after every poll: each poll connects anew and leaves the link closed.
    await poll()
    connects = transport.connects
    await poll()
    assert transport.connects == connects + 1
    assert not transport.is_open

    await turn_switch(hass, keep, on=True)
    assert ble_entry.options[CONF_KEEP_CONNECTED] is True
    assert hass.states.get(keep).state == STATE_ON
    assert transport.keep_connected is True


async def test_keep_connected_follows_options_flow(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, ble_entry: MockConfigEntry
) -> None:
    """An option changed elsewhere (the options flow) shows in the switch at once."""
    keep = ble_entity_id(entity_registry, CONF_KEEP_CONNECTED)
    assert keep is not None
    hass.config_entries.async_update_entry(ble_entry, options={**ble_entry.options, CONF_KEEP_CONNECTED: False})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(keep).state == STATE_OFF


async def test_never_sleep_writes_the_sleep_time(
    hass: HomeAssistant, entity_id: EntityIdFinder, simulator: SimulatedBalancer, init_integration: MockConfigEntry
) -> None:
    """On writes 65535 (never), off the manual's 3600 s; a sleep time set otherwise reads as off."""
    never = entity_id(Platform.SWITCH, "never_sleep")
    assert simulator.value("sleep_time") == 3600
    assert hass.states.get(never).state == STATE_OFF
    await turn_switch(hass, never, on=True)
    assert simulator.value("sleep_time") == 65535
    assert hass.states.get(never).state == STATE_ON
    await turn_switch(hass, never, on=False)
    assert simulator.value("sleep_time") == 3600
    assert hass.states.get(never).state == STATE_OFF
    assert simulator.stats.writes == 2


#: The sleep time a user set (not the manual's default): what "Never sleep" off must give back.
USER_SLEEP = 600
SLEEP_ADDRESS = register("sleep_time").address


@pytest.fixture
def user_sleep_time(simulator: SimulatedBalancer) -> int:
    """The module holds the user's own sleep time before Home Assistant first reads it."""
    simulator.write_word(SLEEP_ADDRESS, USER_SLEEP)
    return USER_SLEEP


async def test_never_sleep_off_when_off_writes_nothing(
    hass: HomeAssistant,
    user_sleep_time: int,
    entity_id: EntityIdFinder,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Off on a switch that is off (a script, an "all off" group) keeps the user's sleep time."""
    never = entity_id(Platform.SWITCH, "never_sleep")
    assert hass.states.get(never).state == STATE_OFF
    await turn_switch(hass, never, on=False)
    assert simulator.stats.writes == 0
    assert simulator.value("sleep_time") == user_sleep_time
    assert hass.states.get(never).state == STATE_OFF


async def test_never_sleep_off_gives_back_the_users_sleep_time(
    hass: HomeAssistant,
    user_sleep_time: int,
    entity_id: EntityIdFinder,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """On, then off: the sleep time the module had before (the user's), not the manual's default."""
    never = entity_id(Platform.SWITCH, "never_sleep")
    await turn_switch(hass, never, on=True)
    assert simulator.value("sleep_time") == SLEEP_NEVER
    await turn_switch(hass, never, on=False)
    assert simulator.value("sleep_time") == user_sleep_time
    assert hass.states.get(never).state == STATE_OFF


@pytest.mark.parametrize(("stored", "restored"), [({"last_sleep_time": 900}, 900), (None, SLEEP_DEFAULT)])
async def test_never_sleep_off_after_a_restart(
    hass: HomeAssistant,
    entity_id: EntityIdFinder,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
    stored: dict[str, Any] | None,
    restored: int,
) -> None:
    """A module that never sleeps since before Home Assistant started: off gives back the last
    sleep time Home Assistant saw before the restart, or the manual's default if it saw none."""
    simulator.write_word(SLEEP_ADDRESS, SLEEP_NEVER)
    never = f"switch.{slugify(config_entry.title)}_never_sleep"
    if stored is not None:
        mock_restore_cache_with_extra_data(hass, [(State(never, STATE_ON), stored)])
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    try:
        assert entity_id(Platform.SWITCH, "never_sleep") == never
        assert hass.states.get(never).state == STATE_ON
        await turn_switch(hass, never, on=False)
        assert simulator.value("sleep_time") == restored
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


async def test_never_sleep_off_never_gives_back_a_sleep_time_shorter_than_polls(
    hass: HomeAssistant,
    user_sleep_time: int,
    entity_id: EntityIdFinder,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The user's sleep time is shorter than the time between polls set since Never sleep went
    on: off writes the manual's default instead (as the Sleep time number would refuse it), and
    the switch goes off without an error (scripts and groups turn it off too)."""
    never = entity_id(Platform.SWITCH, "never_sleep")
    await turn_switch(hass, never, on=True)
    longer = user_sleep_time + 300
    hass.config_entries.async_update_entry(
        init_integration, options={**init_integration.options, CONF_UPDATE_INTERVAL: longer}
    )
    await hass.async_block_till_done()
    assert longer <= SLEEP_DEFAULT
    await turn_switch(hass, never, on=False)
    assert simulator.value("sleep_time") == SLEEP_DEFAULT
    assert hass.states.get(never).state == STATE_OFF


def test_the_default_sleep_time_outlasts_every_poll_interval() -> None:
    """What Never sleep off falls back on is never itself shorter than the time between polls."""
    assert MAX_UPDATE_INTERVAL <= SLEEP_DEFAULT
