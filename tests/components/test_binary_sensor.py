"""Binary sensor platform (balancing, per-cell balancing, faults), against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from unittest.mock import PropertyMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import CONF_PORT, STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.daly_active_balance.binary_sensor import ATTR_FAULTS
from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONNECTION_SERIAL,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
)
from custom_components.daly_active_balance.protocol.registers import register
from daly_tools.simulator import SimulatedBalancer, SimulatorServer

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture(autouse=True)
def only_binary_sensors() -> Iterator[None]:
    """Set up the binary sensor platform alone."""
    with patch("custom_components.daly_active_balance.PLATFORMS", [Platform.BINARY_SENSOR]):
        yield


@pytest.fixture
def config_entry(hass: HomeAssistant, sim_server: SimulatorServer) -> MockConfigEntry:
    """An entry with a fixed unique id (the simulator's port changes between runs)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer",
        unique_id="simulator",
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: sim_server.url},
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
def enable_all_entities() -> Iterator[None]:
    """Create every entity enabled, also those disabled by default."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


def entity_id(entity_registry: er.EntityRegistry, key: str) -> str:
    """The entity id of the binary sensor with description key ``key``."""
    found = entity_registry.async_get_entity_id(Platform.BINARY_SENSOR, DOMAIN, f"simulator_{key}")
    assert found is not None, key
    return found


async def poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let one update interval pass so the coordinator polls the module."""
    freezer.tick(timedelta(seconds=DEFAULT_UPDATE_INTERVAL))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.usefixtures("enable_all_entities")
async def test_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Every binary sensor of a 16-cell module."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_cell_balancing_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """[INF] per-cell bitmap: one sensor per cell, created disabled; the others enabled."""
    entries = er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    cells = [e for e in entries if "_cell_balancing_" in e.unique_id]
    assert len(cells) == 16
    assert all(e.disabled_by is er.RegistryEntryDisabler.INTEGRATION for e in cells)
    others = {e.unique_id.removeprefix("simulator_"): e.disabled_by for e in entries if e not in cells}
    assert others == {"balancing": None, "fault": None}


@pytest.mark.usefixtures("enable_all_entities")
async def test_balancing_follows_module(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The balancing flag and the per-cell bits follow the module's registers."""
    assert hass.states.get(entity_id(entity_registry, "balancing")).state == STATE_OFF
    simulator.write_word(register("balancing").address, 1)
    # Cells 2 and 17: bit 1 of the first bitmap word and bit 0 of the second.
    bitmap = register("balancing_cells").address
    simulator.write_word(bitmap, 0b10)
    simulator.write_word(bitmap + 1, 0b1)
    await poll(hass, freezer)

    assert hass.states.get(entity_id(entity_registry, "balancing")).state == STATE_ON
    assert hass.states.get(entity_id(entity_registry, "cell_balancing_2")).state == STATE_ON
    assert hass.states.get(entity_id(entity_registry, "cell_balancing_1")).state == STATE_OFF
    # A 16-cell module has no cell 17: its bit creates nothing.
    assert entity_registry.async_get_entity_id(Platform.BINARY_SENSOR, DOMAIN, "simulator_cell_balancing_17") is None


async def test_fault_lists_active_faults(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The problem sensor turns on with any fault bit and names the active faults."""
    fault = entity_id(entity_registry, "fault")
    state = hass.states.get(fault)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_FAULTS] == []

    faults = register("faults").address
    simulator.write_word(faults, 0b101)  # cell over-voltage L1, cell under-voltage L1
    simulator.write_word(faults + 2, 1 << 9)  # cell sampling offline
    await poll(hass, freezer)

    state = hass.states.get(fault)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_FAULTS] == ["cell_overvoltage_1", "cell_undervoltage_1", "cell_sampling_offline"]
    # The list stays out of the recorder.
    assert state.state_info is not None
    assert ATTR_FAULTS in state.state_info["unrecorded_attributes"]

    for offset in range(register("faults").count):
        simulator.write_word(faults + offset, 0)
    await poll(hass, freezer)
    assert hass.states.get(fault).state == STATE_OFF
