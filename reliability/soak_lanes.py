"""The soak's machinery: one simulated module per link, polled by the real coordinator under faults.

Used by ``reliability/soak_harness.py`` (the soak) and by ``tests/components/test_soak.py`` (the
same machinery, a few polls per link, in the suite). Nothing here mocks the integration: each
link is a config entry of the real integration set up by Home Assistant, reaching its own
simulated module through

* ``tcp``: a real TCP socket (``socket://127.0.0.1:…``, a serial-to-TCP bridge);
* ``pty``: a pseudo-terminal paced at 9600 baud, opened through a stable symlink (as
  ``/dev/serial/by-id/…`` is);
* ``ble``: Home Assistant's bluetooth integration (an advertisement through its own callback,
  its device lookup, bleak-retry-connector's connect loop) with the stand-in dongle at the end.

Faults, drawn per request at ``rate`` in equal shares: the simulator's six reply faults (drop,
corrupt, split, merge, delay, garbage), the module falling asleep, and on Bluetooth the link
dropped as a request arrives (a disconnect mid-poll). Every ``episode_every`` polls the link
goes away for ``outage_polls`` polls and comes back with the faults stopped: on TCP the module is
unplugged, on the pty the port vanishes (its device closes, the symlink dangles) and reappears as
a new device, on Bluetooth the adapter is gone (links drop, connects fail) and comes back.

After every poll, everything published is compared with the ground truth the simulator recorded
while it answered (see :func:`Lane.poll`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
import contextlib
import dataclasses
from dataclasses import asdict, dataclass, field
import itertools
import math
from pathlib import Path
import random
import time
from typing import Any, override

from homeassistant import loader
from homeassistant.components.bluetooth import async_get_advertisement_callback
from homeassistant.components.number import ATTR_VALUE, DOMAIN as NUMBER_DOMAIN, SERVICE_SET_VALUE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    CONF_ADDRESS,
    CONF_PORT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, frame, translation
from homeassistant.setup import async_setup_component
from homeassistant.util.async_ import _SHUTDOWN_RUN_CALLBACK_THREADSAFE
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_test_home_assistant

from aiodalybalancer.frames import Function, WriteSingle
from aiodalybalancer.models import Settings, Status
from aiodalybalancer.registers import (
    BALANCER,
    BY_KEY,
    D2_ADDRESS,
    EXTENDED,
    LIVE,
    SETTINGS,
    SLEEP_NEVER,
    Block,
    DecodedValue,
)
from aiodalybalancer.tools.simulator import (
    Fault,
    FaultPlan,
    Reply,
    ServedRead,
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
    serve_pty,
    serve_tcp,
)
from custom_components.daly_active_balance import writes
from custom_components.daly_active_balance.binary_sensor import BINARY_SENSORS
from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONF_UPDATE_INTERVAL,
    CONNECTION_BLE,
    CONNECTION_SERIAL,
    DOMAIN,
)
from custom_components.daly_active_balance.coordinator import DalyCoordinator, DalyData
from custom_components.daly_active_balance.number import NUMBERS
from custom_components.daly_active_balance.select import SELECTS
from custom_components.daly_active_balance.sensor import SENSORS
from custom_components.daly_active_balance.switch import SWITCHES
from tests.components.ble_helpers import DALY_ADDRESS, inject_advertisement, service_info, use_standin_dongle
from tests.components.entities import ALWAYS_AVAILABLE
from tests.leaks import until

LINKS = ("tcp", "pty", "ble")
#: Fault kinds drawn before the simulator's reply faults: the module falling asleep, and (BLE)
#: the link dropped as a request arrives.
SLEEP = "sleep"
DISCONNECT = "disconnect"
#: Verified writes made under faults, in turn (each changes a setting).
#: The settings the soak writes, by register key (what the entities write, from writes.py).
WRITABLE: dict[str, writes.Writable] = {
    setting.register.key: setting for setting in vars(writes).values() if isinstance(setting, writes.Writable)
}
WRITES: tuple[tuple[str, tuple[DecodedValue, ...]], ...] = (
    ("balance_start_delta", (0.025, 0.02)),
    ("balance_start_voltage", (3.35, 3.3)),
    ("balancer_enabled", (False, True)),
)
#: The 9600-baud line of the module's UART, as the pty is paced.
PTY_BAUD = 9600


@dataclass(frozen=True)
class SoakSettings:
    """How hard and how long each link is soaked."""

    polls: int = 500
    rate: float = 0.2
    timeout: float = 0.3
    seed: int = 20261124
    write_every: int = 25
    episode_every: int = 100
    outage_polls: int = 2
    #: Links soaked at once (each its own module and config entry).
    concurrent: int = 2
    #: Print a progress line every this many polls per link (0: never), and every wrong poll.
    progress_every: int = 0
    #: The links soaked, slowest first.
    links: tuple[str, ...] = ("pty", "tcp", "ble")


# --- the module ---------------------------------------------------------------------------------


class SoakBalancer(SimulatedBalancer):
    """The simulated module, with the faults that are not a reply's own.

    * Falling asleep is modelled honestly: the module's clock jumps past its sleep time without
      traffic, so the request that arrives only wakes it and is lost (the simulator's own sleep
      model), and the cells have drifted meanwhile.
    * ``drop_link`` (Bluetooth): the link drops as the request arrives, which is lost with it.
    * ``interrupt`` (the restart): a write that arrives sets ``write_arrived``; the module takes
      it and holds its echo (``take``), or the write is lost on the way (not ``take``).

    Every write the module takes is recorded in ``taken`` (register, raw value).
    """

    def __init__(self, config: SimulatorConfig, *, seed: int) -> None:
        """A module with no faults yet."""
        super().__init__(config)
        self.sleep_rate = 0.0
        self.drop_rate = 0.0
        self.drop_link: Callable[[], object] | None = None
        self.sleeps = 0
        self.drops = 0
        self.taken: list[tuple[int, int]] = []
        self.interrupt: bool | None = None
        self.write_arrived = False
        self._draws = random.Random(seed)

    def injected(self) -> int:
        """Faults injected so far, of every kind."""
        return sum(self.stats.faults.values()) + self.sleeps + self.drops

    @override
    def receive(self, data: bytes) -> list[Reply]:
        if not data or self.silent:
            return super().receive(data)
        write = len(data) == 8 and data[0] == D2_ADDRESS and data[1] == Function.WRITE_SINGLE
        if write and self.interrupt is not None:
            self.write_arrived = True
            if not self.interrupt:
                return []  # lost on the way: the module never saw it
        if self.drop_link is not None and self.drop_rate and self._draws.random() < self.drop_rate:
            self.drops += 1
            self.drop_link()
            return []
        if self.sleep_rate and self._draws.random() < self.sleep_rate:
            sleep = self.value("sleep_time")
            assert isinstance(sleep, int)
            if sleep != SLEEP_NEVER:
                self.advance(sleep + 1)
                self.sleeps += 1
        replies = super().receive(data)
        if write and self.interrupt:
            replies = [dataclasses.replace(reply, delay=reply.delay + 3600) for reply in replies]
        return replies

    @override
    def _write(self, request: WriteSingle) -> bytes | None:
        echo = super()._write(request)
        if echo is not None:
            self.taken.append((request.register, request.value))
        return echo


# --- ground truth ---------------------------------------------------------------------------------


def _answers(served: Iterable[ServedRead], block: Block) -> list[dict[str, DecodedValue]]:
    """The decoded answers the module gave for ``block`` among ``served`` (deduplicated)."""
    seen: list[tuple[int, ...]] = []
    for read in served:
        if read.start == block.start and len(read.words) == block.count and read.words not in seen:
            seen.append(read.words)
    return [block.decode(words) for words in seen]


def _flat(value: object) -> list[object]:
    return list(value) if isinstance(value, tuple) else [value]


def differences[R: (Status, Settings)](published: R, truth: R) -> int:
    """How many values differ between two records (tuples count element by element)."""
    wrong = 0
    for item in dataclasses.fields(published):
        mine, real = _flat(getattr(published, item.name)), _flat(getattr(truth, item.name))
        wrong += sum(a != b for a, b in itertools.zip_longest(mine, real, fillvalue=object()))
    return wrong


def status_errors(status: Status, served: Sequence[ServedRead]) -> int:
    """Values of ``status`` the module did not report in any answer of this poll (0 = all true)."""
    candidates = [_answers(served, block) for block in (LIVE, EXTENDED, BALANCER)]
    candidates = [c or [{}] for c in candidates]  # a block with no answer this poll: all stale
    best = math.inf
    for live, extended, balancer in itertools.product(*candidates):
        if not live:
            continue
        best = min(best, differences(status, Status.from_d2(live, extended or None, balancer or None)))
        if best == 0:
            return 0
    return int(best) if best != math.inf else len(dataclasses.fields(Status))


def settings_truth(sim: SimulatedBalancer) -> Settings:
    """The settings the module holds right now."""
    return Settings.from_decoded(SETTINGS.decode(sim.words[SETTINGS.start : SETTINGS.end]))


# --- what the entities show -----------------------------------------------------------------------


def _same_number(shown: str, unit: str | None, expected: object, native_unit: str | None) -> bool:
    if expected is None:
        return shown in {STATE_UNKNOWN, STATE_UNAVAILABLE}
    try:
        value = float(shown)
    except ValueError:
        return False
    if unit == "mV" and native_unit == "V":
        value /= 1000
    assert isinstance(expected, int | float)
    return math.isclose(value, float(expected), rel_tol=1e-9, abs_tol=1e-9)


#: Keys of entities that do not show a value of the module.
def module_entities(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """Key → entity id of every enabled entity showing a value of the module.

    The "Keep Bluetooth connected" switch is an option of the entry, the link sensors count the
    polls, the pack check judges the findings and the phone app's buttons act on the link: none
    is a value of the module (all stay available while it is silent).
    """
    registry = er.async_get(hass)
    return {
        key: e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if not e.disabled and (key := str(e.unique_id).removeprefix(f"{entry.unique_id}_")) not in ALWAYS_AVAILABLE
    }


def entity_errors(hass: HomeAssistant, entities: dict[str, str], data: DalyData, *, available: bool) -> int:
    """Entities whose state is not what ``data`` says (or that show a value while unavailable)."""
    sensors = {d.key: d for d in SENSORS}
    binaries = {d.key: d for d in (*BINARY_SENSORS, *SWITCHES)}
    numbers = {d.key: d for d in NUMBERS}
    selects = {d.key: d for d in SELECTS}
    wrong = 0
    for key, entity_id in entities.items():
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        shown, unit = state.state, state.attributes.get("unit_of_measurement")
        if not available:
            wrong += shown != STATE_UNAVAILABLE
            continue
        if key in sensors:
            description = sensors[key]
            expected: object = description.value_fn(data)
            if isinstance(expected, int | float) and not isinstance(expected, bool):
                wrong += not _same_number(shown, unit, expected, description.native_unit_of_measurement)
            else:
                wrong += shown != (STATE_UNKNOWN if expected is None else str(expected))
        elif key in binaries:
            is_on = binaries[key].is_on_fn(data)  # type: ignore[attr-defined]
            wrong += shown != (STATE_UNKNOWN if is_on is None else STATE_ON if is_on else STATE_OFF)
        elif key in numbers:
            number = numbers[key]
            raw = number.value_fn(data.settings)
            wrong += not _same_number(shown, None, None if raw is None else number.to_native(raw), None)
        elif key in selects:
            option = selects[key].value_fn(data.settings)
            wrong += shown != (STATE_UNKNOWN if option is None else option)
    return wrong


# --- one link -------------------------------------------------------------------------------------


@dataclass
class Lane:
    """One module on one link, its config entry, and what its soak measured."""

    name: str
    sim: SoakBalancer
    entry: MockConfigEntry
    #: Take the link away (``True``) or bring it back (``False``).
    away: Callable[[bool], Awaitable[None]]
    #: Servers to close at the end (the pty's is replaced when the port reappears).
    servers: list[SimulatorServer] = field(default_factory=list)
    #: What happens on the link between two polls (Bluetooth: the dongle is seen advertising).
    between_polls: Callable[[], None] | None = None
    polls: int = 0
    faulted_polls: int = 0
    wrong_values: int = 0
    wrong_entities: int = 0
    unavailable: int = 0
    outage_polls: int = 0
    recoveries: list[int] = field(default_factory=list)
    writes: int = 0
    writes_verified: int = 0
    writes_reported_failed: int = 0
    writes_unverified: int = 0
    requested: set[tuple[int, int]] = field(default_factory=set)
    wrong_details: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    client_stats: dict[str, int] = field(default_factory=dict)
    #: Print what a wrong poll published as soon as it happens.
    report: bool = False

    @property
    def coordinator(self) -> DalyCoordinator:
        """The entry's coordinator."""
        coordinator: DalyCoordinator = self.entry.runtime_data
        return coordinator

    async def poll(self, hass: HomeAssistant, *, faulted: bool = False) -> bool:
        """One refresh, checked against what the module answered during it.

        After a successful poll the status must equal ``Status.from_d2`` of answers the module
        made during that poll (cells drift: a later snapshot would be unfair, an answer from an
        earlier poll counts as wrong), the settings must equal the module's register bank, and
        every entity must show what that data says. After a failed poll every entity must be
        unavailable (an old value shown as current counts as wrong). ``faulted``: the poll is
        faulty whatever the module does (the link is away).
        """
        sim, coordinator = self.sim, self.coordinator
        if self.between_polls is not None:
            self.between_polls()
        served = sim.served if sim.served is not None else []
        mark, injected = len(served), sim.injected()
        await coordinator.async_refresh()
        this_poll = served[mark:]
        self.polls += 1
        self.faulted_polls += faulted or sim.injected() != injected
        ok = coordinator.last_update_success
        entities = module_entities(hass, self.entry)
        if ok:
            data = coordinator.data
            status_wrong = status_errors(data.status, this_poll)
            settings_wrong = differences(data.settings, settings_truth(sim))
            self.wrong_values += status_wrong + settings_wrong
            if (status_wrong or settings_wrong) and len(self.wrong_details) < 10:
                self.wrong_details.append(self._explain(data, this_poll))
                if self.report:
                    print(
                        f"[soak] {self.name}: poll {self.polls} published wrong values: {self.wrong_details[-1]}",
                        flush=True,
                    )
            self.wrong_entities += entity_errors(hass, entities, data, available=True)
        else:
            self.wrong_entities += entity_errors(hass, entities, coordinator.data, available=False)
        if len(served) > 1000:  # only this poll's answers matter
            del served[:-100]
        return ok

    def _explain(self, data: DalyData, served: Sequence[ServedRead]) -> dict[str, Any]:
        """What a wrong poll published, against what the module answered during it."""
        truth = settings_truth(self.sim)
        answered = [LIVE.decode(r.words) for r in served if r.start == LIVE.start]
        cells = data.status.cell_voltages
        return {
            "poll": self.polls,
            "served": [(round(read.time, 3), read.start, len(read.words)) for read in served],
            # The cells that differ from each live answer of this poll: (index, published, answered).
            "cells_wrong": [
                [(i, a, b) for i, (a, b) in enumerate(zip(cells, answer["cell_voltages"], strict=False)) if a != b]
                for answer in answered
            ],
            "settings_wrong": {
                name: (getattr(data.settings, name), value)
                for name, value in dataclasses.asdict(truth).items()
                if getattr(data.settings, name) != value
            },
            "client": asdict(self.coordinator.client.stats),
        }

    async def write(self, hass: HomeAssistant, key: str, value: DecodedValue) -> None:
        """A verified write through the coordinator, under faults."""
        self.writes += 1
        self.requested.add(_raw(key, value))
        try:
            await self.coordinator.async_write(WRITABLE[key], value)  # type: ignore[arg-type]
        except HomeAssistantError:
            self.writes_reported_failed += 1
        else:
            self.writes_verified += 1
            if self.sim.value(key) != value:
                self.writes_unverified += 1
        await hass.async_block_till_done()  # the refresh the write asked for

    def faults(self, plan: FaultPlan | None, sleep_rate: float = 0.0, drop_rate: float = 0.0) -> None:
        """Start (a plan) or stop (``None``) the faults."""
        self.sim.faults = plan or FaultPlan()
        self.sim.sleep_rate = sleep_rate if plan else 0.0
        self.sim.drop_rate = drop_rate if plan else 0.0

    def result(self) -> dict[str, Any]:
        """The lane's numbers: the issue's list first."""
        sim = self.sim
        exchanges = sim.stats.requests + sim.sleeps + sim.drops
        return {
            "polls": self.polls,
            "fault_rate": round(self.faulted_polls / self.polls, 4) if self.polls else 0.0,
            "wrong_values_published": self.wrong_values + self.wrong_entities,
            "unavailable_polls": self.unavailable,
            "recovery_polls_max": max(self.recoveries, default=0),
            "writes": self.writes,
            "writes_unverified": self.writes_unverified,
            "faulted_polls": self.faulted_polls,
            "exchange_fault_rate": round(sim.injected() / exchanges, 4) if exchanges else 0.0,
            "faults": {**dict(sorted(sim.stats.faults.items())), SLEEP: sim.sleeps, DISCONNECT: sim.drops},
            "exchanges": exchanges,
            "wrong_entity_states": self.wrong_entities,
            "wrong_details": self.wrong_details,
            "outage_polls": self.outage_polls,
            "recovery_episodes": len(self.recoveries),
            "writes_verified": self.writes_verified,
            "writes_reported_failed": self.writes_reported_failed,
            # Every write the module saw was one the soak asked for (a refused one never is).
            "unrequested_writes": sum(write not in self.requested for write in sim.taken) + sim.stats.refused_writes,
            "client_stats": self.client_stats,
            "seconds": round(self.seconds, 1),
        }


def _raw(key: str, value: DecodedValue) -> tuple[int, int]:
    reg = BY_KEY[key]
    return reg.address, reg.encode(value)  # type: ignore[arg-type]


# --- the three links ------------------------------------------------------------------------------


def _module(name: str, settings: SoakSettings) -> SoakBalancer:
    seed = settings.seed + LINKS.index(name) * 1000
    baud = PTY_BAUD if name == "pty" else None
    return SoakBalancer(SimulatorConfig(cells=16, seed=seed, pace_baud=baud), seed=seed + 1)


async def _entry(hass: HomeAssistant, unique_id: str, data: dict[str, Any]) -> MockConfigEntry:
    """A config entry added (and so stored) and set up like the config flow's would be."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"DALY balancer {unique_id}",
        unique_id=unique_id,
        data=data,
        options={CONF_UPDATE_INTERVAL: 3600},  # the soak drives the polls itself
    )
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED, entry.reason
    return entry


async def tcp_lane(hass: HomeAssistant, settings: SoakSettings, **_: Any) -> Lane:
    """A module behind a TCP bridge; away: unplugged (silent)."""
    sim = _module("tcp", settings)
    server = await serve_tcp(sim)
    entry = await _entry(hass, "soak-tcp", {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: server.url})

    async def away(gone: bool) -> None:
        sim.silent = gone

    return Lane("tcp", sim, entry, away, [server])


async def pty_lane(hass: HomeAssistant, settings: SoakSettings, *, folder: Path, **_: Any) -> Lane:
    """A module on a 9600-baud serial line; away: the port vanishes, then reappears."""
    sim = _module("pty", settings)
    link = folder / "usb-DALY-soak-if00-port0"
    servers = [await serve_pty(sim)]
    link.symlink_to(servers[0].url)
    entry = await _entry(hass, "soak-pty", {CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: str(link)})

    async def away(gone: bool) -> None:
        if gone:  # unplugged: the device closes, its stable path dangles
            await servers[-1].close()
            link.unlink()
        else:  # plugged back in, maybe as another tty
            servers.append(await serve_pty(sim))
            link.symlink_to(servers[-1].url)

    return Lane("pty", sim, entry, away, servers)


async def ble_lane(hass: HomeAssistant, settings: SoakSettings, *, monkeypatch: pytest.MonkeyPatch, **_: Any) -> Lane:
    """A module behind the BLE dongle, through Home Assistant's bluetooth integration.

    Disconnect mid-poll: the link drops as a request arrives. Away: the adapter is gone (every
    link drops and connecting fails), then it is back.
    """
    sim = _module("ble", settings)
    dongle = use_standin_dongle(monkeypatch, sim)
    sim.drop_link = dongle.drop_links
    await inject_advertisement(hass, service_info())
    entry = await _entry(hass, DALY_ADDRESS, {CONF_CONNECTION: CONNECTION_BLE, CONF_ADDRESS: DALY_ADDRESS})

    async def away(gone: bool) -> None:
        dongle.fail_connect = gone
        if gone:
            dongle.drop_links()

    def seen() -> None:
        # A real adapter's scanner keeps seeing the dongle, so Home Assistant keeps it among the
        # devices it can connect to. An injected advertisement has no scanner behind it: Home
        # Assistant's sweep (every 5 minutes) forgets the device unless it is seen again.
        if not dongle.fail_connect:
            async_get_advertisement_callback(hass)(service_info())

    return Lane("ble", sim, entry, away, between_polls=seen)


LANES: dict[str, Callable[..., Awaitable[Lane]]] = {"tcp": tcp_lane, "pty": pty_lane, "ble": ble_lane}


async def soak_lane(hass: HomeAssistant, lane: Lane, settings: SoakSettings) -> None:
    """Poll one lane ``settings.polls`` times under faults, with writes and outage episodes."""
    started = time.monotonic()
    coordinator = lane.coordinator
    coordinator.client.timeout = settings.timeout
    seed = settings.seed + LINKS.index(lane.name) * 1000
    # Equal shares of ``rate`` for every kind: the drawn-first kinds (sleep; BLE: disconnect),
    # then the simulator's plan draws one of its six reply faults for the rest.
    first = 2 if lane.name == "ble" else 1
    share = settings.rate / (len(Fault) + first)
    reply_rate = min(1.0, (settings.rate - first * share) / (1 - first * share))
    plan = FaultPlan(rate=reply_rate, kinds=tuple(Fault), delay=settings.timeout * 1.5, seed=seed)
    periods = itertools.count()

    def faults(on: bool) -> None:
        # A new plan restarts its draws from its seed: each fault period gets its own seed.
        if on:
            lane.faults(dataclasses.replace(plan, seed=seed + next(periods)), share, share if first == 2 else 0.0)
        else:
            lane.faults(None)

    lane.sim.served = []
    lane.report = bool(settings.progress_every)
    writes = itertools.cycle([(key, value) for key, values in WRITES for value in values])
    faults(True)
    for number in range(1, settings.polls + 1):
        if not await lane.poll(hass):
            lane.unavailable += 1
        if number % settings.write_every == 0:
            await lane.write(hass, *next(writes))
        if number % settings.episode_every == 0 or number == settings.polls:
            faults(False)
            await lane.away(True)
            for _ in range(settings.outage_polls):
                lane.outage_polls += 1
                if await lane.poll(hass, faulted=True):
                    lane.wrong_values += 1  # a poll of a module that is away cannot succeed
            await lane.away(False)
            needed = 0
            while True:
                needed += 1
                if await lane.poll(hass) or needed >= 10:
                    break
            lane.recoveries.append(needed)
            faults(True)
        if settings.progress_every and number % settings.progress_every == 0:
            result = lane.result()
            print(
                f"[soak] {lane.name}: {number}/{settings.polls} polls, fault rate {result['fault_rate']:.1%}, "
                f"wrong {result['wrong_values_published']}, unavailable {lane.unavailable}, "
                f"writes {lane.writes} ({lane.writes_unverified} unverified), {time.monotonic() - started:.0f} s",
                flush=True,
            )
    faults(False)
    lane.sim.served = None
    lane.seconds = time.monotonic() - started
    lane.client_stats = asdict(coordinator.client.stats)


async def soak_links(
    hass: HomeAssistant,
    settings: SoakSettings,
    *,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, Lane], int]:
    """Soak every link, at most ``settings.concurrent`` at once.

    Returns the lanes and the most modules that were polled at the same time. The slowest link
    (the 9600-baud pty) starts first; the next starts when a slot frees. The lanes' entries stay
    loaded (the restart uses the wired ones); the BLE entry is removed.
    """
    gate = asyncio.Semaphore(settings.concurrent)
    lanes: dict[str, Lane] = {}
    running = most = 0

    async def one(name: str) -> None:
        nonlocal running, most
        async with gate:
            lane = await LANES[name](hass, settings, folder=folder, monkeypatch=monkeypatch)
            lanes[name] = lane
            running += 1
            most = max(most, running)
            try:
                await soak_lane(hass, lane, settings)
            finally:
                running -= 1
            if name == "ble":  # the restart needs no Bluetooth: this entry leaves storage
                await hass.config_entries.async_remove(lane.entry.entry_id)

    async with asyncio.TaskGroup() as group:
        for name in settings.links:
            group.create_task(one(name))
    return {name: lanes[name] for name in LINKS if name in lanes}, most


# --- Home Assistant stopped in the middle of a verified write, then started again ------------------

#: The write interrupted on each wired link: on TCP the module takes it (its echo is held), on
#: the pty the write is lost on the way (the module never sees it).
RESTART_WRITES: dict[str, tuple[str, float, bool]] = {
    "tcp": ("balance_start_voltage", 3.4, True),
    "pty": ("balance_start_delta", 0.03, False),
}


async def restart_mid_write(hass: HomeAssistant, lanes: dict[str, Lane]) -> dict[str, Any]:
    """Stop Home Assistant in the middle of a verified write and start it again; check what it shows.

    The new instance has the same config entry storage and reaches the same modules. The write
    is a service call running as a background task (as a UI call would); stopping Home Assistant
    cancels it. After the restart, every setting shown must be the module's real value, the
    interrupted one included (taken or not), and the interrupted call must not have claimed
    success for a value the module does not hold.
    """
    wired = {name: lanes[name] for name in RESTART_WRITES if name in lanes}
    calls = {}
    for name, lane in wired.items():
        key, value, take = RESTART_WRITES[name]
        number = next(d for d in NUMBERS if d.key == key)
        lane.sim.interrupt = take
        lane.requested.add(_raw(key, value))
        lane.sim.write_arrived = False
        entity_id = module_entities(hass, lane.entry)[key]
        calls[name] = hass.async_create_background_task(
            hass.services.async_call(
                NUMBER_DOMAIN,
                SERVICE_SET_VALUE,
                {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: number.to_native(value)},
                blocking=True,
            ),
            f"soak: write {key} on {name}",
        )
    await until(lambda: all(lane.sim.write_arrived for lane in wired.values()), 10)
    arrived = {name: lane.sim.write_arrived for name, lane in wired.items()}
    await hass.async_stop()
    # Let another instance run on this loop (as the test harness does between instances).
    with contextlib.suppress(AttributeError):
        delattr(hass.loop, _SHUTDOWN_RUN_CALLBACK_THREADSAFE)
    claimed = {name: call.done() and not call.cancelled() and call.exception() is None for name, call in calls.items()}
    links_open = {name: lane.coordinator.client.transport.is_open for name, lane in wired.items()}
    for lane in wired.values():
        lane.sim.interrupt = None

    result: dict[str, Any] = {}
    async with async_test_home_assistant(hass.loop, config_dir=hass.config.config_dir) as again:
        frame.async_setup(again)
        await translation.async_load_integrations(again, {"homeassistant"})
        again.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # custom integrations allowed
        await again.config_entries.async_initialize()  # the stored entries
        assert await async_setup_component(again, "usb", {})
        assert await async_setup_component(again, DOMAIN, {})  # as at start: every stored entry
        await again.async_block_till_done()
        stored = {entry.unique_id: entry for entry in again.config_entries.async_entries(DOMAIN)}
        for name, lane in wired.items():
            key, value, _take = RESTART_WRITES[name]
            entry = stored.get(lane.entry.unique_id)
            loaded = entry is not None and entry.state is ConfigEntryState.LOADED
            wrong = 0
            shown: object = None
            if entry is not None and loaded:
                coordinator: DalyCoordinator = entry.runtime_data
                wrong += differences(coordinator.data.settings, settings_truth(lane.sim))
                entities = module_entities(again, entry)  # type: ignore[arg-type]
                wrong += entity_errors(again, entities, coordinator.data, available=True)
                state = again.states.get(entities[key])
                shown = state.state if state is not None else None
                number = next(d for d in NUMBERS if d.key == key)
                real = lane.sim.value(key)
                assert isinstance(real, float | int)
                wrong += shown != str(number.to_native(real))
            # Claimed but never taken: the call returned success for a value the module lacks.
            never_taken = claimed[name] and lane.sim.value(key) != value
            result[name] = {
                "write": key,
                "module_took_it": _raw(key, value) in lane.sim.taken,
                "write_on_the_wire_at_stop": arrived[name],
                "call_claimed_success": claimed[name],
                "link_open_after_stop": links_open[name],
                "loaded_after_restart": bool(loaded),
                "shown_after_restart": shown,
                "module_value": lane.sim.value(key),
                "wrong_values_after_restart": wrong,
                "claimed_never_taken": int(never_taken),
            }
        for entry in again.config_entries.async_entries():  # as the test harness does at the end
            if entry.state is ConfigEntryState.LOADED:
                await again.config_entries.async_unload(entry.entry_id)
        await again.async_block_till_done(wait_background_tasks=True)
        await again.async_stop(force=True)
    with contextlib.suppress(AttributeError):
        delattr(hass.loop, _SHUTDOWN_RUN_CALLBACK_THREADSAFE)
    return result
