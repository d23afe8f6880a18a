"""Connection faults through Home Assistant (issue: "Connection faults").

Each test ends with the right availability, exactly one log line per transition (HA's
coordinator logs "Error fetching …" once when the module is lost and "… recovered" once when it
is back), and an unload that leaves no open port, socket, Bluetooth connection or task.
The links are real: a TCP socket, a pseudo-terminal reached through a stable symlink (as
``/dev/serial/by-id/…`` is), and Home Assistant's bluetooth integration with the stand-in dongle.
(Setup while a wired module is silent or its bridge refuses: ``test_init.test_setup_retry``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
import logging
from pathlib import Path
from typing import Any

from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID, CONF_PORT, STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from aiodalybalancer.frames import Direction, ReadRequest, ReadResponse, parse
from aiodalybalancer.tools.simulator import (
    Fault,
    FaultPlan,
    Reply,
    SimulatedBalancer,
    SimulatorServer,
    serve_pty,
    serve_tcp,
)
from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONF_UPDATE_INTERVAL,
    CONNECTION_SERIAL,
    DOMAIN,
)
from custom_components.daly_active_balance.coordinator import DalyCoordinator
from custom_components.daly_active_balance.issues import ISSUE_STOPPED_ANSWERING

from ..leaks import live_tasks, open_fds, until
from .ble_helpers import inject_advertisement, service_info, use_standin_dongle
from .conftest import shows_the_module

pytestmark = pytest.mark.usefixtures("socket_enabled")

LOGGER_NAME = "custom_components.daly_active_balance"
#: The client's answer timeout here (time is not frozen: a silent module costs real seconds).
SHORT = 0.1


# --- helpers ----------------------------------------------------------------------------------


async def wait_for(
    condition: Callable[[], bool], seconds: float = 3.0, message: Callable[[], object] = lambda: ""
) -> None:
    """Let the loop run (real I/O) until ``condition()`` holds."""
    assert await until(condition, seconds), f"condition never held {message()}"


def transitions(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The coordinator's availability log lines, in order: 'lost' and 'back'."""
    lines = []
    for record in caplog.records:
        if not record.name.startswith(LOGGER_NAME):
            continue
        message = record.getMessage()
        if record.levelno == logging.ERROR and "Error fetching" in message:
            lines.append("lost")
        elif record.levelno == logging.INFO and "recovered" in message:
            lines.append("back")
    return lines


def availability(hass: HomeAssistant, entry: MockConfigEntry) -> set[bool]:
    """Whether each enabled entity of ``entry`` that shows the module is available (a set: all
    alike, or both). The entities of Home Assistant's own state stay available and are left out."""
    registry = er.async_get(hass)
    shown = set()
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if not shows_the_module(entity, entry):
            continue
        state = hass.states.get(entity.entity_id)
        assert state is not None
        shown.add(state.state != STATE_UNAVAILABLE)
    return shown


async def refresh(coordinator: DalyCoordinator, times: int = 1) -> None:
    """Poll now (as the interval would), ``times`` times."""
    for _ in range(times):
        await coordinator.async_refresh()


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> DalyCoordinator:
    """Set the entry up; the client's timeout is then made short."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator: DalyCoordinator = entry.runtime_data
    coordinator.client.timeout = SHORT
    return coordinator


async def unload_leaves_nothing(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    tasks_before: set[asyncio.Task[Any]],
    fds_before: dict[int, str],
    servers: set[int] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Unload, then check: link closed, no task and no descriptor left behind.

    ``servers``: descriptors the test's own (re)started simulator servers opened since
    ``fds_before`` was taken; they are the test's, not the integration's.
    """
    transport = entry.runtime_data.client.transport
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not transport.is_open
    await wait_for(lambda: not (live_tasks() - tasks_before), message=lambda: live_tasks() - tasks_before)

    def new_fds() -> set[int]:
        return {fd for fd, target in open_fds().items() if fds_before.get(fd) != target} - servers

    await wait_for(lambda: not new_fds(), message=lambda: {fd: open_fds().get(fd) for fd in new_fds()})


async def serve(
    start: Callable[..., Any], sim: SimulatedBalancer, **kwargs: Any
) -> tuple[SimulatorServer, set[int], set[asyncio.Task[Any]]]:
    """Start a simulator server; also return the descriptors and tasks it opened (the test's own)."""
    before, tasks = open_fds(), live_tasks()
    server: SimulatorServer = await start(sim, **kwargs)
    return server, {fd for fd, target in open_fds().items() if before.get(fd) != target}, live_tasks() - tasks


def serial_entry(hass: HomeAssistant, port: str) -> MockConfigEntry:
    """A serial entry on ``port`` (polled by the tests themselves)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="faults",
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: port},
        options={CONF_UPDATE_INTERVAL: 3600},
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def usb(hass: HomeAssistant) -> None:
    """The usb integration (an after-dependency) keeps a watcher task: start it before counting."""
    assert await async_setup_component(hass, "usb", {})
    await hass.async_block_till_done()


# --- wired ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("usb")
async def test_tcp_bridge_refusing_then_accepting(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture, simulator: SimulatedBalancer
) -> None:
    """TCP bridge refusing, then accepting: the running entry goes unavailable with one log
    line, stays so without more lines while refused, and comes back with one line when the
    bridge accepts again; unload leaves nothing open."""
    server = await serve_tcp(simulator)
    port = server.port
    tasks_before, fds_before = live_tasks(), open_fds()
    entry = serial_entry(hass, server.url)
    coordinator = await setup_entry(hass, entry)
    assert availability(hass, entry) == {True}
    caplog.clear()

    await server.close()  # the bridge restarts: connections are refused meanwhile
    await refresh(coordinator, 3)
    assert availability(hass, entry) == {False}
    assert transitions(caplog) == ["lost"]
    assert "cannot open" in str(coordinator.last_exception)

    server, servers, server_tasks = await serve(serve_tcp, simulator, port=port)
    try:
        await refresh(coordinator, 2)
        assert availability(hass, entry) == {True}
        assert transitions(caplog) == ["lost", "back"]
        assert coordinator.data.status.cell_count == simulator.config.cells
        await unload_leaves_nothing(hass, entry, tasks_before | server_tasks, fds_before, servers)
        await wait_for(lambda: server.connections == 0)
    finally:
        await server.close()


@pytest.mark.usefixtures("usb")
async def test_serial_port_unplugged_and_replugged(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture, simulator: SimulatedBalancer, tmp_path: Path
) -> None:
    """Serial port unplugged and replugged: the adapter's device vanishes (the pty closes, its
    stable path dangles), the entry goes unavailable with one log line; a new device behind the
    same path brings it back with one line; unload leaves no descriptor."""
    link = tmp_path / "usb-DALY-if00-port0"  # like /dev/serial/by-id/…
    first = await serve_pty(simulator)
    link.symlink_to(first.url)
    tasks_before, fds_before = live_tasks(), open_fds()
    entry = serial_entry(hass, str(link))
    coordinator = await setup_entry(hass, entry)
    caplog.clear()

    await first.close()  # unplugged
    link.unlink()
    await refresh(coordinator, 3)
    assert availability(hass, entry) == {False}
    assert transitions(caplog) == ["lost"]

    second, servers, server_tasks = await serve(serve_pty, simulator)  # plugged back in (maybe as another tty)
    link.symlink_to(second.url)
    try:
        await refresh(coordinator, 2)
        assert availability(hass, entry) == {True}
        assert transitions(caplog) == ["lost", "back"]
        await unload_leaves_nothing(hass, entry, tasks_before | server_tasks, fds_before, servers)
    finally:
        await second.close()


# --- Bluetooth --------------------------------------------------------------------------------


@pytest.fixture
async def ble_ready(hass: HomeAssistant, enable_bluetooth: None) -> AsyncIterator[None]:
    """Bluetooth set up and settled, so its own tasks are not counted as the integration's."""
    await hass.async_block_till_done(wait_background_tasks=True)
    return


def drop_on_request(sim: SimulatedBalancer, dongle: Any, number: int) -> None:
    """The link drops when the module's ``number``-th request from now arrives (mid-poll)."""
    original = sim.receive
    seen = 0

    def receive(data: bytes) -> list[Any]:
        nonlocal seen
        seen += 1
        if seen == number:
            dongle.drop_links()
            return []
        return original(data)

    sim.receive = receive  # type: ignore[method-assign]


@pytest.mark.usefixtures("ble_ready")
async def test_ble_link_lost_mid_poll_then_device_gone_and_back(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
) -> None:
    """BLE link lost mid-poll, and device gone then back: a link dropped in the middle of a poll
    is reconnected within the poll (no transition, no log line); a dongle that is gone makes the
    entry unavailable with one line and comes back with one; unload leaves no BLE connection."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    tasks_before, fds_before = live_tasks(), open_fds()
    coordinator = await setup_entry(hass, ble_entry)
    caplog.clear()

    drop_on_request(simulator, dongle, 2)  # the poll's second read
    await refresh(coordinator)
    assert dongle.drops == 1
    assert dongle.connects == 2  # reconnected inside the same poll
    assert coordinator.last_update_success
    assert availability(hass, ble_entry) == {True}
    assert transitions(caplog) == []
    del simulator.receive

    dongle.fail_connect = True  # out of range: the link drops and reconnecting fails
    dongle.drop_links()
    await refresh(coordinator, 3)
    assert availability(hass, ble_entry) == {False}
    assert transitions(caplog) == ["lost"]

    dongle.fail_connect = False
    await refresh(coordinator, 2)
    assert availability(hass, ble_entry) == {True}
    assert transitions(caplog) == ["lost", "back"]
    assert coordinator.data.status.cell_count == simulator.config.cells

    await unload_leaves_nothing(hass, ble_entry, tasks_before, fds_before)
    assert not any(client.is_connected for client in dongle.instances)


@pytest.mark.usefixtures("ble_ready")
async def test_ha_started_while_the_ble_module_is_away(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
) -> None:
    """HA started while the module is away: setup retries (no crash, no error log) until the
    dongle is advertised and connectable, then the entry loads; unload leaves nothing."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    tasks_before, fds_before = live_tasks(), open_fds()
    assert not await hass.config_entries.async_setup(ble_entry.entry_id)  # never advertised
    assert ble_entry.state is ConfigEntryState.SETUP_RETRY
    assert ble_entry.reason is not None

    dongle.fail_connect = True
    await inject_advertisement(hass, service_info())  # seen, but does not take connections
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=2))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert ble_entry.state is ConfigEntryState.SETUP_RETRY

    dongle.fail_connect = False
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=10))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert ble_entry.state is ConfigEntryState.LOADED
    assert availability(hass, ble_entry) == {True}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(LOGGER_NAME)]
    ble_entry.runtime_data.client.timeout = SHORT
    await unload_leaves_nothing(hass, ble_entry, tasks_before, fds_before)


# --- unload while a request waits (issue 14, item 3) ------------------------------------------


async def unload_while_waiting(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    simulator: SimulatedBalancer,
    what: str,
    tasks_before: set[asyncio.Task[Any]],
) -> None:
    """Unload while a request waits for its answer from a silent module, then let everything
    that was under way run to its end: a write (its read-back would follow) or a refresh
    requested by an options change (its retries would follow)."""
    coordinator: DalyCoordinator = entry.runtime_data
    client = coordinator.client
    simulator.silent = True
    requests = client.stats.requests
    writing = None
    if what == "write":
        number = er.async_get(hass).async_get_entity_id(Platform.NUMBER, DOMAIN, f"{entry.unique_id}_sleep_time")
        writing = hass.async_create_task(
            hass.services.async_call(
                NUMBER_DOMAIN, SERVICE_SET_VALUE, {ATTR_ENTITY_ID: number, ATTR_VALUE: 7200}, blocking=True
            )
        )
    else:
        hass.config_entries.async_update_entry(entry, options={**entry.options, CONF_UPDATE_INTERVAL: 3599})
    await wait_for(lambda: client.stats.requests > requests, message=lambda: client.stats)

    assert await hass.config_entries.async_unload(entry.entry_id)
    if writing is not None:
        with pytest.raises(HomeAssistantError):
            await writing
    await hass.async_block_till_done(wait_background_tasks=True)
    # Whatever was under way has ended: had it reopened the link, the link would be open now.
    await wait_for(lambda: not live_tasks() - tasks_before, message=lambda: live_tasks() - tasks_before)


@pytest.mark.usefixtures("usb")
@pytest.mark.parametrize("what", ["write", "refresh"])
@pytest.mark.parametrize("link", ["tcp", "pty"])
async def test_unload_while_a_request_waits_never_reopens_a_wired_link(
    hass: HomeAssistant, simulator: SimulatedBalancer, link: str, what: str
) -> None:
    """Item 3: unloading while a write or a requested refresh waits for its answer closes the
    link for good: the waiting request fails at once and nothing reopens the port or socket
    (a reopened serial port would stay locked, a socket open, until Home Assistant restarts)."""
    server = await (serve_tcp if link == "tcp" else serve_pty)(simulator)
    try:
        tasks_before, fds_before = live_tasks(), open_fds()
        entry = serial_entry(hass, server.url)
        coordinator = await setup_entry(hass, entry)
        transport = coordinator.client.transport
        await unload_while_waiting(hass, entry, simulator, what, tasks_before)

        assert entry.state is ConfigEntryState.NOT_LOADED
        assert not transport.is_open
        new = {fd: target for fd, target in open_fds().items() if fds_before.get(fd) != target}
        assert not new, new
        if link == "tcp":
            await wait_for(lambda: server.connections == 0)
    finally:
        await server.close()


@pytest.mark.usefixtures("ble_ready")
@pytest.mark.parametrize("what", ["write", "refresh"])
async def test_unload_while_a_request_waits_never_reconnects_the_dongle(
    hass: HomeAssistant,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
    what: str,
) -> None:
    """Item 3 over Bluetooth: the dongle is not connected again after the unload (the phone app
    would be locked out)."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    tasks_before = live_tasks()
    coordinator = await setup_entry(hass, ble_entry)
    transport = coordinator.client.transport
    connects = dongle.connects
    await unload_while_waiting(hass, ble_entry, simulator, what, tasks_before)

    assert not transport.is_open
    assert dongle.connects == connects
    assert not any(client.is_connected for client in dongle.instances)


# --- what answered: nothing, garbage or the wrong answer (issue 14, "Smaller") ---------------------


def answer_badly(simulator: SimulatedBalancer, how: str) -> None:
    """The module end answers every read with ``how``: nothing, bytes that hold no frame, or a
    valid frame with one register fewer than asked for."""

    def receive(data: bytes) -> list[Reply]:
        if how == "silent":
            return []
        if how == "garbage":
            return [Reply((b"\x00\x13\x37 line noise \xff\xfe",))]
        request = parse(data, Direction.REQUEST)
        assert isinstance(request, ReadRequest)
        return [Reply((ReadResponse((0,) * (request.count - 1)).encode(),))]

    simulator.receive = receive  # type: ignore[method-assign]


@pytest.mark.usefixtures("usb")
@pytest.mark.parametrize(
    ("how", "translation_key", "text"),
    [
        ("silent", "cannot_reach", "no answer from"),
        ("garbage", "bad_answer", "bytes that hold no frame"),
        ("wrong_count", "bad_answer", "answered 61 registers to a request for 62 registers"),
    ],
)
async def test_garbage_and_wrong_answers_are_told_apart_from_silence(
    hass: HomeAssistant, simulator: SimulatedBalancer, how: str, translation_key: str, text: str
) -> None:
    """Garbage and answers with the wrong register count are not reported as "nothing answered /
    asleep": each has its own error and message, through the running entry."""
    server = await serve_tcp(simulator)
    try:
        entry = serial_entry(hass, server.url)
        coordinator = await setup_entry(hass, entry)
        answer_badly(simulator, how)
        await refresh(coordinator)
        error = coordinator.last_exception
        assert isinstance(error, UpdateFailed)
        assert error.translation_key == translation_key
        assert text in str(error)
        if how != "silent":
            assert "asleep" not in str(error)
        del simulator.receive
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.close()


# --- health while the module does not answer usably --------------------------------------------


def _entity(hass: HomeAssistant, entry: MockConfigEntry, platform: str, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{entry.unique_id}_{key}")
    assert found is not None, key
    return found


@pytest.mark.usefixtures("usb")
async def test_link_sensors_follow_every_failed_poll(hass: HomeAssistant, simulator: SimulatedBalancer) -> None:
    """Home Assistant's coordinator tells its entities of the first failed poll of a run only; the
    link's sensors still show every poll's outcome: the share after ten failures, each error."""
    server = await serve_tcp(simulator)
    try:
        entry = serial_entry(hass, server.url)
        coordinator = await setup_entry(hass, entry)
        coordinator.client.link.retries = 0
        share = _entity(hass, entry, Platform.SENSOR, "poll_success")
        last_error = _entity(hass, entry, Platform.SENSOR, "last_error")
        assert hass.states.get(share).state == "100.0"
        for failed in range(1, 11):
            how = "silent" if failed % 2 else "garbage"
            answer_badly(simulator, how)
            await refresh(coordinator)
            await hass.async_block_till_done()
            assert float(hass.states.get(share).state) == round(100 / (1 + failed), 1), failed
            shown = hass.states.get(last_error).state
            assert shown.startswith("DalyTimeoutError" if how == "silent" else "UnreadableAnswerError"), (failed, shown)
        assert hass.states.get(share).state == "9.1"
        del simulator.receive
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.close()


@pytest.mark.usefixtures("usb")
@pytest.mark.parametrize("how", ["corrupt", "garbage", "wrong_count"])
async def test_a_module_whose_answers_are_all_unusable_stopped_answering(
    hass: HomeAssistant, simulator: SimulatedBalancer, how: str
) -> None:
    """Answers that are never usable (bad CRC, noise, the wrong register count) are no answers:
    the pack check turns on for "stopped answering" and the repair is raised; a good answer
    clears both."""
    server = await serve_tcp(simulator)
    try:
        entry = serial_entry(hass, server.url)
        coordinator = await setup_entry(hass, entry)
        coordinator.client.link.retries = 0
        pack_check = _entity(hass, entry, Platform.BINARY_SENSOR, "pack_check")
        stopped = f"{ISSUE_STOPPED_ANSWERING}_{entry.entry_id}"
        if how == "corrupt":
            simulator.faults = FaultPlan(rate=1.0, kinds=(Fault.CORRUPT,), seed=1)
        else:
            answer_badly(simulator, how)
        await refresh(coordinator, 10)
        await hass.async_block_till_done()
        assert not coordinator.last_update_success
        state = hass.states.get(pack_check)
        assert (state.state, state.attributes["reasons"]) == ("on", [ISSUE_STOPPED_ANSWERING])
        assert ir.async_get(hass).async_get_issue(DOMAIN, stopped) is not None

        simulator.faults = FaultPlan()
        vars(simulator).pop("receive", None)
        # Polls come an interval apart, not back to back: the last failed request's answer is
        # no longer owed (else the next answer would be taken for it, and dropped as late).
        await asyncio.sleep(2 * SHORT)
        await refresh(coordinator)
        await hass.async_block_till_done()
        assert coordinator.last_update_success, coordinator.last_exception
        assert hass.states.get(pack_check).state == "off", coordinator.findings
        assert ir.async_get(hass).async_get_issue(DOMAIN, stopped) is None
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await server.close()
