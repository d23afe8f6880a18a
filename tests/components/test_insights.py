"""The pack insights in Home Assistant: a simulated pack lives through two weeks on the test clock.

The module in front of the pack is the simulator (``weak_cell_simulator``): a 16-cell LiFePO4
pack with a weak cell 5 and solar charge by day against a load at night, the balancer moving
charge whenever the module's own registers say it balances. Two things keep 14 days to seconds:

* the entry polls once an hour (the options' longest interval), so a day is 24 polls;
* the simulator's physics step is the pack model's own step (one minute, ``pack.MAX_STEP``)
  instead of five seconds: the pack model is driven coarsely, 60 steps between two polls.

Both coarsen what the insights see (an hourly sample of the top of charge reads a smaller
difference than a poll every 10 s would), not how they work. The clock starts at local
midnight, when the pack's own day starts too, so both agree on what "a day" is.
"""

from __future__ import annotations

import time
from typing import Any, Final

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorStateClass
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNKNOWN,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from aiodalybalancer.registers import BY_KEY, SLEEP_NEVER, BatteryType
from aiodalybalancer.tools import simulator as simulator_module
from aiodalybalancer.tools.pack import MAX_STEP, weak_cell_simulator
from aiodalybalancer.tools.simulator import SimulatedBalancer, SimulatorConfig
from custom_components.daly_active_balance.const import (
    CONF_NOT_KEEPING_UP_DAYS,
    CONF_NOT_KEEPING_UP_TREND,
    CONF_UPDATE_INTERVAL,
    DOMAIN,
    MAX_UPDATE_INTERVAL,
)
from custom_components.daly_active_balance.insights import FORMAT_VERSION, KEEP_DAYS, Cause
from custom_components.daly_active_balance.insights_store import STORE_MINOR_VERSION, STORE_VERSION, store_key
from custom_components.daly_active_balance.issues import ISSUE_NOT_KEEPING_UP

from .conftest import EntityIdFinder, select_option, turn_switch
from .test_init import advance

#: Local midnight (Home Assistant's tests run in US/Pacific; no daylight-saving change follows).
MIDNIGHT: Final = "2026-06-01 07:00:00+00:00"
INTERVAL: Final = MAX_UPDATE_INTERVAL
POLLS_PER_DAY: Final = 86400 // INTERVAL
WEAK_CELL: Final = 5

pytestmark = [
    pytest.mark.usefixtures("socket_enabled"),
    pytest.mark.sim_on_test_clock,
    pytest.mark.freeze_time(MIDNIGHT),
]


@pytest.fixture(autouse=True)
def _coarse_physics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator steps its pack a minute at a time (the pack model's own step)."""
    monkeypatch.setattr(simulator_module, "_STEP_S", MAX_STEP)


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """An entry polling once an hour."""
    return {CONF_UPDATE_INTERVAL: INTERVAL}


@pytest.fixture
def simulator(freezer: FrozenDateTimeFactory, sim_config: SimulatorConfig) -> SimulatedBalancer:
    """A module on a pack with a weak cell that has lived 3 days (balancer on), from local midnight.

    Built once the clock is frozen (``freezer`` first), so the pack starts at the test's midnight.
    The module never sleeps: an hour between polls is its default sleep time.
    """
    sim = weak_cell_simulator(3, sim_config, clock=lambda: time.monotonic())  # noqa: PLW0108 - the freezer applies at each call
    sim.write_word(BY_KEY["sleep_time"].address, SLEEP_NEVER)
    return sim


async def live(hass: HomeAssistant, freezer: FrozenDateTimeFactory, days: float) -> None:
    """Let ``days`` pass, one poll an hour."""
    for _ in range(round(days * POLLS_PER_DAY)):
        await advance(hass, freezer, INTERVAL)


def state(hass: HomeAssistant, entity_id: str) -> str:
    """The entity's state (it must exist)."""
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found.state


def number(hass: HomeAssistant, entity_id: str) -> float:
    """The entity's state as a number (it must be known)."""
    return float(state(hass, entity_id))


def not_keeping_up(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    """The entry's "not keeping up" repair, if raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{ISSUE_NOT_KEEPING_UP}_{entry.entry_id}")


async def test_weak_cell_found_and_the_balancer_judged(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """Two weeks: the weak cell is found; with the balancer switched off the top difference
    rises and "not keeping up" is raised (sensor and repair); switched back on, the difference
    converges, the trend turns negative and both clear."""
    weakest = entity_id(Platform.SENSOR, "weakest_cell")
    top_today = entity_id(Platform.SENSOR, "top_difference_today")
    top_yesterday = entity_id(Platform.SENSOR, "top_difference_yesterday")
    trend = entity_id(Platform.SENSOR, "difference_trend")
    problem = entity_id(Platform.BINARY_SENSOR, "not_keeping_up")
    balancer = entity_id(Platform.SWITCH, "balancer_enabled")

    await live(hass, freezer, 3)
    assert state(hass, weakest) == str(WEAK_CELL)
    counts = hass.states.get(weakest).attributes["counts"]
    assert len(counts) == 16
    assert max(range(16), key=counts.__getitem__) == WEAK_CELL - 1
    assert number(hass, top_yesterday) > 0
    assert state(hass, problem) == STATE_OFF
    assert not_keeping_up(hass, init_integration) is None

    await turn_switch(hass, balancer, on=False)
    await live(hass, freezer, 6)
    assert number(hass, trend) >= 2.0  # the default threshold (mV/day)
    assert state(hass, problem) == STATE_ON
    causes = hass.states.get(problem).attributes["causes"]
    assert Cause.BALANCER_OFF in causes
    issue = not_keeping_up(hass, init_integration)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_key == ISSUE_NOT_KEEPING_UP
    assert issue.translation_placeholders is not None
    assert "Balancer switched off" in issue.translation_placeholders["causes"]  # as the attribute shows it
    assert issue.translation_placeholders["days"] == "3"
    assert issue.translation_placeholders["threshold"] == "2"
    assert state(hass, weakest) == str(WEAK_CELL)

    # The options: a higher threshold clears it at the next poll, a shorter run raises it again.
    for threshold, days, shown in ((50.0, 3, STATE_OFF), (2.0, 2, STATE_ON)):
        await set_options(hass, freezer, init_integration, threshold, days)
        assert state(hass, problem) == shown
        assert (not_keeping_up(hass, init_integration) is None) is (shown == STATE_OFF)
    issue = not_keeping_up(hass, init_integration)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["days"] == "2"

    await turn_switch(hass, balancer, on=True)
    await live(hass, freezer, 3)
    assert number(hass, trend) < 0
    assert state(hass, problem) == STATE_OFF
    assert hass.states.get(problem).attributes["causes"] == []
    assert not_keeping_up(hass, init_integration) is None
    assert number(hass, top_yesterday) < 100
    assert state(hass, top_today) == STATE_UNKNOWN  # just after midnight: no top of charge yet today
    await live(hass, freezer, 0.75)
    assert number(hass, top_today) > 0
    assert state(hass, weakest) == str(WEAK_CELL)


async def set_options(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry, threshold: float, days: int
) -> None:
    """Set the "not keeping up" options through the options flow, and let the next poll run."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(
        result["flow_id"],
        {CONF_UPDATE_INTERVAL: INTERVAL, CONF_NOT_KEEPING_UP_TREND: threshold, CONF_NOT_KEEPING_UP_DAYS: days},
    )
    assert entry.options[CONF_NOT_KEEPING_UP_TREND] == threshold
    assert entry.options[CONF_NOT_KEEPING_UP_DAYS] == days
    # The refresh the options ask for runs now (its answers cross a real socket: the clock must
    # not move before they arrive), or once the refresh debouncer's cooldown has passed.
    await hass.async_block_till_done(wait_background_tasks=True)
    await advance(hass, freezer, 15)


async def test_entities_state_classes_and_units(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """Long-term statistics where they mean something; the daily total resets at local midnight."""
    expected = {
        "top_difference_today": ("voltage", SensorStateClass.MEASUREMENT, "mV"),
        "top_difference_yesterday": ("voltage", SensorStateClass.MEASUREMENT, "mV"),
        "difference_trend": (None, SensorStateClass.MEASUREMENT, "mV/d"),
        "balancing_time_today": ("duration", SensorStateClass.TOTAL_INCREASING, "min"),
        "weakest_cell": (None, None, None),
        "highest_cell_at_top": (None, None, None),
    }
    for key, (device_class, state_class, unit) in expected.items():
        attributes = hass.states.get(entity_id(Platform.SENSOR, key)).attributes
        assert attributes.get(ATTR_DEVICE_CLASS) == device_class, key
        assert attributes.get(ATTR_STATE_CLASS) == state_class, key
        assert attributes.get(ATTR_UNIT_OF_MEASUREMENT) == unit, key
    assert hass.states.get(entity_id(Platform.BINARY_SENSOR, "not_keeping_up")).attributes[ATTR_DEVICE_CLASS] == (
        "problem"
    )

    # The balancer off for a day and on again: the next day it balances for hours, and the total
    # only grows until local midnight, where it starts again from 0.
    balancer = entity_id(Platform.SWITCH, "balancer_enabled")
    await turn_switch(hass, balancer, on=False)
    await live(hass, freezer, 2)
    await turn_switch(hass, balancer, on=True)
    balancing = entity_id(Platform.SENSOR, "balancing_time_today")
    seen = [number(hass, balancing)]
    for _ in range(POLLS_PER_DAY - 1):
        await advance(hass, freezer, INTERVAL)
        seen.append(number(hass, balancing))
    assert seen == sorted(seen)
    assert seen[-1] > 0
    await advance(hass, freezer, INTERVAL)  # the first poll after midnight
    assert number(hass, balancing) < seen[-1]


async def test_a_restart_keeps_the_history(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """Unloaded mid-week and set up again, the entry shows the days it had (saved on unload)."""
    # Not the cell highest at the top: the poll at setup adds to today's counts.
    keys = ("top_difference_yesterday", "difference_trend", "weakest_cell")
    await live(hass, freezer, 3.5)
    before = {key: state(hass, entity_id(Platform.SENSOR, key)) for key in keys}
    assert STATE_UNKNOWN not in before.values()
    days = init_integration.runtime_data.insights.insights.as_dict()["days"]

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    stored = hass_storage[store_key(init_integration.entry_id)]
    assert (stored["version"], stored["minor_version"]) == (STORE_VERSION, STORE_MINOR_VERSION)
    assert stored["data"] == {"version": FORMAT_VERSION, "days": days}
    assert len(days) == 4  # three whole days and today so far

    assert await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert {key: state(hass, entity_id(Platform.SENSOR, key)) for key in keys} == before
    assert init_integration.runtime_data.insights.insights.as_dict()["days"][:-1] == days[:-1]


async def test_days_are_saved_while_polling(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Each answered poll is filed under the local date, and a running entry saves its days now
    and then (a crash loses at most a few minutes of today)."""
    insights = init_integration.runtime_data.insights.insights
    assert insights.max_gap >= 2 * INTERVAL
    key = store_key(init_integration.entry_id)
    await live(hass, freezer, 1)
    assert [day.day.isoformat() for day in insights.days] == ["2026-06-01", "2026-06-02"]
    await advance(hass, freezer, 60)  # past the save's delay
    assert [day["day"] for day in hass_storage[key]["data"]["days"]] == ["2026-06-01", "2026-06-02"]


async def test_stored_days_of_an_older_format_are_migrated(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """A Store written in the insights' first layout (volts) is read after a restart, in mV."""
    day = {
        "day": "2026-05-31",
        "chemistry": "lifepo4",
        "top_difference": 0.087,
        "bottom_difference": 0.236,
        # Per-cell counts of the simulated module's 16 cells.
        "highest_at_top": [0, 0, 4] + [0] * 13,
        "lowest_at_bottom": [0, 0, 0, 0, 9] + [0] * 11,
        "balancing_s": 720.0,
        "expected_s": 720.0,
        "max_cell": 3.551,
        "start_voltage": 3.3,
        "start_delta": 0.02,
        "switched_off": False,
    }
    hass_storage[store_key(config_entry.entry_id)] = {
        "version": STORE_VERSION,
        "minor_version": 1,
        "key": store_key(config_entry.entry_id),
        "data": {"version": 1, "days": [day]},
    }
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    assert state(hass, entity_id(Platform.SENSOR, "top_difference_yesterday")) == "87"
    assert state(hass, entity_id(Platform.SENSOR, "weakest_cell")) == "5"
    assert state(hass, entity_id(Platform.SENSOR, "highest_cell_at_top")) == "3"
    stored = hass_storage[store_key(config_entry.entry_id)]
    assert stored["minor_version"] == STORE_MINOR_VERSION
    assert stored["data"]["days"][0]["top_difference"] == 87
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_removing_the_entry_removes_its_store(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The stored days go with the entry."""
    key = store_key(init_integration.entry_id)
    await live(hass, freezer, 1)
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    assert key in hass_storage

    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_days_older_than_kept_are_dropped(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """The Store holds the last 30 days, today included, whatever it held before."""
    days = [
        {"day": f"2026-{month:02d}-{day:02d}", "chemistry": "lifepo4", "top_difference": 80}
        for month, last in ((4, 30), (5, 31))
        for day in range(1, last + 1)
    ]
    key = store_key(config_entry.entry_id)
    hass_storage[key] = {
        "version": STORE_VERSION,
        "minor_version": STORE_MINOR_VERSION,
        "key": key,
        "data": {"version": FORMAT_VERSION, "days": days},
    }
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    await advance(hass, freezer, INTERVAL)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    kept = [day["day"] for day in hass_storage[key]["data"]["days"]]
    assert len(kept) == KEEP_DAYS
    assert kept[0] == "2026-05-03"
    assert kept[-1] == "2026-06-01"


class TestNoKnee:
    """A pack resting in the middle of its curve (the plain simulator) never reaches a knee."""

    @pytest.fixture
    def simulator(self, freezer: FrozenDateTimeFactory, sim_config: SimulatorConfig) -> SimulatedBalancer:
        """The plain simulated module: cells about 3.32 V, a few mV apart, that never sleeps."""
        sim = SimulatedBalancer(sim_config, clock=lambda: time.monotonic())  # noqa: PLW0108 - the freezer applies at each call
        sim.write_word(BY_KEY["sleep_time"].address, SLEEP_NEVER)
        return sim

    async def test_unknown_never_zero(
        self,
        hass: HomeAssistant,
        freezer: FrozenDateTimeFactory,
        simulator: SimulatedBalancer,
        init_integration: MockConfigEntry,
        entity_id: EntityIdFinder,
    ) -> None:
        """After three days without a knee the difference, trend and cells are unknown, not 0."""
        await live(hass, freezer, 3)
        for key in (
            "top_difference_today",
            "top_difference_yesterday",
            "difference_trend",
            "weakest_cell",
            "highest_cell_at_top",
        ):
            assert state(hass, entity_id(Platform.SENSOR, key)) == STATE_UNKNOWN, key
        assert state(hass, entity_id(Platform.BINARY_SENSOR, "not_keeping_up")) == STATE_OFF
        days = init_integration.runtime_data.insights.insights.as_dict()["days"]
        assert len(days) == 4
        assert all(day["top_difference"] is None and day["bottom_difference"] is None for day in days)


async def test_a_chemistry_change_starts_the_knees_afresh(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """Another battery type (the select) drops today's knee figures and the days of the old one."""
    await live(hass, freezer, 3.75)  # 18:00: today's top of charge is behind
    keys = ("top_difference_today", "top_difference_yesterday", "difference_trend", "highest_cell_at_top")
    for key in keys:
        assert state(hass, entity_id(Platform.SENSOR, key)) != STATE_UNKNOWN, key

    await select_option(hass, entity_id(Platform.SELECT, "battery_type"), BatteryType.LI_ION)
    await advance(hass, freezer, INTERVAL)
    for key in keys:
        assert state(hass, entity_id(Platform.SENSOR, key)) == STATE_UNKNOWN, key
    days = init_integration.runtime_data.insights.insights.as_dict()["days"]
    assert [day["chemistry"] for day in days] == ["lifepo4"] * 3 + ["li_ion"]
    # The LiFePO4 cells never pass a Li-ion pack's upper knee (4.10 V).
    await live(hass, freezer, 1)
    assert state(hass, entity_id(Platform.SENSOR, "top_difference_yesterday")) == STATE_UNKNOWN


def test_the_store_follows_the_insights_format() -> None:
    """A new insights layout is a new minor version of the Store, which Home Assistant migrates."""
    assert STORE_MINOR_VERSION == FORMAT_VERSION
    assert store_key("abc") == f"{DOMAIN}.insights.abc"
