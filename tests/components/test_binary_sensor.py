"""Binary sensor platform (balancing, per-cell balancing, faults), against the simulator."""

from __future__ import annotations

from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.daly_active_balance.binary_sensor import ATTR_FAULTS
from custom_components.daly_active_balance.const import (
    DOMAIN,
)
from custom_components.daly_active_balance.protocol.registers import register
from daly_tools.simulator import SimulatedBalancer

from .conftest import EntityIdFinder, Poll

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
def platforms() -> list[Platform]:
    """Set up the binary sensor platform alone."""
    return [Platform.BINARY_SENSOR]


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
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


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_balancing_follows_module(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The balancing flag and the per-cell bits follow the module's registers."""
    assert hass.states.get(entity_id(Platform.BINARY_SENSOR, "balancing")).state == STATE_OFF
    simulator.write_word(register("balancing").address, 1)
    # Cells 2 and 17: bit 1 of the first bitmap word and bit 0 of the second.
    bitmap = register("balancing_cells").address
    simulator.write_word(bitmap, 0b10)
    simulator.write_word(bitmap + 1, 0b1)
    await poll()

    assert hass.states.get(entity_id(Platform.BINARY_SENSOR, "balancing")).state == STATE_ON
    assert hass.states.get(entity_id(Platform.BINARY_SENSOR, "cell_balancing_2")).state == STATE_ON
    assert hass.states.get(entity_id(Platform.BINARY_SENSOR, "cell_balancing_1")).state == STATE_OFF
    # A 16-cell module has no cell 17: its bit creates nothing.
    assert entity_registry.async_get_entity_id(Platform.BINARY_SENSOR, DOMAIN, "simulator_cell_balancing_17") is None


async def test_fault_lists_active_faults(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The problem sensor turns on with any fault bit and names the active faults."""
    fault = entity_id(Platform.BINARY_SENSOR, "fault")
    state = hass.states.get(fault)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_FAULTS] == []

    faults = register("faults").address
    simulator.write_word(faults, 0b101)  # cell over-voltage L1, cell under-voltage L1
    simulator.write_word(faults + 2, 1 << 9)  # cell sampling offline
    await poll()

    state = hass.states.get(fault)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_FAULTS] == ["cell_overvoltage_1", "cell_undervoltage_1", "cell_sampling_offline"]
    # The list stays out of the recorder.
    assert state.state_info is not None
    assert ATTR_FAULTS in state.state_info["unrecorded_attributes"]

    for offset in range(register("faults").count):
        simulator.write_word(faults + offset, 0)
    await poll()
    assert hass.states.get(fault).state == STATE_OFF
