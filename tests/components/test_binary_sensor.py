"""Binary sensor platform (balancing, expected balancing, per-cell balancing, warnings, faults,
pack check), against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.registers import WARNING_BITS, active_faults, register
from aiodalybalancer.tools.simulator import SimulatedBalancer
from custom_components.daly_active_balance.binary_sensor import ATTR_CELLS, ATTR_FAULTS, ATTR_REASONS, ATTR_WARNINGS
from custom_components.daly_active_balance.checks import CLEAR_AFTER, RAISE_AFTER, Reason
from custom_components.daly_active_balance.const import (
    DOMAIN,
)
from custom_components.daly_active_balance.issues import ISSUE_CELL_OUT_OF_RANGE, ISSUE_STOPPED_ANSWERING

from .conftest import EntityIdFinder, Poll
from .test_init import poll_unanswered

pytestmark = pytest.mark.usefixtures("socket_enabled")

STRINGS = Path(__file__).parents[2] / "custom_components" / "daly_active_balance" / "strings.json"


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
    assert others == {
        "balancing": None,
        "balancing_expected": None,
        "warning": None,
        "fault": None,
        "pack_check": None,
        "not_keeping_up": None,
    }


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


async def test_warnings_and_faults_split_as_the_table_names_them(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Level-1 bits turn the Warning sensor on, every other bit the Fault sensor; each names its
    active bits by key. Both sit in the device page's main sections (no entity category)."""
    warning, fault = entity_id(Platform.BINARY_SENSOR, "warning"), entity_id(Platform.BINARY_SENSOR, "fault")
    for sensor in (warning, fault):
        entry = entity_registry.async_get(sensor)
        assert entry is not None
        assert entry.entity_category is None
        assert entry.original_device_class is BinarySensorDeviceClass.PROBLEM
    assert hass.states.get(warning).attributes[ATTR_WARNINGS] == []
    assert hass.states.get(fault).attributes[ATTR_FAULTS] == []

    faults = register("faults").address
    simulator.write_word(faults, 0b101)  # cell over-voltage L1, cell under-voltage L1
    await poll()
    state = hass.states.get(warning)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_WARNINGS] == ["cell_overvoltage_1", "cell_undervoltage_1"]
    assert hass.states.get(fault).state == STATE_OFF

    simulator.write_word(faults, 0b110)  # cell over-voltage L2, cell under-voltage L1
    simulator.write_word(faults + 2, 1 << 9)  # cell sampling offline
    simulator.write_word(faults + 3, 1 << 6)  # a bit the document leaves unnamed
    await poll()
    assert hass.states.get(warning).attributes[ATTR_WARNINGS] == ["cell_undervoltage_1"]
    state = hass.states.get(fault)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_FAULTS] == ["cell_overvoltage_2", "cell_sampling_offline", "fault_3_6"]
    # The lists stay out of the recorder.
    assert state.state_info is not None
    assert ATTR_FAULTS in state.state_info["unrecorded_attributes"]

    for offset in range(register("faults").count):
        simulator.write_word(faults + offset, 0)
    await poll()
    assert hass.states.get(warning).state == STATE_OFF
    assert hass.states.get(fault).state == STATE_OFF


def test_every_listed_key_is_translated() -> None:
    """Each key the Warning, Fault and Pack check sensors can list has a translation under its
    attribute (the frontend translates a list attribute element by element)."""
    strings = json.loads(STRINGS.read_text(encoding="utf-8"))["entity"]["binary_sensor"]

    def translated(key: str, attribute: str) -> set[str]:
        return set(strings[key]["state_attributes"][attribute]["state"])

    reg = register("faults")
    listed: dict[str, set[str]] = {ATTR_WARNINGS: set(), ATTR_FAULTS: set()}
    for word in range(reg.count):
        for bit in range(16):
            words = [0] * reg.count
            words[word] = 1 << bit
            (name,) = active_faults(words)
            listed[ATTR_WARNINGS if name in WARNING_BITS else ATTR_FAULTS].add(name)
    assert len(listed[ATTR_WARNINGS]) == 14
    assert listed[ATTR_WARNINGS] == translated("warning", ATTR_WARNINGS)
    assert listed[ATTR_FAULTS] == translated("fault", ATTR_FAULTS)
    assert {reason.value for reason in Reason} == translated("pack_check", ATTR_REASONS)


async def test_balancing_expected(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """On while the switch is on, the highest cell is at or above the turn-on voltage and the
    difference at or above the turn-on difference; each condition alone turns it off."""
    expected = entity_id(Platform.BINARY_SENSOR, "balancing_expected")
    for cell in range(1, 17):
        simulator.set_cell_voltage(cell, 3.290)
    simulator.set_cell_voltage(1, 3.300)  # at the 3.3 V turn-on voltage
    simulator.set_cell_voltage(2, 3.280)  # 20 mV: at the turn-on difference
    await poll()
    assert hass.states.get(expected).state == STATE_ON

    simulator.set_cell_voltage(2, 3.281)  # 19 mV
    await poll()
    assert hass.states.get(expected).state == STATE_OFF

    simulator.set_cell_voltage(2, 3.250)
    simulator.set_cell_voltage(1, 3.299)  # below the turn-on voltage
    await poll()
    assert hass.states.get(expected).state == STATE_OFF

    simulator.set_cell_voltage(1, 3.400)
    await poll()
    assert hass.states.get(expected).state == STATE_ON
    simulator.write_word(register("balancer_enabled").address, 0)
    await poll()
    assert hass.states.get(expected).state == STATE_OFF


async def test_pack_check_shows_the_repairs_findings(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The pack check turns on in the very poll its repair is raised, names the reason and the
    cells, and turns off in the poll the repair clears."""
    check = entity_id(Platform.BINARY_SENSOR, "pack_check")
    issue_id = f"{ISSUE_CELL_OUT_OF_RANGE}_{init_integration.entry_id}"
    issues = ir.async_get(hass)
    state = hass.states.get(check)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_REASONS] == []
    assert entity_registry.async_get(check).entity_category is None

    simulator.set_cell_voltage(7, 0.0)
    simulator.set_cell_voltage(3, 4.5)
    for _ in range(RAISE_AFTER - 1):
        await poll()
        assert hass.states.get(check).state == STATE_OFF
        assert issues.async_get_issue(DOMAIN, issue_id) is None
    await poll()
    state = hass.states.get(check)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_REASONS] == [ISSUE_CELL_OUT_OF_RANGE]
    assert state.attributes[ATTR_CELLS] == [3, 7]
    assert issues.async_get_issue(DOMAIN, issue_id) is not None

    simulator.set_cell_voltage(7, 3.3)
    simulator.set_cell_voltage(3, 3.3)
    for _ in range(CLEAR_AFTER - 1):
        await poll()
        assert hass.states.get(check).state == STATE_ON
    await poll()
    assert hass.states.get(check).state == STATE_OFF
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_pack_check_shows_a_silent_module(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """While the module is silent the other entities are unavailable, but the pack check stays
    available and turns on once the silence lasts RAISE_AFTER polls; an answer turns it off."""
    check, balancing = entity_id(Platform.BINARY_SENSOR, "pack_check"), entity_id(Platform.BINARY_SENSOR, "balancing")
    coordinator = init_integration.runtime_data
    simulator.silent = True
    for _ in range(RAISE_AFTER - 1):
        await poll_unanswered(hass, freezer, coordinator)
    assert hass.states.get(balancing).state == STATE_UNAVAILABLE
    assert hass.states.get(check).state == STATE_OFF
    await poll_unanswered(hass, freezer, coordinator)
    state = hass.states.get(check)
    assert state.state == STATE_ON
    assert state.attributes[ATTR_REASONS] == [ISSUE_STOPPED_ANSWERING]

    simulator.silent = False
    await poll()
    assert hass.states.get(balancing).state != STATE_UNAVAILABLE
    state = hass.states.get(check)
    assert state.state == STATE_OFF
    assert state.attributes[ATTR_REASONS] == []


async def test_fault_sensor_keeps_its_entity(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, config_entry: MockConfigEntry
) -> None:
    """The diagnostic Fault sensor of earlier versions is the new Fault sensor: same unique id
    and entity id (its history stays), now in the device page's main section."""
    old = entity_registry.async_get_or_create(
        Platform.BINARY_SENSOR,
        DOMAIN,
        "simulator_fault",
        config_entry=config_entry,
        suggested_object_id="daly_balancer_fault",
        entity_category=EntityCategory.DIAGNOSTIC,
        translation_key="fault",
    )
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    new = entity_registry.async_get(old.entity_id)
    assert new is not None
    assert new.unique_id == "simulator_fault"
    assert new.entity_category is None
    assert hass.states.get(old.entity_id).state == STATE_OFF
    assert await hass.config_entries.async_unload(config_entry.entry_id)
