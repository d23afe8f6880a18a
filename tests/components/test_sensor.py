"""Sensor platform, against the simulated module on a real TCP socket."""

from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.errors import DalyError
from aiodalybalancer.registers import BY_KEY, EXTENDED, LIVE, RAW_ABSENT
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
)
from custom_components.daly_active_balance.const import (
    DOMAIN,
)

from .ble_helpers import inject_advertisement, service_info, use_standin_dongle
from .conftest import UNIQUE_ID, EntityIdFinder, Poll, enable_entity

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
def platforms() -> list[Platform]:
    """Set up the sensor platform alone."""
    return [Platform.SENSOR]


@pytest.fixture
def simulator(sim_config: SimulatorConfig) -> SimulatedBalancer:
    """A module whose clock stands still: its cells do not drift between a poll and a comparison."""
    return SimulatedBalancer(sim_config, clock=lambda: 0.0)


def cell_sensor_keys(entity_registry: er.EntityRegistry, entry: MockConfigEntry) -> list[str]:
    """Description keys of the cell voltage sensors that were created."""
    prefix = f"{entry.unique_id}_cell_voltage_"
    return [
        e.unique_id.removeprefix(f"{entry.unique_id}_")
        for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
        if e.unique_id.startswith(prefix)
    ]


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Every sensor of a 16-cell module: names, units, classes, categories and states."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_cells_equal_simulator(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Each cell sensor shows the simulator's cell; a changed cell shows after the next poll."""
    cells = simulator.cell_voltages()
    assert len(cell_sensor_keys(entity_registry, init_integration)) == len(cells) == 16
    for number, volts in enumerate(cells, start=1):
        state = hass.states.get(entity_id(Platform.SENSOR, f"cell_voltage_{number}"))
        assert state is not None
        assert float(state.state) == pytest.approx(volts, abs=0.0005)
        assert state.attributes["unit_of_measurement"] == "V"

    simulator.set_cell_voltage(5, 3.512)
    simulator.set_cell_voltage(9, 3.101)
    await poll()

    assert float(hass.states.get(entity_id(Platform.SENSOR, "cell_voltage_5")).state) == pytest.approx(3.512)
    assert float(hass.states.get(entity_id(Platform.SENSOR, "cell_voltage_9")).state) == pytest.approx(3.101)
    assert hass.states.get(entity_id(Platform.SENSOR, "max_voltage_cell")).state == "5"
    assert hass.states.get(entity_id(Platform.SENSOR, "min_voltage_cell")).state == "9"


async def test_cell_delta_in_millivolts(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The cell difference is kept in V natively and shown in mV."""
    state = hass.states.get(entity_id(Platform.SENSOR, "cell_delta"))
    assert state is not None
    assert state.attributes["unit_of_measurement"] == "mV"
    assert float(state.state) == pytest.approx(simulator.value("cell_delta") * 1000, abs=0.5)


@pytest.mark.parametrize(
    "sim_config",
    [SimulatorConfig(cells=3, seed=1), SimulatorConfig(cells=24, seed=1)],
    ids=["3S", "24S"],
)
async def test_cell_count_follows_module(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    sim_config: SimulatorConfig,
    init_integration: MockConfigEntry,
) -> None:
    """Exactly one sensor per reported cell, for the smallest and the largest module."""
    cells = simulator.cell_voltages()
    assert len(cells) == sim_config.cells
    keys = cell_sensor_keys(entity_registry, init_integration)
    assert sorted(keys) == sorted(f"cell_voltage_{n}" for n in range(1, sim_config.cells + 1))
    last = hass.states.get(entity_id(Platform.SENSOR, f"cell_voltage_{sim_config.cells}"))
    assert float(last.state) == pytest.approx(cells[-1], abs=0.0005)
    assert hass.states.get(entity_id(Platform.SENSOR, "cell_count")).state == str(sim_config.cells)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_the_absent_marker_is_never_a_reading(
    poll: Poll,
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Issue 14 item 2: the firmware's "absent" marker 0xFFFF is unknown, never a number
    (not 65495 °C, not 65.535 V), in every register of the live and extended blocks."""
    temperature_1 = entity_id(Platform.SENSOR, "temperature_1")
    cell_3 = entity_id(Platform.SENSOR, "cell_voltage_3")
    counts = {BY_KEY[key].address for key in ("cell_count", "temperature_sensor_count")}
    simulator.write_word(BY_KEY["temperatures"].address, RAW_ABSENT)
    simulator.write_word(BY_KEY["cell_voltages"].address + 2, RAW_ABSENT)
    await poll()
    assert hass.states.get(temperature_1).state == STATE_UNKNOWN
    assert hass.states.get(cell_3).state == STATE_UNKNOWN
    assert float(hass.states.get(entity_id(Platform.SENSOR, "cell_voltage_4")).state) == pytest.approx(
        simulator.cell_voltages()[3]
    )

    for block in (LIVE, EXTENDED):  # every word absent, but the counts (which say what exists)
        for address in range(block.start, block.end):
            if address not in counts:
                simulator.write_word(address, RAW_ABSENT)
    await poll()
    for entity in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id):
        key = entity.unique_id.removeprefix(f"{UNIQUE_ID}_")
        state = hass.states.get(entity.entity_id)
        if key in ("cell_count", "temperature_sensor_count", "register_00ce", "register_00d0"):
            continue  # counts and the balancer block: not overwritten
        if key in ("poll_success", "last_error"):
            continue  # the link's counters, not the module's registers
        if key == "balancing_time_today":
            continue  # the insights' daily total (0 s so far), not a register
        assert state.state in (STATE_UNKNOWN, STATE_UNAVAILABLE), (key, state.state)


async def test_a_sensor_count_above_the_slots_shows_the_sensors_that_exist(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """Issue 14, "Smaller": a temperature-sensor count above the six slots that exist does not
    hide every temperature: the slots that carry a value are shown."""
    simulator.write_word(BY_KEY["temperature_sensor_count"].address, 9)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    state = hass.states.get(entity_id(Platform.SENSOR, "temperature_1"))
    assert state is not None
    assert float(state.state) == simulator.value("temperatures")[0]  # type: ignore[index]
    created = {e.unique_id for e in er.async_entries_for_config_entry(entity_registry, config_entry.entry_id)}
    assert f"{UNIQUE_ID}_temperature_2" not in created  # slot 2 holds nothing (raw 0)
    assert hass.states.get(entity_id(Platform.SENSOR, "temperature_sensor_count")).state == "1"
    await hass.config_entries.async_unload(config_entry.entry_id)


async def test_link_quality_stays_available_while_the_module_is_silent(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    entity_id: EntityIdFinder,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The share of successful polls of the last hour and the last error, counted by the
    coordinator: shown while the module is silent, the error without the link's secrets."""
    coordinator = init_integration.runtime_data
    share = entity_id(Platform.SENSOR, "poll_success")
    last_error = entity_id(Platform.SENSOR, "last_error")
    assert entity_registry.async_get_entity_id(Platform.SENSOR, DOMAIN, "simulator_signal_strength") is None
    assert hass.states.get(share).state == "100.0"
    assert hass.states.get(last_error).state == STATE_UNKNOWN

    coordinator.client.timeout = 0.05  # time is not frozen here (a silent module needs timers)
    simulator.silent = True
    await coordinator.async_refresh()
    assert hass.states.get(entity_id(Platform.SENSOR, "pack_voltage")).state == STATE_UNAVAILABLE
    assert hass.states.get(share).state == "50.0"
    assert hass.states.get(last_error).state.startswith("DalyTimeoutError: no answer from")

    simulator.silent = False
    await coordinator.async_refresh()
    assert hass.states.get(share).state == "66.7"
    assert hass.states.get(last_error).state.startswith("DalyTimeoutError")  # the last one, kept

    long_error = DalyError("no answer " * 40)  # a state holds 255 characters at most
    coordinator._record(long_error)
    coordinator.async_update_listeners()
    assert hass.states.get(last_error).state == f"DalyError: {long_error}"[:255]

    with freeze_time(dt_util.utcnow() + timedelta(hours=1)):
        await coordinator.async_refresh()
        assert hass.states.get(share).state == "100.0"  # the failures are more than an hour old


async def test_ble_signal_strength_from_home_assistants_bluetooth_data(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
) -> None:
    """A Bluetooth entry's signal strength is what Home Assistant last heard from the dongle."""
    use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info(rssi=-71))
    assert await hass.config_entries.async_setup(ble_entry.entry_id)
    await hass.async_block_till_done()
    signal = await enable_entity(hass, ble_entry, Platform.SENSOR, "signal_strength")
    registered = entity_registry.async_get(signal)
    assert registered is not None
    assert registered.entity_category is EntityCategory.DIAGNOSTIC
    assert hass.states.get(signal).state == "-71"

    await inject_advertisement(hass, service_info(rssi=-83))
    await ble_entry.runtime_data.async_refresh()
    assert hass.states.get(signal).state == "-83"
    assert await hass.config_entries.async_unload(ble_entry.entry_id)
