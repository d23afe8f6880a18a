"""Fixtures for the Home Assistant tests: a real simulator on a real TCP socket.

A test module changes what it gets by overriding a small fixture: ``platforms`` (set up fewer),
``entry_title``, ``entry_unique_id``, ``entry_options``, ``sim_config``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
import time
from typing import Any, Final
from unittest.mock import PropertyMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.components.select import ATTR_OPTION, DOMAIN as SELECT_DOMAIN, SERVICE_SELECT_OPTION
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, CONF_ADDRESS, CONF_PORT, SERVICE_TURN_OFF, SERVICE_TURN_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
    serve_tcp,
)
from custom_components.daly_active_balance import PLATFORMS
from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONF_UPDATE_INTERVAL,
    CONNECTION_BLE,
    CONNECTION_SERIAL,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
)

from .ble_helpers import DALY_ADDRESS
from .entities import ALWAYS_AVAILABLE

#: The serial entry's unique id: fixed, because entity ids and snapshots derive from it and the
#: simulator's port changes between runs.
UNIQUE_ID: Final = "simulator"

type EntityIdFinder = Callable[[str, str], str]
type Poll = Callable[[], Awaitable[None]]


def shows_the_module(entity: er.RegistryEntry, entry: MockConfigEntry) -> bool:
    """True for an enabled entity of ``entry`` that shows the module (not always available)."""
    return not entity.disabled and str(entity.unique_id).removeprefix(f"{entry.unique_id}_") not in ALWAYS_AVAILABLE


@pytest.fixture(autouse=True)
def _auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom integrations in every test that starts it."""


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """The simulated module's configuration (override in a test module to change it)."""
    return SimulatorConfig(cells=16, seed=1)


@pytest.fixture
def simulator(request: pytest.FixtureRequest, sim_config: SimulatorConfig) -> SimulatedBalancer:
    """A simulated module; under ``@pytest.mark.sim_on_test_clock`` it runs on the test's clock,
    so a frozen clock (``freezer``) holds its physics and sleep timer too and a test can let it
    fall asleep. Otherwise it runs on the real clock: a test that moves time on by minutes to
    drive Home Assistant keeps an awake module."""
    if request.node.get_closest_marker("sim_on_test_clock"):
        return SimulatedBalancer(sim_config, clock=lambda: time.monotonic())  # noqa: PLW0108 - looked up at each call, so the freezer applies
    return SimulatedBalancer(sim_config)


@pytest.fixture
async def sim_server(simulator: SimulatedBalancer, socket_enabled: None) -> AsyncIterator[SimulatorServer]:
    """The simulator served on a real TCP socket on 127.0.0.1."""
    server = await serve_tcp(simulator)
    yield server
    await server.close()


@pytest.fixture
def platforms() -> list[Platform]:
    """The platforms the integration sets up (a platform's tests set up their own alone)."""
    return PLATFORMS


@pytest.fixture(autouse=True)
def _only_platforms(platforms: list[Platform]) -> Iterator[None]:
    with patch("custom_components.daly_active_balance.PLATFORMS", platforms):
        yield


@pytest.fixture
def entry_title() -> str:
    """The serial entry's title (the device's name, so the first part of its entity ids)."""
    return "DALY balancer"


@pytest.fixture
def entry_unique_id() -> str:
    """The serial entry's unique id."""
    return UNIQUE_ID


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The serial entry's options."""
    return {}


def add_serial_entry(
    hass: HomeAssistant,
    url: str,
    title: str = "DALY balancer",
    *,
    unique_id: str | None = None,
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """A config entry for the module served at ``url`` (unique id: the URL, as the flow makes it)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=unique_id or url,
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: url},
        options=options or {},
        minor_version=3,  # as the config flow makes it now: no migration runs
    )
    entry.add_to_hass(hass)
    return entry


async def _act(hass: HomeAssistant, domain: str, service: str, data: dict[str, Any], *, settle: bool) -> None:
    """Call an entity service as the UI does; ``settle``: then let what it set off run to its end."""
    await hass.services.async_call(domain, service, data, blocking=True)
    if settle:
        await hass.async_block_till_done(wait_background_tasks=True)


async def set_number(hass: HomeAssistant, entity_id: str, value: float, *, settle: bool = True) -> None:
    """Set a number through its service."""
    await _act(hass, NUMBER_DOMAIN, SERVICE_SET_VALUE, {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: value}, settle=settle)


async def select_option(hass: HomeAssistant, entity_id: str, option: str, *, settle: bool = True) -> None:
    """Pick a select's option through its service."""
    await _act(
        hass, SELECT_DOMAIN, SERVICE_SELECT_OPTION, {ATTR_ENTITY_ID: entity_id, ATTR_OPTION: option}, settle=settle
    )


async def turn_switch(hass: HomeAssistant, entity_id: str, *, on: bool, settle: bool = True) -> None:
    """Turn a switch on or off through its service."""
    await _act(
        hass, SWITCH_DOMAIN, SERVICE_TURN_ON if on else SERVICE_TURN_OFF, {ATTR_ENTITY_ID: entity_id}, settle=settle
    )


async def enable_entity(hass: HomeAssistant, entry: MockConfigEntry, platform: Platform, key: str) -> str:
    """Enable an entity that is off by default, as a user does (the entry reloads), and return its id."""
    registry = er.async_get(hass)
    entity = registry.async_get_entity_id(platform, DOMAIN, f"{entry.unique_id}_{key}")
    assert entity is not None, key
    registered = registry.async_get(entity)
    assert registered is not None
    assert registered.disabled_by is er.RegistryEntryDisabler.INTEGRATION, key
    registry.async_update_entity(entity, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    return entity


@pytest.fixture
def config_entry(
    hass: HomeAssistant,
    sim_server: SimulatorServer,
    entry_title: str,
    entry_unique_id: str,
    entry_options: dict[str, Any],
) -> MockConfigEntry:
    """A serial entry pointing at the simulator through a socket:// URL."""
    return add_serial_entry(hass, sim_server.url, entry_title, unique_id=entry_unique_id, options=entry_options)


@pytest.fixture
def ble_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A Bluetooth entry (unique id = the dongle's address, as the config flow makes it).

    Its update interval is long: the tests refresh the coordinator themselves.
    """
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer 16S",
        unique_id=DALY_ADDRESS,
        data={CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS},
        options={CONF_UPDATE_INTERVAL: 3600},
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def init_integration(hass: HomeAssistant, config_entry: MockConfigEntry) -> AsyncIterator[MockConfigEntry]:
    """The integration set up against the simulator; unloaded (port closed) afterwards."""
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    yield config_entry
    if config_entry.state is ConfigEntryState.LOADED:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create every entity enabled, also those disabled by default (as Home Assistant's own tests do)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
def entity_id(entity_registry: er.EntityRegistry, config_entry: MockConfigEntry) -> EntityIdFinder:
    """Find the id of the serial entry's entity by platform and description key (it must exist)."""

    def find(platform: str, key: str) -> str:
        found = entity_registry.async_get_entity_id(platform, DOMAIN, f"{config_entry.unique_id}_{key}")
        assert found is not None, f"{platform} {key}"
        return found

    return find


@pytest.fixture
def poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> Poll:
    """Let one update interval pass so that the coordinator polls the module, and wait for it."""

    async def tick() -> None:
        freezer.tick(timedelta(seconds=DEFAULT_UPDATE_INTERVAL))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)

    return tick


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in Home Assistant's format (``snapshots/*.ambr``)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)
