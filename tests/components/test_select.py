"""Select platform (battery type), against the simulated module on a real TCP socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import _patch

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from aiodalybalancer.registers import CHEMISTRY, BatteryType, register
from aiodalybalancer.tools.simulator import SimulatedBalancer
from custom_components.daly_active_balance.const import DOMAIN
from custom_components.daly_active_balance.issues import ISSUE_BALANCE_VOLTAGE, issue_id

from .conftest import EntityIdFinder, Poll, select_option

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture(scope="module", autouse=True)
def translations_per_test(translations_once: _patch[Any]) -> Iterator[None]:
    """Each test's Home Assistant starts with no translations loaded, as Home Assistant does.

    The test harness keeps them loaded for the whole session, so a test would find the
    translations an earlier one loaded, whatever the code under test loads. Module-scoped, so
    it takes effect before the test's Home Assistant is made.
    """
    translations_once.stop()
    yield
    translations_once.start()


@pytest.fixture
def platforms() -> list[Platform]:
    """Set up the select platform alone."""
    return [Platform.SELECT]


@pytest.fixture
def battery_type(entity_id: EntityIdFinder, init_integration: MockConfigEntry) -> str:
    """The battery type select's entity id."""
    return entity_id(Platform.SELECT, "battery_type")


async def test_snapshot(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    init_integration: MockConfigEntry,
) -> None:
    """The battery type select: options, category and state."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_options_are_the_chemistries(hass: HomeAssistant, battery_type: str) -> None:
    """The options are the register table's chemistries."""
    state = hass.states.get(battery_type)
    assert state is not None
    assert state.attributes["options"] == [str(t) for t in BatteryType]


@pytest.mark.parametrize("option", [BatteryType.LI_ION, BatteryType.LTO])
async def test_select_writes_module(
    hass: HomeAssistant, simulator: SimulatedBalancer, battery_type: str, option: BatteryType
) -> None:
    """A chosen battery type reaches the module and is read back into the state."""
    assert simulator.value("battery_type") == BatteryType.LIFEPO4
    await select_option(hass, battery_type, option)
    assert simulator.value("battery_type") == option
    assert hass.states.get(battery_type).state == option


async def test_plausible_range_follows_the_chemistry(
    hass: HomeAssistant, simulator: SimulatedBalancer, battery_type: str
) -> None:
    """The attributes give the chosen chemistry's plausible cell range (what the cells card scales to)."""
    for chemistry in (BatteryType.LIFEPO4, BatteryType.LTO):
        if chemistry is not BatteryType.LIFEPO4:
            await select_option(hass, battery_type, chemistry)
        attributes = hass.states.get(battery_type).attributes
        expected = CHEMISTRY[chemistry]
        assert (attributes["plausible_min"], attributes["plausible_max"]) == (
            expected.plausible_min,
            expected.plausible_max,
        )
    assert CHEMISTRY[BatteryType.LTO] != CHEMISTRY[BatteryType.LIFEPO4]


async def test_unknown_option_refused(hass: HomeAssistant, simulator: SimulatedBalancer, battery_type: str) -> None:
    """An option that is not a chemistry never reaches the module."""
    with pytest.raises(ServiceValidationError):
        await select_option(hass, battery_type, "lead_acid")
    assert simulator.value("battery_type") == BatteryType.LIFEPO4


async def test_ignored_write_raises(hass: HomeAssistant, simulator: SimulatedBalancer, battery_type: str) -> None:
    """A write the module echoes but does not take raises, and the state stays the real value."""
    simulator.ignore_writes.add("battery_type")
    with pytest.raises(HomeAssistantError) as caught:
        await select_option(hass, battery_type, BatteryType.LTO)
    assert caught.value.translation_key == "write_not_accepted"
    assert simulator.value("battery_type") == BatteryType.LIFEPO4
    assert hass.states.get(battery_type).state == BatteryType.LIFEPO4


@pytest.mark.parametrize(("language", "shown"), [("en", "Li-ion (NMC)"), ("de", "Li-Ion (NMC)")])
async def test_repair_names_the_battery_type_as_the_select_shows_it(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
    entity_id: EntityIdFinder,
    language: str,
    shown: str,
) -> None:
    """Issue 21 item 13: the repair says "Li-ion (NMC)" as the select does, not the key "li_ion"."""
    hass.config.language = language
    simulator.write_word(register("balance_start_voltage").address, 2900)  # fine for LiFePO4 only
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    try:
        select = entity_id(Platform.SELECT, "battery_type")
        await select_option(hass, select, BatteryType.LI_ION)
        issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id(config_entry.entry_id, ISSUE_BALANCE_VOLTAGE))
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["chemistry"] == shown
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


async def test_an_ignored_repair_stays_ignored_when_home_assistant_changes_language(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """The user ignores the turn-on voltage repair, then switches Home Assistant to German: the
    finding is the same (the battery type's name is only spelt another way), so it stays ignored."""
    hass.config.language = "en"
    simulator.write_word(register("balance_start_voltage").address, 2900)  # fine for LiFePO4 only
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    key = issue_id(config_entry.entry_id, ISSUE_BALANCE_VOLTAGE)
    try:
        await select_option(hass, entity_id(Platform.SELECT, "battery_type"), BatteryType.LI_ION)
        assert ir.async_get(hass).async_get_issue(DOMAIN, key) is not None
        ir.async_ignore_issue(hass, DOMAIN, key, True)

        await hass.config.async_update(language="de")  # as the user's profile settings do
        await hass.async_block_till_done()
        assert await hass.config_entries.async_reload(config_entry.entry_id)
        await hass.async_block_till_done()
        issue = ir.async_get(hass).async_get_issue(DOMAIN, key)
        assert issue is not None
        assert issue.translation_placeholders is not None
        assert issue.dismissed_version is not None, (
            f"the ignored repair came back after a language change, naming {issue.translation_placeholders['chemistry']!r}"
        )
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


@pytest.fixture
async def ignored_li_ion_repair(
    hass: HomeAssistant, simulator: SimulatedBalancer, config_entry: MockConfigEntry, entity_id: EntityIdFinder
) -> AsyncIterator[str]:
    """The turn-on voltage repair of a Li-ion pack (2.90 V is fine for LiFePO4 only), ignored by
    the user in English; its issue id. The entry is unloaded afterwards."""
    hass.config.language = "en"
    simulator.write_word(register("balance_start_voltage").address, 2900)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    key = issue_id(config_entry.entry_id, ISSUE_BALANCE_VOLTAGE)
    try:
        await select_option(hass, entity_id(Platform.SELECT, "battery_type"), BatteryType.LI_ION)
        ir.async_ignore_issue(hass, DOMAIN, key, True)
        yield key
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()


def shown_issue(hass: HomeAssistant, key: str) -> tuple[str, bool]:
    """The battery type the issue ``key`` names, and whether it is ignored."""
    issue = ir.async_get(hass).async_get_issue(DOMAIN, key)
    assert issue is not None
    assert issue.translation_placeholders is not None
    return issue.translation_placeholders["chemistry"], issue.dismissed_version is not None


async def test_after_a_language_change_and_a_reload_the_repair_speaks_the_new_language(
    hass: HomeAssistant, config_entry: MockConfigEntry, ignored_li_ion_repair: str
) -> None:
    """The reload's first poll (before the platforms load their translations) names the battery
    type in the new language, and the repair stays ignored."""
    await hass.config.async_update(language="de")
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()
    assert shown_issue(hass, ignored_li_ion_repair) == ("Li-Ion (NMC)", True)


async def test_a_language_change_without_a_reload_is_no_new_finding(
    hass: HomeAssistant, poll: Poll, ignored_li_ion_repair: str
) -> None:
    """The next poll after a language change names the battery type in the new language and
    leaves the ignored repair ignored."""
    await hass.config.async_update(language="de")
    await hass.async_block_till_done()
    await poll()
    assert shown_issue(hass, ignored_li_ion_repair) == ("Li-Ion (NMC)", True)


async def test_another_battery_type_shows_an_ignored_repair_again(
    hass: HomeAssistant, entity_id: EntityIdFinder, ignored_li_ion_repair: str
) -> None:
    """A real change of the finding (2.90 V is outside the LTO range too) is shown again."""
    await select_option(hass, entity_id(Platform.SELECT, "battery_type"), BatteryType.LTO)
    assert shown_issue(hass, ignored_li_ion_repair) == ("LTO", False)


async def test_an_ignored_repair_stays_ignored_through_a_restart_in_another_language(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """Home Assistant restarts in German: the issue registry brings back the ignored repair as
    it stores it (no placeholders, no data); the first poll names the battery type in German
    and the repair stays ignored."""
    key = issue_id(config_entry.entry_id, ISSUE_BALANCE_VOLTAGE)
    hass_storage[ir.STORAGE_KEY] = {
        "version": ir.STORAGE_VERSION_MAJOR,
        "minor_version": ir.STORAGE_VERSION_MINOR,
        "key": ir.STORAGE_KEY,
        "data": {
            "issues": [
                {
                    "created": "2026-01-01T00:00:00+00:00",
                    "dismissed_version": "2026.1.0",
                    "domain": DOMAIN,
                    "is_persistent": False,
                    "issue_id": key,
                }
            ]
        },
    }
    await ir.async_load(hass)
    hass.config.language = "de"
    simulator.write_word(register("balance_start_voltage").address, 2900)
    simulator.write_word(register("battery_type").address, register("battery_type").encode(BatteryType.LI_ION))
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    try:
        assert shown_issue(hass, key) == ("Li-Ion (NMC)", True)
    finally:
        await hass.config_entries.async_unload(config_entry.entry_id)
        await hass.async_block_till_done()
