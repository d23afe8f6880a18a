"""Setup, retry, availability, options and unload of the integration, against the simulator.

Time is frozen (``freezer``) in most tests, and Home Assistant's test loop reads the frozen
clock: the client's answer timeouts only run out when a test moves time on. The helpers below
do that explicitly, so a silent module costs no real seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_OFF, STATE_ON, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from aiodalybalancer.registers import SETTINGS
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorServer,
    serve_tcp,
)
from custom_components.daly_active_balance.const import (
    CONF_SETTINGS_EVERY,
    CONF_UPDATE_INTERVAL,
)
from custom_components.daly_active_balance.coordinator import DalyCoordinator
from custom_components.daly_active_balance.writes import SLEEP_TIME

from .conftest import EntityIdFinder, shows_the_module

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.sim_on_test_clock]

UPDATE_INTERVAL = 5
LOGGER_NAME = "custom_components.daly_active_balance"


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """An entry polling every few seconds."""
    return {CONF_UPDATE_INTERVAL: UPDATE_INTERVAL}


# --- helpers ----------------------------------------------------------------------------------


async def advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Move the clock on and let what falls due run to its end (the polls' real TCP I/O included)."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def settle() -> None:
    """Let the loop turn often enough for a request and its answer to cross the loopback socket.

    Loopback delivery is immediate, so a round trip (client → simulator → client) needs only a
    few turns of the loop; the frozen clock must not move before an answer under way arrives.
    """
    for _ in range(25):
        await asyncio.sleep(0)


async def run_out_timeouts(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, done: Callable[[], bool], step: float = 0.5
) -> None:
    """Move the clock ``step`` at a time until ``done()``, so unanswered requests time out."""
    for _ in range(500):
        await settle()
        if done():
            break
        freezer.tick(timedelta(seconds=step))
        async_fire_time_changed(hass)
    else:
        pytest.fail("never done")
    await hass.async_block_till_done(wait_background_tasks=True)


async def poll_unanswered(hass: HomeAssistant, freezer: FrozenDateTimeFactory, coordinator: DalyCoordinator) -> None:
    """Let one update interval pass while the module is silent: every attempt times out."""
    client = coordinator.client
    target = client.stats.timeouts + client.link.retries + 1
    freezer.tick(timedelta(seconds=UPDATE_INTERVAL))
    async_fire_time_changed(hass)
    await run_out_timeouts(hass, freezer, lambda: client.stats.timeouts >= target)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Let the loop run (real I/O, no timers) until ``condition()`` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail("condition never held")


def entry_states(hass: HomeAssistant, entity_registry: er.EntityRegistry, entry: MockConfigEntry) -> dict[str, str]:
    """State of every enabled entity of ``entry`` that shows the module."""
    states = {}
    for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if not shows_the_module(entity, entry):
            continue
        state = hass.states.get(entity.entity_id)
        assert state is not None, entity.entity_id
        states[entity.entity_id] = state.state
    return states


def logs(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    """The integration's records at ``level`` whose message contains ``text``."""
    return [
        record
        for record in caplog.records
        if record.name.startswith(LOGGER_NAME) and record.levelno == level and text in record.getMessage()
    ]


def simulator_links() -> set[asyncio.Task[None]]:
    """The simulator's per-connection sender tasks: one lives for each open TCP connection.

    The simulator's server exposes no connection count, so its link tasks tell whether the
    server side still holds a connection.
    """
    return {
        task
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__qualname__", "") == "_Link._send"
    }


def persistent_words(simulator: SimulatedBalancer) -> list[int]:
    """Every word from the settings block on: only a host's write changes them (the model
    rewrites the live registers on its own)."""
    return list(simulator.words[SETTINGS.start :])


# --- tests ------------------------------------------------------------------------------------


async def test_setup_and_unload(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """Setup reads the module and loads; unload closes the link on both ends and leaves no task."""
    # The usb integration (an after-dependency) keeps a watcher task of its own: start it first.
    assert await async_setup_component(hass, "usb", {})
    await hass.async_block_till_done()
    tasks_before = asyncio.all_tasks()
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()

    assert config_entry.state is ConfigEntryState.LOADED
    coordinator = config_entry.runtime_data
    assert coordinator.identity.software_version == simulator.value("software_version")
    assert coordinator.data.status.cell_count == 16
    states = entry_states(hass, entity_registry, config_entry)
    assert states
    assert STATE_UNAVAILABLE not in states.values()
    transport = coordinator.client.transport
    assert transport.is_open
    assert len(simulator_links()) == 1

    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)

    assert config_entry.state is ConfigEntryState.NOT_LOADED
    assert not transport.is_open
    await wait_for(lambda: not simulator_links())  # the server saw the client go

    def left() -> set[asyncio.Task[object]]:
        return {t for t in asyncio.all_tasks() - tasks_before if not t.done() and t is not asyncio.current_task()}

    await wait_for(lambda: not left())
    assert set(entry_states(hass, entity_registry, config_entry).values()) == {STATE_UNAVAILABLE}


async def test_stopping_home_assistant_releases_the_link(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture, init_integration: MockConfigEntry
) -> None:
    """Home Assistant stops without unloading entries: the port (and its lock) is released at
    the stop event anyway, so a new instance can open it; an unload afterwards logs nothing."""
    transport = init_integration.runtime_data.client.transport
    assert transport.is_open
    assert simulator_links()

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    assert not transport.is_open
    await wait_for(lambda: not simulator_links())  # the server saw the client go
    assert init_integration.state is ConfigEntryState.LOADED  # nothing was unloaded
    assert await hass.config_entries.async_unload(init_integration.entry_id)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_unload_during_a_poll(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Unloading while a poll waits for an answer closes the link for good (the poll does not reopen it)."""
    coordinator = init_integration.runtime_data
    client = coordinator.client
    simulator.silent = True
    requests = client.stats.requests
    freezer.tick(timedelta(seconds=UPDATE_INTERVAL))
    async_fire_time_changed(hass)
    await wait_for(lambda: client.stats.requests > requests)  # the poll waits for its answer

    assert await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)

    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert not client.transport.is_open
    await wait_for(lambda: not simulator_links())


@pytest.mark.parametrize("failure", ["silent", "refused"])
async def test_setup_retry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    config_entry: MockConfigEntry,
    failure: str,
) -> None:
    """A module that does not answer at setup leaves the entry retrying; it loads once it answers."""
    if failure == "silent":
        simulator.silent = True
    else:
        await sim_server.close()  # nothing listens on the port: the connection is refused

    setup = hass.async_create_task(hass.config_entries.async_setup(config_entry.entry_id))
    await run_out_timeouts(hass, freezer, setup.done)

    assert setup.result() is False
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert config_entry.reason is not None
    assert "does not answer" in config_entry.reason
    assert not simulator_links()  # the failed attempt closed its connection
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    server: SimulatorServer | None = None
    if failure == "silent":
        simulator.silent = False
    else:
        server = await serve_tcp(simulator, port=sim_server.port)
    try:
        await advance(hass, freezer, 90)  # past HA's first retry delay
        assert config_entry.state is ConfigEntryState.LOADED
        assert config_entry.runtime_data.data.status.cell_count == 16
        assert await hass.config_entries.async_unload(config_entry.entry_id)
    finally:
        if server is not None:
            await server.close()


async def test_unavailable_and_back(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
    entity_id: EntityIdFinder,
) -> None:
    """Entities go unavailable while the module is silent and come back; one log line each way.

    The pack check alone stays available: it shows that the module stopped answering.
    """
    coordinator = init_integration.runtime_data
    pack_check = entity_id(Platform.BINARY_SENSOR, "pack_check")
    assert STATE_UNAVAILABLE not in entry_states(hass, entity_registry, init_integration).values()
    caplog.clear()

    simulator.silent = True
    await poll_unanswered(hass, freezer, coordinator)
    assert hass.states.get(pack_check).state == STATE_OFF
    assert set(entry_states(hass, entity_registry, init_integration).values()) == {STATE_UNAVAILABLE}
    await poll_unanswered(hass, freezer, coordinator)
    await poll_unanswered(hass, freezer, coordinator)
    assert hass.states.get(pack_check).state == STATE_ON
    assert set(entry_states(hass, entity_registry, init_integration).values()) == {STATE_UNAVAILABLE}
    lost = logs(caplog, logging.ERROR, "Error fetching")
    assert len(lost) == 1, lost
    assert "does not answer" in lost[0].getMessage()
    assert not logs(caplog, logging.INFO, "recovered")

    simulator.silent = False
    await advance(hass, freezer, UPDATE_INTERVAL)
    states = entry_states(hass, entity_registry, init_integration)
    assert STATE_UNAVAILABLE not in states.values()
    await advance(hass, freezer, UPDATE_INTERVAL)
    assert len(logs(caplog, logging.INFO, "recovered")) == 1
    assert len(logs(caplog, logging.ERROR, "Error fetching")) == 1


async def test_options_apply_without_reload(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    init_integration: MockConfigEntry,
) -> None:
    """A new update interval applies to the running coordinator; the entry is not reloaded."""
    coordinator = init_integration.runtime_data
    client = coordinator.client
    assert coordinator.update_interval == timedelta(seconds=UPDATE_INTERVAL)
    requests = client.stats.requests
    await advance(hass, freezer, UPDATE_INTERVAL)
    assert client.stats.requests > requests  # polled at the old interval

    hass.config_entries.async_update_entry(init_integration, options={CONF_UPDATE_INTERVAL: 60, CONF_SETTINGS_EVERY: 3})
    await hass.async_block_till_done(wait_background_tasks=True)

    assert init_integration.state is ConfigEntryState.LOADED
    assert init_integration.runtime_data is coordinator
    assert coordinator.update_interval == timedelta(seconds=60)
    assert coordinator.settings_every == 3
    requests = client.stats.requests
    await advance(hass, freezer, 30)
    assert client.stats.requests == requests  # the old 5 s interval is gone
    await advance(hass, freezer, 31)
    assert client.stats.requests > requests


async def test_nothing_written_during_setup_reload_or_options(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """Setup, polls, a reload and an options change only read; a real write is counted."""
    words = persistent_words(simulator)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    await advance(hass, freezer, UPDATE_INTERVAL)
    assert await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    hass.config_entries.async_update_entry(config_entry, options={CONF_UPDATE_INTERVAL: 7})
    await hass.async_block_till_done(wait_background_tasks=True)
    await advance(hass, freezer, 7)

    assert config_entry.state is ConfigEntryState.LOADED
    assert simulator.stats.requests > 0
    assert simulator.stats.writes == simulator.stats.refused_writes == 0
    assert persistent_words(simulator) == words

    # The same counters see a write when one is made. (The client may wait out its answer
    # timeout on the write's echo, so time is moved on until the write is done.)
    write = hass.async_create_task(config_entry.runtime_data.async_write(SLEEP_TIME, 1800))
    await run_out_timeouts(hass, freezer, write.done)
    write.result()
    assert simulator.stats.writes == 1
    assert persistent_words(simulator) != words


async def test_the_coordinator_s_shutdown_releases_the_link(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, init_integration: MockConfigEntry
) -> None:
    """The coordinator's shutdown (what Home Assistant calls when the entry unloads) closes the
    client: the port and its lock are released, and no poll opens the link again."""
    coordinator: DalyCoordinator = init_integration.runtime_data
    client = coordinator.client
    assert client.transport.is_open

    await coordinator.async_shutdown()
    await hass.async_block_till_done()

    assert not client.transport.is_open
    await wait_for(lambda: not simulator_links())
    requests = client.stats.requests
    await advance(hass, freezer, 3 * UPDATE_INTERVAL)
    assert client.stats.requests == requests
    assert not client.transport.is_open
    assert await hass.config_entries.async_unload(init_integration.entry_id)
