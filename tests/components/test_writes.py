"""Writes through Home Assistant's services, against the simulator on a real TCP socket
(issue: "Defects found by hostile testing", items 1, 9 and 12).

* A poll that falls due while a write holds the link must not bring the old value back.
* A write that wakes a sleeping module (which drops what woke it) is sent once more.
* A write the module does not take is reported the way the entity shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import dataclasses
from datetime import timedelta
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from aiodalybalancer.frames import Function
from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import SLEEP_NEVER, DecodedValue, register
from aiodalybalancer.tools.simulator import SimulatedBalancer
from custom_components.daly_active_balance import writes
from custom_components.daly_active_balance.const import DOMAIN
from custom_components.daly_active_balance.coordinator import DalyCoordinator

from .conftest import select_option, set_number, turn_switch

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: The client's answer timeout where a test waits one out on purpose (real seconds).
SHORT = 0.2


def entity_id(hass: HomeAssistant, entry: MockConfigEntry, platform: Platform, key: str) -> str:
    """The entity id of ``entry``'s entity for register ``key``."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{entry.unique_id}_{key}")
    assert found is not None, key
    return found


def record_states(hass: HomeAssistant, entity: str) -> list[str]:
    """Every state ``entity`` takes from now on, in order (what history and automations see)."""
    shown: list[str] = []

    def changed(event: Event[Any]) -> None:
        if event.data["entity_id"] == entity and event.data["new_state"] is not None:
            shown.append(event.data["new_state"].state)

    hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    return shown


def hold_writes(coordinator: DalyCoordinator, monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every 0x06 write at the link until the returned gate opens (a slow line).

    Returns ``(held, gate)``: ``held`` is set once a write waits at the link, holding it.
    """
    transport = coordinator.client.transport
    original = transport.write
    held, gate = asyncio.Event(), asyncio.Event()

    async def write(data: bytes) -> None:
        if data[1] == Function.WRITE_SINGLE:
            held.set()
            await gate.wait()
        await original(data)

    monkeypatch.setattr(transport, "write", write)
    return held, gate


Change = Callable[[HomeAssistant, str], Any]


@pytest.mark.parametrize(
    ("platform", "key", "change", "stored", "before", "after"),
    [
        (
            Platform.NUMBER,
            "sleep_time",
            lambda hass, entity: set_number(hass, entity, 600, settle=False),
            600,
            "3600.0",
            "600.0",
        ),
        (
            Platform.SELECT,
            "battery_type",
            lambda hass, entity: select_option(hass, entity, "li_ion", settle=False),
            "li_ion",
            "lifepo4",
            "li_ion",
        ),
    ],
    ids=["number", "select"],
)
async def test_a_poll_during_a_write_never_brings_the_old_value_back(
    hass: HomeAssistant,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    platform: Platform,
    key: str,
    change: Change,
    stored: object,
    before: str,
    after: str,
) -> None:
    """Item 1: the poll timer falls due while the write holds the link. The state goes from the
    old value to the new one and stays there: history never shows a revert."""
    coordinator: DalyCoordinator = init_integration.runtime_data
    entity = entity_id(hass, init_integration, platform, key)
    assert hass.states.get(entity).state == before
    shown = record_states(hass, entity)
    held, gate = hold_writes(coordinator, monkeypatch)

    writing = hass.async_create_task(change(hass, entity))
    await held.wait()  # the write holds the link
    assert coordinator.update_interval is not None
    async_fire_time_changed(hass, dt_util.utcnow() + coordinator.update_interval + timedelta(seconds=1))
    gate.set()
    await writing
    await hass.async_block_till_done(wait_background_tasks=True)

    assert simulator.value(key) == stored
    assert shown == [after]
    # The next poll reads the settings again and agrees.
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(entity).state == after


async def test_a_write_that_wakes_the_sleeping_module_is_sent_again(
    hass: HomeAssistant, simulator: SimulatedBalancer, init_integration: MockConfigEntry
) -> None:
    """Item 9: the write is what wakes the module, and the module drops it (no echo, the read-back
    shows the old value). It is sent once more and taken; no error."""
    coordinator: DalyCoordinator = init_integration.runtime_data
    coordinator.client.timeout = SHORT
    entity = entity_id(hass, init_integration, Platform.NUMBER, "sleep_time")
    simulator.advance(simulator.value("sleep_time") + 1)  # type: ignore[operator]
    assert simulator.asleep

    await set_number(hass, entity, 600)

    assert simulator.stats.wakeups == 1
    assert simulator.stats.writes == 1  # the first was lost to the wake-up, the second taken
    assert simulator.value("sleep_time") == 600
    assert float(hass.states.get(entity).state) == 600


async def test_a_write_that_still_does_not_take_after_the_wake_up_is_reported(
    hass: HomeAssistant, simulator: SimulatedBalancer, init_integration: MockConfigEntry
) -> None:
    """Item 9, the other side: the write is sent again once only; a module that still does not
    take it is reported (never a silent success, never a third write)."""
    coordinator: DalyCoordinator = init_integration.runtime_data
    coordinator.client.timeout = SHORT
    simulator.ignore_writes.add("sleep_time")
    simulator.advance(simulator.value("sleep_time") + 1)  # type: ignore[operator]
    with pytest.raises(HomeAssistantError) as caught:
        await set_number(hass, entity_id(hass, init_integration, Platform.NUMBER, "sleep_time"), 600, settle=False)
    assert caught.value.translation_key == "write_not_accepted"
    assert simulator.stats.writes == 1  # the resend reached the module, which ignored it
    assert simulator.stats.wakeups == 1


@pytest.mark.parametrize(
    ("platform", "key", "change", "placeholders", "message"),
    [
        (
            Platform.NUMBER,
            "balance_start_delta",
            lambda hass, entity: set_number(hass, entity, 35, settle=False),
            {"setting": "Balance turn-on difference", "value": "35 mV", "actual": "20 mV"},
            "The balancer did not take 35 mV for Balance turn-on difference; it still reports 20 mV",
        ),
        (
            Platform.SELECT,
            "battery_type",
            lambda hass, entity: select_option(hass, entity, "li_ion", settle=False),
            {"setting": "Battery type", "value": "Li-ion (NMC)", "actual": "LiFePO4"},
            "The balancer did not take Li-ion (NMC) for Battery type; it still reports LiFePO4",
        ),
        (
            Platform.SWITCH,
            "balancer_enabled",
            lambda hass, entity: turn_switch(hass, entity, on=False, settle=False),
            {"setting": "Balancer", "value": "Off", "actual": "On"},
            "The balancer did not take Off for Balancer; it still reports On",
        ),
    ],
    ids=["number", "select", "switch"],
)
async def test_write_not_accepted_speaks_like_the_entity(
    hass: HomeAssistant,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    platform: Platform,
    key: str,
    change: Change,
    placeholders: dict[str, str],
    message: str,
) -> None:
    """Item 12: the error names the setting by the entity's translated name and gives both values
    in the entity's unit (mV here, where the register keeps volts) or its translated option."""
    simulator.ignore_writes.add(key)
    with pytest.raises(HomeAssistantError) as caught:
        await change(hass, entity_id(hass, init_integration, platform, key))
    assert not isinstance(caught.value, ServiceValidationError)
    assert caught.value.translation_key == "write_not_accepted"
    assert caught.value.translation_placeholders == placeholders
    assert str(caught.value) == message


# --- where a verified value lands: it follows from the register -------------------------------


@pytest.mark.parametrize(
    ("setting", "written", "field", "expected"),
    [
        (writes.BALANCE_START_VOLTAGE, 3.45, "balance_start_voltage", 3.45),
        (writes.BALANCE_START_DELTA, 0.035, "balance_start_delta", 0.035),
        (writes.SLEEP_TIME, 600, "sleep_time", 600),
        (writes.SLEEP_TIME, SLEEP_NEVER, "sleep_time", SLEEP_NEVER),
        (writes.STRING_COUNT, 8, "string_count", 8),
        (writes.BATTERY_TYPE, "li_ion", "battery_type", "li_ion"),
        (writes.BALANCER_ENABLED, False, "balancer_enabled", False),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_verified_value_lands_in_the_field_its_register_names(
    setting: writes.Writable, written: DecodedValue, field: str, expected: object
) -> None:
    """The field a write updates is its register's key, in Settings or in Status, with the type
    the register's kind decodes to; the other half of the data is left as it was."""
    status = Status(cell_voltages=(3.3,) * 4, cell_count=4, balancer_enabled=True)
    settings = Settings(
        string_count=4, battery_type="lifepo4", sleep_time=3600, balance_start_voltage=3.4, balance_start_delta=0.02
    )
    new_status, new_settings = setting.apply(status, settings, written)
    in_status = field in {f.name for f in dataclasses.fields(Status)}
    changed, kept = (new_status, new_settings) if in_status else (new_settings, new_status)
    assert getattr(changed, field) == expected
    assert type(getattr(changed, field)) is type(expected)
    assert kept is (settings if in_status else status)
    assert dataclasses.replace(changed, **{field: getattr(status if in_status else settings, field)}) == (
        status if in_status else settings
    )


@pytest.mark.parametrize("key", ["cell_voltages", "rated_capacity", "temperature_sensor_setting"])
def test_a_register_without_a_writable_field_is_no_setting(key: str) -> None:
    """A read-only register, or one whose value has no field in the data, cannot be written."""
    with pytest.raises(ValueError, match=key):
        writes.Writable(register(key))
