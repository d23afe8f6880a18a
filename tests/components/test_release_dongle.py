"""Let the phone app in: the Bluetooth dongle left to the DALY app for 10 minutes, then taken back.

Through Home Assistant against the stand-in dongle (``aiodalybalancer.tools.ble_standin``) on
the real ``BleTransport`` path: the link is closed during the window, no poll reaches the
module, nothing shown changes (states, availability, the link's sensors, repairs), and polls
resume, the first at once, when the window ends.

Time moves on a test clock of its own (``Clock``): Home Assistant's time of day follows it and
``async_fire_time_changed`` runs the timers that fall due, while the event loop's clock stays
real. A frozen clock (``freezer``) would stop the loop's clock too, and with it the stand-in's
notifications and the client's time-outs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.bluetooth import (
    BluetoothServiceInfoBleak,
    async_get_advertisement_callback,
    async_track_unavailable,
)
from homeassistant.components.button import DOMAIN as BUTTON_DOMAIN, SERVICE_PRESS
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
    Platform,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from aiodalybalancer.tools.ble_standin import StandInBleClient
from aiodalybalancer.tools.simulator import Reply, SimulatedBalancer
from custom_components.daly_active_balance.const import CONF_KEEP_CONNECTED, CONF_UPDATE_INTERVAL, DOMAIN
from custom_components.daly_active_balance.coordinator import DalyCoordinator

from ..leaks import until
from .ble_helpers import DALY_ADDRESS, inject_advertisement, service_info, use_standin_dongle

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: How long the phone app gets the dongle: the button's name promises it.
RELEASE_WINDOW = timedelta(minutes=10)
#: Seconds between polls here (the coordinator's timer fires at every step once one interval has
#: passed on the test clock: Home Assistant schedules it from the event loop's real clock).
INTERVAL = 45
#: How far the test clock moves per step.
STEP = timedelta(seconds=15)

#: The keys whose state a press itself changes: the button's (when it was pressed) and the window's end.
CHANGED_BY_A_PRESS = frozenset({"release_dongle", "take_back_dongle", "released_until"})


@pytest.fixture
async def ble_ready(hass: HomeAssistant, enable_bluetooth: None) -> AsyncIterator[None]:
    """Bluetooth set up and settled."""
    await hass.async_block_till_done(wait_background_tasks=True)
    return


@pytest.fixture
async def dongle(
    hass: HomeAssistant, ble_ready: None, monkeypatch: pytest.MonkeyPatch, simulator: SimulatedBalancer
) -> AsyncIterator[type[StandInBleClient]]:
    """The stand-in dongle, advertised, in front of the simulator.

    It advertises on through the moved-on minutes, as a real dongle does: the injected
    advertisements come from no scanner, so Home Assistant's check for vanished devices (every
    few minutes) would take it for gone; it is heard again at once.
    """
    client_class = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())

    @callback
    def advertise_again(_gone: BluetoothServiceInfoBleak) -> None:
        async_get_advertisement_callback(hass)(service_info())

    unsubscribe = async_track_unavailable(hass, advertise_again, DALY_ADDRESS, connectable=True)
    yield client_class
    unsubscribe()


@pytest.fixture
def clock(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The test clock, from before the entry is set up."""
    return Clock(hass, monkeypatch)


@pytest.fixture
def interval() -> int:
    """Seconds between polls."""
    return INTERVAL


@pytest.fixture
async def loaded(
    hass: HomeAssistant, ble_entry: MockConfigEntry, dongle: type[StandInBleClient], interval: int, clock: Clock
) -> AsyncIterator[MockConfigEntry]:
    """The Bluetooth entry set up, polling every ``interval`` seconds, keeping the link open."""
    hass.config_entries.async_update_entry(ble_entry, options={CONF_UPDATE_INTERVAL: interval})
    assert await hass.config_entries.async_setup(ble_entry.entry_id)
    await hass.async_block_till_done()
    assert ble_entry.state is ConfigEntryState.LOADED
    yield ble_entry
    if ble_entry.state is ConfigEntryState.LOADED:
        assert await hass.config_entries.async_unload(ble_entry.entry_id)
        await hass.async_block_till_done()


def _entity(hass: HomeAssistant, platform: Platform, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{DALY_ADDRESS}_{key}")
    assert found is not None, key
    return found


def shown(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, tuple[str, dict[str, Any]]]:
    """What every enabled entity of ``entry`` shows (state and attributes), bar the window's own."""
    registry = er.async_get(hass)
    found = {}
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        key = str(entity.unique_id).removeprefix(f"{entry.unique_id}_")
        if entity.disabled or key in CHANGED_BY_A_PRESS:
            continue
        state = hass.states.get(entity.entity_id)
        assert state is not None, entity.entity_id
        found[entity.entity_id] = (state.state, dict(state.attributes))
    return found


def released_until(hass: HomeAssistant) -> str:
    state = hass.states.get(_entity(hass, Platform.SENSOR, "released_until"))
    assert state is not None
    return state.state


async def press(hass: HomeAssistant, key: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: _entity(hass, Platform.BUTTON, key)}, blocking=True
    )


class Clock:
    """The test clock: Home Assistant's time of day, moved on by the test alone."""

    def __init__(self, hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
        """Run with the real time, until moved on."""
        self.hass = hass
        self.ahead = timedelta()
        real = dt_util.utcnow
        # Timers are scheduled from the real time (Home Assistant's event helpers hold their own
        # reference to it), which is what async_fire_time_changed compares this clock with.
        monkeypatch.setattr(dt_util, "utcnow", lambda: real() + self.ahead)

    def now(self) -> datetime:
        """The time of day on this clock."""
        return dt_util.utcnow()

    async def tick(self, step: timedelta = STEP) -> None:
        """Move on by ``step`` and let what fell due run."""
        self.ahead += step
        async_fire_time_changed(self.hass, self.now())
        await self.hass.async_block_till_done(wait_background_tasks=True)


async def press_release(hass: HomeAssistant, clock: Clock) -> datetime:
    """Press "Let the phone app in"; returns the window's end, 10 minutes from the press."""
    before = clock.now()
    await press(hass, "release_dongle")
    end = datetime.fromisoformat(released_until(hass))  # shown in whole seconds
    assert before + RELEASE_WINDOW - timedelta(seconds=1) < end <= clock.now() + RELEASE_WINDOW
    return end


def linked(dongle: type[StandInBleClient]) -> bool:
    """Whether any connection to the dongle is up."""
    return any(client.is_connected for client in dongle.instances)


def traffic(dongle: type[StandInBleClient], simulator: SimulatedBalancer) -> tuple[int, int, int]:
    """Connection attempts, writes to the dongle, and requests the module received, so far."""
    return dongle.connect_attempts, dongle.writes, simulator.stats.requests


@contextmanager
def answering_slowly(simulator: SimulatedBalancer) -> Iterator[list[bytes]]:
    """Every answer of the module takes 0.2 s longer inside the block; yields the requests it got."""
    answer = simulator.receive
    asked: list[bytes] = []

    def slowly(data: bytes) -> list[Reply]:
        asked.append(data)
        return [replace(reply, delay=reply.delay + 0.2) for reply in answer(data)]

    simulator.receive = slowly  # type: ignore[method-assign]
    try:
        yield asked
    finally:
        del simulator.receive


async def test_the_phone_app_gets_the_dongle_for_10_minutes(
    hass: HomeAssistant,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """The link closes at the press (kept open until then); no poll and no connection attempt
    for 10 minutes while polls fall due and nothing shown changes; then polls go on."""
    coordinator: DalyCoordinator = loaded.runtime_data
    assert loaded.options.get(CONF_KEEP_CONNECTED, True) is True
    await coordinator.async_refresh()  # a second poll: the link's sensors have values
    assert linked(dongle)
    assert released_until(hass) == STATE_UNKNOWN
    before = shown(hass, loaded)
    assert STATE_UNAVAILABLE not in {state for state, _ in before.values()}
    issues_before = set(ir.async_get(hass).issues)

    await press_release(hass, clock)
    assert not linked(dongle)
    assert not coordinator.client.transport.is_open

    quiet = traffic(dongle, simulator)
    for _ in range(RELEASE_WINDOW // STEP - 1):  # up to 15 s before the end
        await clock.tick()
        assert traffic(dongle, simulator) == quiet
        assert not linked(dongle)
        assert shown(hass, loaded) == before
        assert set(ir.async_get(hass).issues) == issues_before
    assert coordinator.released_until is not None

    await clock.tick()  # the window's end
    attempts, writes, requests = traffic(dongle, simulator)
    assert attempts == quiet[0] + 1
    assert writes > quiet[1]
    assert requests > quiet[2]
    assert linked(dongle)  # kept open again, as the option says
    assert released_until(hass) == STATE_UNKNOWN
    assert coordinator.last_update_success
    assert shown(hass, loaded).keys() == before.keys()
    assert STATE_UNAVAILABLE not in {state for state, _ in shown(hass, loaded).values()}

    await clock.tick(timedelta(seconds=INTERVAL))
    assert simulator.stats.requests > requests  # the interval's polls go on


@pytest.mark.parametrize("interval", [3600])
async def test_the_first_poll_follows_the_window_at_once(
    hass: HomeAssistant,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """Polls once an hour: the window's end polls at once all the same."""
    await press_release(hass, clock)
    until = loaded.runtime_data.released_until
    quiet = traffic(dongle, simulator)
    clock.ahead += until - clock.now() - timedelta(seconds=2)
    await clock.tick(timedelta(seconds=1))
    assert traffic(dongle, simulator) == quiet
    await clock.tick(timedelta(seconds=2))
    assert simulator.stats.requests > quiet[2]
    assert linked(dongle)
    assert released_until(hass) == STATE_UNKNOWN


async def test_a_window_that_ends_with_the_phone_app_still_connected(
    hass: HomeAssistant, clock: Clock, dongle: type[StandInBleClient], loaded: MockConfigEntry
) -> None:
    """The phone app holds the dongle during the window and after it: the window itself counts
    no failure and raises no repair; after it, the polls fail as they normally do."""
    coordinator: DalyCoordinator = loaded.runtime_data
    coordinator.client.timeout = 0.1
    success = _entity(hass, Platform.SENSOR, "poll_success")
    await press_release(hass, clock)
    dongle.fail_connect = True  # the phone app took the dongle
    before = shown(hass, loaded)
    assert before[success][0] == "100.0"

    for _ in range(RELEASE_WINDOW // STEP - 1):
        await clock.tick()
    assert shown(hass, loaded) == before
    assert not ir.async_get(hass).issues

    await clock.tick()  # the window ends: the first poll fails at once
    assert not coordinator.last_update_success
    balancer = hass.states.get(_entity(hass, Platform.SWITCH, "balancer_enabled"))
    assert balancer is not None
    assert balancer.state == STATE_UNAVAILABLE
    assert shown(hass, loaded)[success][0] == "50.0"  # the setup's poll and this one
    for _ in range(2):
        await clock.tick(timedelta(seconds=INTERVAL))
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"stopped_answering_{loaded.entry_id}") is not None


async def test_a_window_while_the_module_is_lost_stays_quiet(
    hass: HomeAssistant,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """Pressed while the polls fail: the entities stay unavailable (no stale values come back,
    no "recovered" line), nothing connects, and the failures are not counted on."""
    coordinator: DalyCoordinator = loaded.runtime_data
    coordinator.client.timeout = 0.1
    dongle.fail_connect = True
    dongle.drop_links()
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    before = shown(hass, loaded)
    await press_release(hass, clock)
    caplog.clear()
    attempts = dongle.connect_attempts
    for _ in range(RELEASE_WINDOW // STEP - 1):
        await clock.tick()
    assert dongle.connect_attempts == attempts
    assert shown(hass, loaded) == before
    assert not coordinator.last_update_success
    assert "recovered" not in caplog.text


async def test_pressing_again_restarts_the_window_and_take_back_ends_it(
    hass: HomeAssistant,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """A second press restarts the 10 minutes from then; "Take the dongle back now" ends the
    window at once with a poll, and does nothing outside a window."""
    coordinator: DalyCoordinator = loaded.runtime_data
    await press_release(hass, clock)
    first_until = coordinator.released_until
    await clock.tick(timedelta(minutes=5))
    await press_release(hass, clock)
    assert first_until is not None and coordinator.released_until is not None
    assert timedelta(minutes=5) <= coordinator.released_until - first_until < timedelta(minutes=6)
    quiet = traffic(dongle, simulator)
    await clock.tick(timedelta(minutes=6))  # past the first press's window
    assert traffic(dongle, simulator) == quiet
    assert not linked(dongle)

    await press(hass, "take_back_dongle")
    assert simulator.stats.requests > quiet[2]
    assert linked(dongle)
    assert released_until(hass) == STATE_UNKNOWN
    await clock.tick(timedelta(minutes=5))  # the restarted window's timer is gone too
    assert released_until(hass) == STATE_UNKNOWN

    settled = traffic(dongle, simulator)
    await press(hass, "take_back_dongle")
    assert traffic(dongle, simulator) == settled


async def test_no_write_reaches_the_dongle_during_the_window(
    hass: HomeAssistant,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """A setting changed during the window is refused with a translated error; nothing connects."""
    await press_release(hass, clock)
    quiet = traffic(dongle, simulator)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            SWITCH_DOMAIN,
            SERVICE_TURN_OFF,
            {ATTR_ENTITY_ID: _entity(hass, Platform.SWITCH, "balancer_enabled")},
            blocking=True,
        )
    assert caught.value.translation_key == "dongle_released"
    assert "left to the DALY phone app until" in str(caught.value)
    assert traffic(dongle, simulator) == quiet
    assert simulator.value("balancer_enabled") is True


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_the_survey_and_the_window_exclude_each_other(
    hass: HomeAssistant,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """A survey's requests open the link on their own: a press during one takes effect once it
    has ended (the buttons take one press at a time), and no survey runs during a window."""
    coordinator: DalyCoordinator = loaded.runtime_data
    # The survey's answers take a while: it is under way when the other button is pressed.
    with answering_slowly(simulator) as asked:
        survey = hass.async_create_task(press(hass, "survey_registers"))
        assert await until(lambda: bool(asked))
        await press(hass, "release_dongle")
        assert survey.done()
        assert coordinator.last_survey is not None
        assert not any(part.error for part in coordinator.last_survey.ranges if part.start == 0)
        assert coordinator.released_until is not None
        assert not linked(dongle)
    await press(hass, "take_back_dongle")

    await press_release(hass, clock)
    quiet = traffic(dongle, simulator)
    with pytest.raises(HomeAssistantError) as caught:
        await press(hass, "survey_registers")
    assert caught.value.translation_key == "dongle_released"
    assert traffic(dongle, simulator) == quiet


async def test_a_diagnostics_download_during_the_window_leaves_the_dongle_alone(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    clock: Clock,
    simulator: SimulatedBalancer,
    dongle: type[StandInBleClient],
    loaded: MockConfigEntry,
) -> None:
    """The user downloads diagnostics while the phone app has the dongle: the download's fresh
    read must not connect (the dongle takes one client: it would throw the phone app out)."""
    await press_release(hass, clock)
    quiet = traffic(dongle, simulator)
    result = await get_diagnostics_for_config_entry(hass, hass_client, loaded)
    assert not linked(dongle), "the download left Home Assistant holding the dongle"
    assert traffic(dongle, simulator) == quiet
    assert result["raw_registers"]["fresh_read"]["answered"] is False
    coordinator = loaded.runtime_data
    assert coordinator.released_until is not None
    assert result["raw_registers"]["fresh_read"]["dongle_released_until"] == coordinator.released_until.isoformat()


async def test_a_poll_under_way_ends_before_the_link_closes(
    hass: HomeAssistant, simulator: SimulatedBalancer, dongle: type[StandInBleClient], loaded: MockConfigEntry
) -> None:
    """Pressed while a poll waits for its answers: the poll ends with them, then the link closes."""
    coordinator: DalyCoordinator = loaded.runtime_data
    with answering_slowly(simulator) as asked:
        polling = hass.async_create_task(coordinator.async_refresh())
        assert await until(lambda: bool(asked))
        await press(hass, "release_dongle")
        assert polling.done()
        assert coordinator.last_update_success
        assert not linked(dongle)


async def test_a_reload_ends_the_window(
    hass: HomeAssistant, clock: Clock, dongle: type[StandInBleClient], loaded: MockConfigEntry
) -> None:
    """The window lives in memory only: a reload (as a restart) takes the dongle back."""
    await press_release(hass, clock)
    assert await hass.config_entries.async_reload(loaded.entry_id)
    await hass.async_block_till_done()
    assert released_until(hass) == STATE_UNKNOWN
    assert linked(dongle)


async def test_the_buttons_are_config_entities_of_bluetooth_entries(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, loaded: MockConfigEntry
) -> None:
    """Config buttons and a diagnostic timestamp on a Bluetooth entry (none on a serial one, below)."""
    for key in ("release_dongle", "take_back_dongle"):
        registered = entity_registry.async_get(_entity(hass, Platform.BUTTON, key))
        assert registered is not None
        assert registered.entity_category is EntityCategory.CONFIG
    sensor = entity_registry.async_get(_entity(hass, Platform.SENSOR, "released_until"))
    assert sensor is not None
    assert sensor.entity_category is EntityCategory.DIAGNOSTIC
    assert sensor.original_device_class == "timestamp"
    state = hass.states.get(_entity(hass, Platform.BUTTON, "release_dongle"))
    assert state is not None
    assert state.attributes["friendly_name"].endswith("Let the phone app in for 10 minutes")


async def test_no_phone_app_buttons_on_a_serial_entry(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, init_integration: MockConfigEntry
) -> None:
    """A wired module has no dongle to leave to the phone app."""
    keys = {
        str(entity.unique_id).removeprefix(f"{init_integration.unique_id}_")
        for entity in er.async_entries_for_config_entry(entity_registry, init_integration.entry_id)
    }
    assert "survey_registers" in keys
    assert not keys & CHANGED_BY_A_PRESS
