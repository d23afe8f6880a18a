"""The register survey button, pressed through Home Assistant against the simulator on a socket."""

from __future__ import annotations

import asyncio
from datetime import datetime

from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.diagnostics import REDACTED
from homeassistant.const import ATTR_ENTITY_ID, EntityCategory, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from aiodalybalancer.client import SURVEY_END, SURVEY_READ
from aiodalybalancer.frames import Direction, ReadRequest, parse
from aiodalybalancer.registers import BALANCER, BLOCKS
from aiodalybalancer.tools.simulator import Reply, SimulatedBalancer, SimulatorConfig
from custom_components.daly_active_balance.coordinator import DalyCoordinator
from custom_components.daly_active_balance.diagnostics import REDACTED_ADDRESSES, SECRET_ADDRESSES

from ..leaks import until
from .conftest import enable_entity

pytestmark = pytest.mark.usefixtures("socket_enabled")


@pytest.fixture
def simulator(sim_config: SimulatorConfig) -> SimulatedBalancer:
    """A module whose clock stands still: its words read the same at the survey and afterwards."""
    return SimulatedBalancer(sim_config, clock=lambda: 0.0)


async def _enable_button(hass: HomeAssistant, entity_registry: er.EntityRegistry, entry: MockConfigEntry) -> str:
    """The survey button, enabled (it is a diagnostic entity, off by default)."""
    button = await enable_entity(hass, entry, Platform.BUTTON, "survey_registers")
    registered = entity_registry.async_get(button)
    assert registered is not None
    assert registered.entity_category is EntityCategory.DIAGNOSTIC
    return button


async def _press(hass: HomeAssistant, button: str) -> None:
    await hass.services.async_call(BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: button}, blocking=True)


async def test_survey_runs_between_polls_and_lands_in_the_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A press during a poll: both get their reads; nothing is written; the diagnostics carry
    every register but the secret ones."""
    button = await _enable_button(hass, entity_registry, init_integration)
    coordinator: DalyCoordinator = init_integration.runtime_data
    before = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    assert before["register_survey"] == {"run": False}

    simulator.served = []
    await asyncio.gather(coordinator.async_refresh(), _press(hass, button))

    starts = [read.start for read in simulator.served]
    survey = [BALANCER.start, *range(0, SURVEY_END, SURVEY_READ)]
    assert all(starts.count(start) >= survey.count(start) for start in survey), starts
    assert len(starts) > len(survey)  # the poll did read
    assert (simulator.stats.writes, simulator.stats.refused_writes) == (0, 0)

    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)
    found = result["register_survey"]
    assert found["run"] is True
    assert coordinator.last_survey is not None
    assert datetime.fromisoformat(found["time"]) == coordinator.last_survey.time
    assert [(part["start"], part["count"]) for part in found["ranges"]] == [
        (f"0x{start:04X}", min(SURVEY_READ, SURVEY_END - start)) for start in range(0, SURVEY_END, SURVEY_READ)
    ]
    registers = {key: value for part in found["ranges"] for key, value in part["registers"].items()}
    for address in range(SURVEY_END):
        key = f"0x{address:04X}"
        if address in SECRET_ADDRESSES:
            assert key not in registers
        elif address in REDACTED_ADDRESSES:
            assert registers[key] == REDACTED
        else:
            assert registers[key] == simulator.read_word(address), key


async def test_survey_of_a_module_that_does_not_answer_ends_with_a_clear_error(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    button = await _enable_button(hass, entity_registry, init_integration)
    coordinator: DalyCoordinator = init_integration.runtime_data
    coordinator.client.timeout = 0.05  # time is not frozen here: keep the test fast
    simulator.silent = True
    with pytest.raises(HomeAssistantError) as raised:
        await _press(hass, button)
    assert raised.value.translation_key == "survey_no_answer"
    assert "may be asleep" in str(raised.value)
    assert coordinator.last_survey is None


async def test_polls_go_on_during_a_survey_of_a_module_that_answers_noise(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A module that answers noise to every register the app never reads makes the survey slow
    (each such read is retried, then the module is checked): polls are answered meanwhile."""
    button = await _enable_button(hass, entity_registry, init_integration)
    coordinator: DalyCoordinator = init_integration.runtime_data
    coordinator.client.timeout = 0.05  # time is not frozen here: keep the test fast
    read_by_the_app = {(block.start, block.count) for block in BLOCKS}
    answer = simulator.receive
    noisy: list[int] = []

    def receive(data: bytes) -> list[Reply]:
        request = parse(data, Direction.REQUEST)
        if isinstance(request, ReadRequest) and (request.start, request.count) not in read_by_the_app:
            noisy.append(request.start)
            return [Reply((b"\x00\x13\x37 line noise \xff\xfe",))]
        return answer(data)

    simulator.receive = receive  # type: ignore[method-assign]
    press = hass.async_create_task(_press(hass, button))
    assert await until(lambda: bool(noisy))
    polls = 0
    while not press.done() and polls < 3:
        await coordinator.async_refresh()
        assert coordinator.last_update_success, coordinator.last_exception
        polls += 1
    assert polls == 3  # three polls answered while the survey ran
    await press
    assert coordinator.last_survey is not None
    errors = [part.error for part in coordinator.last_survey.ranges if part.error]
    assert errors
    assert all("UnreadableAnswerError" in error for error in errors)
