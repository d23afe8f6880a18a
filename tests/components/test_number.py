"""Number platform (balance thresholds, sleep time, string count), against the simulator."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.registers import (
    CHEMISTRY,
    SLEEP_NEVER,
    BatteryType,
    register,
)
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
)
from custom_components.daly_active_balance.const import CONF_UPDATE_INTERVAL

from .conftest import EntityIdFinder, set_number

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
def platforms() -> list[Platform]:
    """Set up the number platform alone."""
    return [Platform.NUMBER]


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """Every number: ranges, steps, units, modes, category and state."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_string_count_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """[INF] string count register: created disabled; the documented settings are enabled."""
    disabled = {
        e.unique_id.removeprefix("simulator_"): e.disabled_by
        for e in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    }
    assert disabled == {
        "balance_start_voltage": None,
        "balance_start_delta": None,
        "sleep_time": None,
        "string_count": er.RegistryEntryDisabler.INTEGRATION,
    }


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    ("key", "shown", "stored"),
    [
        ("balance_start_voltage", 3.45, 3.45),
        ("balance_start_delta", 35, 0.035),
        ("sleep_time", SLEEP_NEVER, SLEEP_NEVER),
        ("sleep_time", 120, 120),
        ("string_count", 12, 12),
    ],
)
async def test_write_reaches_module(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    key: str,
    shown: float,
    stored: float,
) -> None:
    """A value set in Home Assistant is stored by the module and read back into the state."""
    assert simulator.value(key) != pytest.approx(stored)
    number = entity_id(Platform.NUMBER, key)
    await set_number(hass, number, shown)
    assert simulator.value(key) == pytest.approx(stored)
    assert float(hass.states.get(number).state) == pytest.approx(shown)


async def test_balance_delta_shown_in_millivolts(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The table keeps volts; the entity shows and takes millivolts, with the table's range."""
    reg = register("balance_start_delta")
    state = hass.states.get(entity_id(Platform.NUMBER, "balance_start_delta"))
    assert state.attributes["unit_of_measurement"] == "mV"
    assert float(state.state) == pytest.approx(simulator.value("balance_start_delta") * 1000)
    assert state.attributes["min"] == pytest.approx(reg.minimum * 1000)
    assert state.attributes["max"] == pytest.approx(reg.maximum * 1000)
    assert state.attributes["step"] == pytest.approx(reg.step * 1000)


@pytest.mark.parametrize(
    "sim_config",
    [SimulatorConfig(cells=16, seed=1, battery_type=t) for t in BatteryType],
    ids=[str(t) for t in BatteryType],
)
async def test_balance_voltage_range_follows_chemistry(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    sim_config: SimulatorConfig,
    init_integration: MockConfigEntry,
) -> None:
    """The turn-on voltage is bounded by the configured chemistry, not by the register alone."""
    chemistry = CHEMISTRY[BatteryType(sim_config.battery_type)]
    state = hass.states.get(entity_id(Platform.NUMBER, "balance_start_voltage"))
    assert state.attributes["min"] == pytest.approx(chemistry.balance_min)
    assert state.attributes["max"] == pytest.approx(chemistry.balance_max)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("balance_start_voltage", 3.9),  # above LiFePO4's 3.65 V, inside the register's 4.2 V
        ("balance_start_delta", 501),
        ("balance_start_delta", 4),
        ("string_count", 25),
        ("string_count", 2),
        ("sleep_time", 0),  # what the firmware does with 0 is unknown (issue 14)
        # Asleep again before the client's retry: no poll, no write could reach it (issue 21).
        ("sleep_time", 1),
        ("sleep_time", 2),
    ],
)
async def test_out_of_range_refused(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    key: str,
    value: float,
) -> None:
    """A value outside the range raises ServiceValidationError and nothing reaches the module."""
    before = simulator.value(key)
    with pytest.raises(ServiceValidationError):
        await set_number(hass, entity_id(Platform.NUMBER, key), value)
    assert simulator.value(key) == before


async def test_ignored_write_raises(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A write the module echoes but does not take raises; the state shows the real value."""
    simulator.ignore_writes.add("sleep_time")
    before = simulator.value("sleep_time")
    number = entity_id(Platform.NUMBER, "sleep_time")
    with pytest.raises(HomeAssistantError) as caught:
        await set_number(hass, number, 600)
    assert not isinstance(caught.value, ServiceValidationError)
    assert caught.value.translation_key == "write_not_accepted"
    assert simulator.value("sleep_time") == before
    assert float(hass.states.get(number).state) == before


@pytest.mark.parametrize("entry_options", [{CONF_UPDATE_INTERVAL: 60}])
async def test_sleep_time_shorter_than_the_poll_interval_refused(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Issue 21: a module that sleeps between polls misses them; the error says so, and why."""
    number = entity_id(Platform.NUMBER, "sleep_time")
    with pytest.raises(ServiceValidationError) as caught:
        await set_number(hass, number, 59)
    assert caught.value.translation_key == "sleep_time_shorter_than_polls"
    assert caught.value.translation_placeholders == {"setting": "Sleep time", "value": "59", "interval": "60"}
    assert str(caught.value) == (
        "A Sleep time of 59 s is shorter than the time between polls (60 s): the balancer would fall "
        "asleep before every poll and miss it. Set at least 60 s, or poll more often in the "
        "integration's options. Nothing was sent"
    )
    assert simulator.stats.writes == 0
    await set_number(hass, number, 60)
    assert simulator.value("sleep_time") == 60
