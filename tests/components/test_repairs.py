"""Repair issues: each is raised by a real condition of the simulated module and clears itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.loader import async_get_integration
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from aiodalybalancer.registers import (
    BY_KEY,
    CHEMISTRY,
    SLEEP_NEVER,
    BatteryType,
)
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
)
from custom_components.daly_active_balance.checks import CLEAR_AFTER, DOUBT_AFTER, RAISE_AFTER
from custom_components.daly_active_balance.const import (
    CONF_SETTINGS_EVERY,
    CONF_UPDATE_INTERVAL,
    DOMAIN,
)
from custom_components.daly_active_balance.issues import (
    ISSUE_BALANCE_VOLTAGE,
    ISSUE_CELL_OUT_OF_RANGE,
    ISSUE_PACK_VOLTAGE_LOW,
    ISSUE_STOPPED_ANSWERING,
    ISSUE_STRING_COUNT,
    ISSUE_VERIFY_BALANCING,
    ISSUES,
)

from .conftest import select_option, set_number
from .test_init import UPDATE_INTERVAL, advance, poll_unanswered, run_out_timeouts

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.sim_on_test_clock]

TITLE = "DALY balancer"


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """An entry that polls every few seconds and re-reads the settings on every poll."""
    return {CONF_UPDATE_INTERVAL: UPDATE_INTERVAL, CONF_SETTINGS_EVERY: 1}


def issue(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> ir.IssueEntry | None:
    """The issue ``key`` of ``entry``, if it is raised."""
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{key}_{entry.entry_id}")


def raised(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    """The keys of the issues raised for ``entry``."""
    return {key for key in ISSUES if issue(hass, entry, key) is not None}


async def polls(hass: HomeAssistant, freezer: FrozenDateTimeFactory, count: int) -> None:
    """Let ``count`` update intervals pass, one poll each."""
    for _ in range(count):
        await advance(hass, freezer, UPDATE_INTERVAL)


async def test_healthy_module_raises_nothing(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A healthy module raises no issue."""
    assert init_integration.state is ConfigEntryState.LOADED
    assert raised(hass, init_integration) == set()


@pytest.mark.parametrize(
    "volts",
    [0.0, 1.2, 4.05],
    ids=["zero", "low", "high"],
)
async def test_cell_out_of_range(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    volts: float,
) -> None:
    """A cell at 0 V or outside its chemistry's range raises an issue naming it; it clears when fixed."""
    simulator.set_cell_voltage(7, volts)
    await polls(hass, freezer, RAISE_AFTER)

    found = issue(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    assert found is not None
    assert found.translation_key == ISSUE_CELL_OUT_OF_RANGE
    assert found.severity is ir.IssueSeverity.ERROR
    assert not found.is_fixable
    chemistry = CHEMISTRY[BatteryType.LIFEPO4]
    assert found.translation_placeholders == {
        "title": TITLE,
        "cells": "7",
        "chemistry": "LiFePO4",  # as the battery type select shows it
        "minimum": f"{chemistry.plausible_min:.2f}",
        "maximum": f"{chemistry.plausible_max:.2f}",
    }

    simulator.set_cell_voltage(3, 0.0)
    await polls(hass, freezer, RAISE_AFTER)
    found = issue(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["cells"] == "3, 7"

    simulator.set_cell_voltage(3, 3.3)
    simulator.set_cell_voltage(7, 3.3)
    await polls(hass, freezer, CLEAR_AFTER)
    assert issue(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE) is None


@pytest.mark.parametrize("sim_config", [SimulatorConfig(cells=8, battery_type=BatteryType.LTO, seed=1)])
async def test_cell_range_follows_chemistry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """3.3 V is normal for LiFePO4 but implausible for an LTO cell."""
    assert raised(hass, init_integration) == set()
    simulator.set_cell_voltage(2, 3.3)
    await polls(hass, freezer, RAISE_AFTER)
    found = issue(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["chemistry"] == "LTO"
    assert found.translation_placeholders["cells"] == "2"


async def test_string_count_mismatch(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A string count that differs from the cells measured raises a warning (its register is only
    inferred); setting it right clears it."""
    address = BY_KEY["string_count"].address
    simulator.write_word(address, 15)
    await polls(hass, freezer, RAISE_AFTER)

    found = issue(hass, init_integration, ISSUE_STRING_COUNT)
    assert found is not None
    assert found.translation_key == ISSUE_STRING_COUNT
    assert found.severity is ir.IssueSeverity.WARNING  # the register's meaning is inferred
    assert found.translation_placeholders == {"title": TITLE, "configured": "15", "reported": "16"}

    simulator.write_word(address, 16)
    await polls(hass, freezer, CLEAR_AFTER)
    assert issue(hass, init_integration, ISSUE_STRING_COUNT) is None


@pytest.mark.parametrize("sim_config", [SimulatorConfig(cells=3, seed=1)])
async def test_a_supported_pack_under_10_volts_raises_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Issue 21: a 3S LiFePO4 pack at its nominal 3.2 V per cell (9.6 V) is one the manual
    supports (3~24S): the manual's minimum is 2 V, not 10 V."""
    for cell in range(1, 4):
        simulator.set_cell_voltage(cell, 3.2)
    await polls(hass, freezer, RAISE_AFTER + 1)
    assert raised(hass, init_integration) == set()


@pytest.mark.parametrize("sim_config", [SimulatorConfig(cells=4, seed=1)])
async def test_pack_voltage_low(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A 4S pack that reads 1.6 V (0.4 V per cell: a missing B- or a dead pack) is below the
    module's minimum."""
    assert issue(hass, init_integration, ISSUE_PACK_VOLTAGE_LOW) is None
    for cell in range(1, 5):
        simulator.set_cell_voltage(cell, 0.4)
    await polls(hass, freezer, RAISE_AFTER)

    found = issue(hass, init_integration, ISSUE_PACK_VOLTAGE_LOW)
    assert found is not None
    assert found.translation_key == ISSUE_PACK_VOLTAGE_LOW
    assert found.translation_placeholders == {"title": TITLE, "minimum": "2"}
    # Such cells are implausible for any chemistry too.
    assert raised(hass, init_integration) == {ISSUE_PACK_VOLTAGE_LOW, ISSUE_CELL_OUT_OF_RANGE}

    for cell in range(1, 5):
        simulator.release_cell(cell)
    await polls(hass, freezer, CLEAR_AFTER)
    assert issue(hass, init_integration, ISSUE_PACK_VOLTAGE_LOW) is None


async def test_stopped_answering(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Silent for RAISE_AFTER polls in a row raises a warning that names what the silence may be;
    the first answer clears it.

    The module really falls asleep here (the simulator follows the frozen clock), so the first
    request after the silence only wakes it and is lost; the client's retry gets the answer.
    """
    coordinator = init_integration.runtime_data
    simulator.write_word(BY_KEY["sleep_time"].address, 30)
    await advance(hass, freezer, UPDATE_INTERVAL)

    simulator.silent = True
    for _ in range(RAISE_AFTER - 1):
        await poll_unanswered(hass, freezer, coordinator)
    assert issue(hass, init_integration, ISSUE_STOPPED_ANSWERING) is None  # silent, but not for long yet
    await poll_unanswered(hass, freezer, coordinator)
    found = issue(hass, init_integration, ISSUE_STOPPED_ANSWERING)
    assert found is not None
    assert found.translation_key == ISSUE_STOPPED_ANSWERING
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_placeholders == {"title": TITLE}
    for _ in range(30 // UPDATE_INTERVAL):  # 30 s of silence on the test clock: it sleeps
        if simulator.asleep:
            break
        await poll_unanswered(hass, freezer, coordinator)
    assert simulator.asleep

    simulator.silent = False
    client = coordinator.client
    freezer.tick(timedelta(seconds=UPDATE_INTERVAL))
    async_fire_time_changed(hass)
    await run_out_timeouts(hass, freezer, lambda: coordinator.last_update_success)
    assert not simulator.asleep
    assert client.stats.retries > 0  # the wake-up request was lost
    assert coordinator.last_update_success
    assert issue(hass, init_integration, ISSUE_STOPPED_ANSWERING) is None


async def test_a_few_lost_polls_raise_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Fewer than RAISE_AFTER unanswered polls in a row (a busy proxy) raise nothing, and an
    answer in between starts the count again."""
    coordinator = init_integration.runtime_data
    simulator.write_word(BY_KEY["sleep_time"].address, SLEEP_NEVER)
    for _ in range(2):
        simulator.silent = True
        for _ in range(RAISE_AFTER - 1):
            await poll_unanswered(hass, freezer, coordinator)
        assert not coordinator.last_update_success
        simulator.silent = False
        await advance(hass, freezer, UPDATE_INTERVAL)
        assert coordinator.last_update_success
    assert issue(hass, init_integration, ISSUE_STOPPED_ANSWERING) is None


async def test_issues_outlive_a_reload_and_go_with_the_entry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A reload keeps the issues whose findings still hold, ignored ones ignored: they are not
    raised anew; removing the entry takes its issues with it."""
    simulator.set_cell_voltage(1, 0.0)
    simulator.write_word(BY_KEY["string_count"].address, 12)
    await polls(hass, freezer, RAISE_AFTER)
    assert raised(hass, init_integration) == {ISSUE_CELL_OUT_OF_RANGE, ISSUE_STRING_COUNT}
    ir.async_ignore_issue(hass, DOMAIN, f"{ISSUE_STRING_COUNT}_{init_integration.entry_id}", True)
    seen = registry_events(hass, init_integration, ISSUE_STRING_COUNT)

    assert await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    await polls(hass, freezer, 1)
    assert raised(hass, init_integration) == {ISSUE_CELL_OUT_OF_RANGE, ISSUE_STRING_COUNT}
    string_count = issue(hass, init_integration, ISSUE_STRING_COUNT)
    assert string_count is not None
    assert string_count.dismissed_version is not None  # still ignored
    assert seen == []  # neither removed nor raised anew

    # Another finding (another count) is a new issue: shown again.
    simulator.write_word(BY_KEY["string_count"].address, 14)
    await polls(hass, freezer, 1)
    string_count = issue(hass, init_integration, ISSUE_STRING_COUNT)
    assert string_count is not None
    assert string_count.translation_placeholders is not None
    assert string_count.translation_placeholders["configured"] == "14"
    assert string_count.dismissed_version is None

    assert await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert raised(hass, init_integration) == set()


async def test_disabling_the_entry_withdraws_its_issues(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A disabled entry polls no more, so nothing would clear its issues: they go with it."""
    simulator.set_cell_voltage(1, 0.0)
    await polls(hass, freezer, RAISE_AFTER)
    assert raised(hass, init_integration) == {ISSUE_CELL_OUT_OF_RANGE}
    assert await hass.config_entries.async_set_disabled_by(init_integration.entry_id, ConfigEntryDisabler.USER)
    await hass.async_block_till_done()
    assert raised(hass, init_integration) == set()


async def reload_unanswered(hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry) -> None:
    """Reload ``entry`` while its module is silent: setup fails after its timeouts, and retries."""
    reload = hass.async_create_task(hass.config_entries.async_reload(entry.entry_id))
    await run_out_timeouts(hass, freezer, reload.done)
    assert entry.state is ConfigEntryState.SETUP_RETRY


def setup_ends(entry: MockConfigEntry) -> list[ConfigEntryState]:
    """The states ``entry``'s setups end in (retrying or loaded), as they come."""
    ended: list[ConfigEntryState] = []

    @callback
    def changed() -> None:
        if entry.state in (ConfigEntryState.SETUP_RETRY, ConfigEntryState.LOADED):
            ended.append(entry.state)

    entry.async_on_state_change(changed)
    return ended


async def retry_setup(hass: HomeAssistant, freezer: FrozenDateTimeFactory, ended: list[ConfigEntryState]) -> None:
    """Let Home Assistant's next setup retry run to its end (its requests time out on the test clock)."""
    before = len(ended)
    freezer.tick(timedelta(seconds=90))  # past the longest of the retry delays
    async_fire_time_changed(hass)
    await run_out_timeouts(hass, freezer, lambda: len(ended) > before)


async def test_stopped_answering_outlives_a_reload_while_silent(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A module that is silent keeps its "stopped answering" warning through a reload, whose
    setup then fails and retries, still ignored if it was; its first answer clears it."""
    coordinator = init_integration.runtime_data
    simulator.write_word(BY_KEY["sleep_time"].address, SLEEP_NEVER)
    simulator.silent = True
    for _ in range(RAISE_AFTER):
        await poll_unanswered(hass, freezer, coordinator)
    assert raised(hass, init_integration) == {ISSUE_STOPPED_ANSWERING}
    ir.async_ignore_issue(hass, DOMAIN, f"{ISSUE_STOPPED_ANSWERING}_{init_integration.entry_id}", True)

    await reload_unanswered(hass, freezer, init_integration)
    assert raised(hass, init_integration) == {ISSUE_STOPPED_ANSWERING}
    ended = setup_ends(init_integration)
    for _ in range(2):
        await retry_setup(hass, freezer, ended)
        assert ended[-1] is ConfigEntryState.SETUP_RETRY
        found = issue(hass, init_integration, ISSUE_STOPPED_ANSWERING)
        assert found is not None
        assert found.dismissed_version is not None

    simulator.silent = False
    await retry_setup(hass, freezer, ended)
    assert init_integration.state is ConfigEntryState.LOADED
    assert raised(hass, init_integration) == set()


async def test_a_module_silent_from_the_start_is_reported_after_a_few_setups(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, simulator: SimulatedBalancer, config_entry: MockConfigEntry
) -> None:
    """Home Assistant started while the module is silent: setup fails and retries, and after
    RAISE_AFTER failed setups in a row the warning is raised, as after as many failed polls."""
    simulator.silent = True
    ended = setup_ends(config_entry)
    setup = hass.async_create_task(hass.config_entries.async_setup(config_entry.entry_id))
    await run_out_timeouts(hass, freezer, setup.done)
    for _ in range(RAISE_AFTER - 1):
        assert issue(hass, config_entry, ISSUE_STOPPED_ANSWERING) is None
        await retry_setup(hass, freezer, ended)
    assert ended == [ConfigEntryState.SETUP_RETRY] * RAISE_AFTER
    assert raised(hass, config_entry) == {ISSUE_STOPPED_ANSWERING}

    simulator.silent = False
    await retry_setup(hass, freezer, ended)
    assert config_entry.state is ConfigEntryState.LOADED
    assert raised(hass, config_entry) == set()
    assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_a_warning_from_before_a_restart_is_kept_while_the_module_is_silent(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, simulator: SimulatedBalancer, config_entry: MockConfigEntry
) -> None:
    """After a restart the issue registry still holds the (ignored) warning: a setup that finds
    the module silent keeps it as it is."""
    issue_id = f"{ISSUE_STOPPED_ANSWERING}_{config_entry.entry_id}"
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_STOPPED_ANSWERING,
        translation_placeholders={"title": TITLE},
    )
    ir.async_ignore_issue(hass, DOMAIN, issue_id, True)
    simulator.silent = True
    setup = hass.async_create_task(hass.config_entries.async_setup(config_entry.entry_id))
    await run_out_timeouts(hass, freezer, setup.done)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    found = issue(hass, config_entry, ISSUE_STOPPED_ANSWERING)
    assert found is not None
    assert found.dismissed_version is not None

    ended = setup_ends(config_entry)
    simulator.silent = False
    await retry_setup(hass, freezer, ended)
    assert config_entry.state is ConfigEntryState.LOADED
    assert raised(hass, config_entry) == set()
    assert await hass.config_entries.async_unload(config_entry.entry_id)


# --- hysteresis: readings at a limit, and drifting readings -------------------------------------


def registry_events(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> list[str]:
    """The issue registry's events (create, update, remove) for issue ``key`` of ``entry``, as they come."""
    seen: list[str] = []
    wanted = f"{key}_{entry.entry_id}"

    @callback
    def listener(event: Event[ir.EventIssueRegistryUpdatedData]) -> None:
        if event.data["domain"] == DOMAIN and event.data["issue_id"] == wanted:
            seen.append(event.data["action"])

    hass.bus.async_listen(ir.EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, listener)
    return seen


async def test_cell_at_the_limit_does_not_flap(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A LiFePO4 cell alternating 3.799 / 3.801 V (the limit is 3.80 V) raises nothing; once it
    stays above, one issue is raised that alternating readings neither clear nor rewrite; it
    clears once the cell is back inside the range by the margin for as many polls."""
    events = registry_events(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    for volts in (3.799, 3.801) * 5:
        simulator.set_cell_voltage(5, volts)
        await polls(hass, freezer, 1)
    assert events == []

    simulator.set_cell_voltage(5, 3.801)
    await polls(hass, freezer, RAISE_AFTER)
    assert events == ["create"]
    for volts in (3.799, 3.801) * 5:
        simulator.set_cell_voltage(5, volts)
        await polls(hass, freezer, 1)
    assert events == ["create"]

    simulator.set_cell_voltage(5, 3.4)
    await polls(hass, freezer, CLEAR_AFTER - 1)
    assert events == ["create"]
    await polls(hass, freezer, 1)
    assert events == ["create", "remove"]


async def test_drifting_cell_does_not_rewrite_its_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """An out-of-range cell whose reading drifts from poll to poll leaves its issue as it is:
    no live reading is in the placeholders. Another cell going bad does update it."""
    events = registry_events(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    simulator.set_cell_voltage(2, 4.05)
    await polls(hass, freezer, RAISE_AFTER)
    for step in range(10):
        simulator.set_cell_voltage(2, 4.05 + step / 100)
        await polls(hass, freezer, 1)
    assert events == ["create"]

    simulator.set_cell_voltage(9, 0.0)
    await polls(hass, freezer, RAISE_AFTER)
    assert events == ["create", "update"]
    found = issue(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["cells"] == "2, 9"


@pytest.mark.parametrize("sim_config", [SimulatorConfig(cells=4, seed=1)])
async def test_pack_voltage_near_the_minimum_does_not_flap(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A 4S pack around the 2 V minimum (the pack register counts 0.1 V): raised once it stays
    below, kept while it hovers just above, and cleared once it is clearly above; its
    placeholders do not follow the reading."""
    events = registry_events(hass, init_integration, ISSUE_PACK_VOLTAGE_LOW)
    for cell_volts in (0.5, 0.525) * 3:  # pack 2.0 / 2.1 V
        for cell in range(1, 5):
            simulator.set_cell_voltage(cell, cell_volts)
        await polls(hass, freezer, 1)
    assert events == []

    for cell_volts in (0.475, 0.45, 0.425, 0.4):  # 1.9 … 1.6 V
        for cell in range(1, 5):
            simulator.set_cell_voltage(cell, cell_volts)
        await polls(hass, freezer, 1)
    assert events == ["create"]
    for cell in range(1, 5):
        simulator.set_cell_voltage(cell, 0.55)  # 2.2 V: above the minimum, not by the margin
    await polls(hass, freezer, CLEAR_AFTER + 1)
    assert events == ["create"]
    for cell in range(1, 5):
        simulator.release_cell(cell)
    await polls(hass, freezer, CLEAR_AFTER)
    assert events == ["create", "remove"]


# --- a battery type change that leaves the turn-on voltage outside its range --------------------


async def test_battery_type_change_raises_the_turn_on_voltage_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """LiFePO4 → LTO through the select leaves 3.3 V, above LTO's 2.8 V: a repair names the
    setting and the range, nothing else is written, and setting a voltage in range clears it."""
    select = entity_registry.async_get_entity_id(Platform.SELECT, DOMAIN, f"{init_integration.unique_id}_battery_type")
    number = entity_registry.async_get_entity_id(
        Platform.NUMBER, DOMAIN, f"{init_integration.unique_id}_balance_start_voltage"
    )
    assert select is not None
    assert number is not None
    assert simulator.value("balance_start_voltage") == pytest.approx(3.3)
    assert issue(hass, init_integration, ISSUE_BALANCE_VOLTAGE) is None

    await select_option(hass, select, "lto")

    assert simulator.value("battery_type") == BatteryType.LTO.value
    assert simulator.value("balance_start_voltage") == pytest.approx(3.3)  # not written for the user
    assert simulator.stats.writes == 1
    found = issue(hass, init_integration, ISSUE_BALANCE_VOLTAGE)
    assert found is not None
    assert found.translation_key == ISSUE_BALANCE_VOLTAGE
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_placeholders == {
        "title": TITLE,
        "value": "3.30",
        "chemistry": "LTO",
        "minimum": "1.80",
        "maximum": "2.80",
    }

    await set_number(hass, number, 2.6)
    assert simulator.value("balance_start_voltage") == pytest.approx(2.6)
    assert issue(hass, init_integration, ISSUE_BALANCE_VOLTAGE) is None


# --- the module's balancing reports against the expectation -----------------------------------

#: Seconds between the polls of the balancing tests: the doubt needs minutes of polls.
MINUTE = 60


async def _expect_balancing(hass: HomeAssistant, freezer: FrozenDateTimeFactory, simulator: SimulatedBalancer) -> None:
    """Pin the cells so that balancing is expected (3.40 V above the turn-on voltage, 100 mV)."""
    simulator.set_cell_voltage(1, 3.40)
    simulator.set_cell_voltage(2, 3.30)
    await polls(hass, freezer, 1)
    assert simulator.balancing


@pytest.mark.parametrize(
    ("forced", "registers"),
    [
        ({"balancing": 0}, "0x0034"),
        ({"balancing": 0, "balance_current": BY_KEY["balance_current"].offset}, "0x0034, 0x0040"),
    ],
    ids=["flag", "flag_and_current"],
)
async def test_balancing_reports_in_doubt(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    forced: dict[str, int],
    registers: str,
) -> None:
    """Registers that read "not balancing" for 10 minutes while balancing is expected raise a
    warning naming them and where to send the diagnostics; agreeing again clears it."""
    await _expect_balancing(hass, freezer, simulator)
    for key, raw in forced.items():
        simulator.write_word(BY_KEY[key].address, raw)
    for _ in range(int(DOUBT_AFTER // MINUTE)):
        await advance(hass, freezer, MINUTE)
        assert issue(hass, init_integration, ISSUE_VERIFY_BALANCING) is None
    await advance(hass, freezer, MINUTE)

    found = issue(hass, init_integration, ISSUE_VERIFY_BALANCING)
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    integration = await async_get_integration(hass, DOMAIN)
    assert found.translation_placeholders == {
        "title": TITLE,
        "registers": registers,
        "minutes": "10",
        "issue_tracker": f"{integration.issue_tracker}/new?template=module_report.yml",
    }
    assert raised(hass, init_integration) == {ISSUE_VERIFY_BALANCING}

    for key in forced:
        simulator.release_word(BY_KEY[key].address)
    await polls(hass, freezer, CLEAR_AFTER - 1)
    assert issue(hass, init_integration, ISSUE_VERIFY_BALANCING) is not None
    await polls(hass, freezer, 1)
    assert issue(hass, init_integration, ISSUE_VERIFY_BALANCING) is None


async def test_balancing_doubt_needs_sustained_disagreement(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A report that agrees once in a while (a lagging register) starts the 10 minutes again;
    a register that reads "balancing" while nothing calls for it is in doubt too."""
    address = BY_KEY["balancing"].address
    await _expect_balancing(hass, freezer, simulator)
    for _ in range(3):
        simulator.write_word(address, 0)
        for _ in range(int(DOUBT_AFTER // MINUTE) - 1):
            await advance(hass, freezer, MINUTE)
        simulator.release_word(address)
        await advance(hass, freezer, MINUTE)
    assert issue(hass, init_integration, ISSUE_VERIFY_BALANCING) is None

    simulator.write_word(BY_KEY["balancer_enabled"].address, 0)  # nothing expected any more
    simulator.write_word(address, 1)
    for _ in range(int(DOUBT_AFTER // MINUTE) + 1):
        await advance(hass, freezer, MINUTE)
    found = issue(hass, init_integration, ISSUE_VERIFY_BALANCING)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["registers"] == "0x0034"


#: What the firmware sends for a cell it cannot read (0xFFFF): the cell is unknown, not fixed.
ABSENT_CELL_VOLTS = 65.535


async def test_a_cell_that_cannot_be_read_now_and_then_keeps_its_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A broken sampling lead: cell 7 reads 0 V, now and then "absent" (0xFFFF). An unreadable
    reading says nothing about the cell: the issue neither clears on it (nor flaps, which would
    also bring back an issue the user ignored), and alternating readings still raise it."""
    events = registry_events(hass, init_integration, ISSUE_CELL_OUT_OF_RANGE)
    simulator.set_cell_voltage(7, 0.0)
    await polls(hass, freezer, RAISE_AFTER)
    assert events == ["create"]
    simulator.set_cell_voltage(7, ABSENT_CELL_VOLTS)
    await polls(hass, freezer, 1)
    simulator.set_cell_voltage(7, 0.0)
    await polls(hass, freezer, 1)
    assert events == ["create"], "one unreadable poll cleared the issue of a cell still at 0 V"
