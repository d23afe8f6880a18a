"""The fault-injection soak, run inside Home Assistant's test harness by ``reliability/soak.py``.

This is a pytest module on purpose (it is not under ``tests/``, so the suite does not collect
it): the ``hass`` fixture of pytest-homeassistant-custom-component builds Home Assistant exactly
as the suite does, and its teardown fails on lingering tasks or timers.

The real integration is set up on a config entry that points at the simulator over a real TCP
socket (``socket://``). Then, with faults injected at ``DALY_SOAK_FAULT_RATE`` of the exchanges
(the simulator's six reply faults plus the module falling asleep), the coordinator is refreshed
``DALY_SOAK_POLLS`` times back to back. After every poll, everything published (the
coordinator's data and the state of every entity) is compared with the simulator's ground
truth: the register words the module answered with *during that poll*, recorded by the
simulator when it made each answer (the cells drift, so a later snapshot would not do).
Verified writes are made under faults too, and checked against the module's register bank.
The result goes to the JSON file named by ``DALY_SOAK_RESULT``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import dataclasses
from dataclasses import fields
import itertools
import json
import math
import os
from pathlib import Path
import random
import time
from typing import Any, override

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PORT, STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.daly_active_balance  # noqa: F401 - lets HA's loader find the integration
from custom_components.daly_active_balance.binary_sensor import BINARY_SENSORS
from custom_components.daly_active_balance.const import CONF_CONNECTION, CONF_UPDATE_INTERVAL, CONNECTION_SERIAL, DOMAIN
from custom_components.daly_active_balance.coordinator import DalyCoordinator, DalyData
from custom_components.daly_active_balance.number import NUMBERS
from custom_components.daly_active_balance.protocol.client import DalyClient
from custom_components.daly_active_balance.protocol.models import Settings, Status
from custom_components.daly_active_balance.protocol.registers import (
    BALANCER,
    EXTENDED,
    LIVE,
    SETTINGS,
    SLEEP_NEVER,
    Block,
    DecodedValue,
)
from custom_components.daly_active_balance.protocol.transport import SerialTransport
from custom_components.daly_active_balance.select import SELECTS
from custom_components.daly_active_balance.sensor import SENSORS
from custom_components.daly_active_balance.switch import SWITCHES
from daly_tools.simulator import (
    Fault,
    FaultPlan,
    ServedRead,
    SimulatedBalancer,
    SimulatorConfig,
    serve_tcp,
)
from tests.leaks import live_tasks, open_fds, until

#: Fault kinds mixed in the soak: the simulator's six reply faults, and the module falling asleep.
SLEEP = "sleep"
KINDS = (*(fault.value for fault in Fault), SLEEP)
#: Polls between two outage-and-recovery episodes, and polls the module stays unplugged in one.
EPISODE_EVERY = 100
OUTAGE_POLLS = 2
#: Polls between two verified writes made under faults (each changes a setting).
WRITE_EVERY = 25
WRITES: tuple[tuple[str, tuple[DecodedValue, ...]], ...] = (
    ("balance_start_delta", (0.025, 0.02)),
    ("balance_start_voltage", (3.35, 3.3)),
    ("balancer_enabled", (False, True)),
)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class SoakBalancer(SimulatedBalancer):
    """The simulated module, which can also fall asleep on its own at a given rate.

    Falling asleep is modelled honestly: the module's clock jumps past its sleep time without
    traffic, so the request that arrives is only what wakes it and is lost (the simulator's
    own sleep model), and the cells have drifted meanwhile.
    """

    def __init__(self, config: SimulatorConfig, *, sleep_rate: float, seed: int) -> None:
        """A module that sleeps at ``sleep_rate`` of the host's requests."""
        super().__init__(config)
        self.sleep_rate = sleep_rate
        self.sleeps = 0
        self._sleep_rng = random.Random(seed)

    @override
    def receive(self, data: bytes) -> list[Any]:
        if data and not self.silent and self.sleep_rate and self._sleep_rng.random() < self.sleep_rate:
            sleep = self.value("sleep_time")
            assert isinstance(sleep, int)
            if sleep != SLEEP_NEVER:
                self.advance(sleep + 1)
                self.sleeps += 1
        return super().receive(data)


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


def _differences(published: object, truth: object) -> int:
    """How many values differ between two dataclass instances (tuples count element by element)."""
    wrong = 0
    for field in fields(published):  # type: ignore[arg-type]
        mine, real = _flat(getattr(published, field.name)), _flat(getattr(truth, field.name))
        wrong += sum(a != b for a, b in itertools.zip_longest(mine, real, fillvalue=object()))
    return wrong


def _status_errors(status: Status, served: Sequence[ServedRead]) -> int:
    """Values of ``status`` the module did not report in any answer of this poll (0 = all true)."""
    candidates = [_answers(served, block) for block in (LIVE, EXTENDED, BALANCER)]
    if not all(candidates):  # a block with no answer this poll: everything from it is stale
        candidates = [c or [{}] for c in candidates]
    best = math.inf
    for live, extended, balancer in itertools.product(*candidates):
        if not live:
            continue
        best = min(best, _differences(status, Status.from_d2(live, extended or None, balancer or None)))
        if best == 0:
            return 0
    return int(best) if best != math.inf else len(fields(Status))


def _explain(
    data: DalyData, sim: SimulatedBalancer, served: Sequence[ServedRead], stats: dict[str, int]
) -> dict[str, Any]:
    """What a wrong poll published, against what the module answered during it (for the report)."""
    truth = _settings_truth(sim)
    return {
        "time": sim.served[-1].time if sim.served else None,
        "served": [(read.time, read.start, len(read.words)) for read in served],
        "cells": data.status.cell_voltages[:4],
        "live_answers": [LIVE.decode(read.words)["cell_voltages"][:4] for read in served if read.start == LIVE.start],
        "settings_wrong": {
            f.name: (getattr(data.settings, f.name), getattr(truth, f.name))
            for f in fields(truth)
            if getattr(data.settings, f.name) != getattr(truth, f.name)
        },
        "client": stats,
    }


def _settings_truth(sim: SimulatedBalancer) -> Settings:
    return Settings.from_decoded(SETTINGS.decode(sim.words[SETTINGS.start : SETTINGS.end]))


# --- what the entities show -----------------------------------------------------------------------


def _shown(hass: HomeAssistant, entity_id: str) -> tuple[str, str | None]:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state, state.attributes.get("unit_of_measurement")


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


def _entity_errors(hass: HomeAssistant, entities: dict[str, str], data: DalyData, *, available: bool) -> int:
    """Entities whose state is not what ``data`` says (or that show a value while unavailable)."""
    sensors = {d.key: d for d in SENSORS}
    binaries = {d.key: d for d in (*BINARY_SENSORS, *SWITCHES)}
    numbers = {d.key: d for d in NUMBERS}
    selects = {d.key: d for d in SELECTS}
    wrong = 0
    for key, entity_id in entities.items():
        shown, unit = _shown(hass, entity_id)
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


# --- leaks ----------------------------------------------------------------------------------------


# --- the soak -------------------------------------------------------------------------------------


def _write_result(results: dict[str, Any]) -> None:
    Path(os.environ.get("DALY_SOAK_RESULT", "soak-result.json")).write_text(json.dumps(results))


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load this custom integration."""


async def test_soak(hass: HomeAssistant, socket_enabled: None) -> None:
    """The soak (see the module docstring); writes its numbers to ``DALY_SOAK_RESULT``."""
    polls = int(os.environ.get("DALY_SOAK_POLLS", "1000"))
    rate = _env_float("DALY_SOAK_FAULT_RATE", 0.2)
    timeout = _env_float("DALY_SOAK_TIMEOUT", 0.3)
    seed = int(os.environ.get("DALY_SOAK_SEED", "20261124"))
    started = time.monotonic()

    # Each of the seven kinds gets an equal share of ``rate``: sleeping is drawn first, then the
    # simulator's plan draws one of its six reply faults for the rest.
    sleep_rate = rate / len(KINDS)
    reply_rate = (rate - sleep_rate) / (1 - sleep_rate)
    plan = FaultPlan(rate=reply_rate, kinds=tuple(Fault), delay=timeout * 1.5, seed=seed)
    sim = SoakBalancer(SimulatorConfig(cells=16, seed=seed), sleep_rate=0.0, seed=seed + 1)
    server = await serve_tcp(sim)

    assert await async_setup_component(hass, "usb", {})  # an after-dependency with its own watcher
    await hass.async_block_till_done()
    warm = DalyClient(SerialTransport(server.url))  # the loop creates its executor on first use
    await warm.poll()
    await warm.close()
    await until(lambda: server.connections == 0)
    fds_before = open_fds()
    tasks_before = live_tasks()

    entry = MockConfigEntry(
        domain=DOMAIN,
        title="DALY balancer 16S",
        unique_id="soak",
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: server.url},
        options={CONF_UPDATE_INTERVAL: 3600},  # the soak drives the polls itself
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator: DalyCoordinator = entry.runtime_data
    client = coordinator.client
    client.timeout = timeout
    registry = er.async_get(hass)
    entities = {
        str(e.unique_id).removeprefix("soak_"): e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if not e.disabled
    }

    sim.served = []
    results: dict[str, Any] = {}
    wrong_values = wrong_entities = unavailable = 0
    recoveries: list[int] = []
    write_attempts = writes_ok = writes_reported = writes_silently_failed = 0
    write_cycle = itertools.cycle([(key, value) for key, values in WRITES for value in values])
    outage_polls = 0
    wrong_details: list[dict[str, Any]] = []

    async def poll() -> bool:
        nonlocal wrong_values, wrong_entities
        mark = len(sim.served or [])
        await coordinator.async_refresh()
        served = (sim.served or [])[mark:]
        ok = coordinator.last_update_success
        if ok:
            data = coordinator.data
            status_wrong = _status_errors(data.status, served)
            settings_wrong = _differences(data.settings, _settings_truth(sim))
            wrong_values += status_wrong + settings_wrong
            if (status_wrong or settings_wrong) and len(wrong_details) < 10:
                wrong_details.append(_explain(data, sim, served, dataclasses.asdict(client.stats)))
            wrong_entities += _entity_errors(hass, entities, data, available=True)
        else:
            wrong_entities += _entity_errors(hass, entities, coordinator.data, available=False)
        # Keep the ground-truth log short: only this poll's answers matter.
        if sim.served is not None and len(sim.served) > 1000:
            del sim.served[:-100]
        return ok

    episodes = itertools.count()

    def faults(on: bool) -> None:
        # A new plan restarts its draws from its seed: each fault period gets its own seed, so
        # the periods do not replay one sequence of faults.
        sim.faults = dataclasses.replace(plan, seed=seed + next(episodes)) if on else FaultPlan()
        sim.sleep_rate = sleep_rate if on else 0.0

    faults(True)
    for number in range(1, polls + 1):
        if not await poll():
            unavailable += 1
        if number % WRITE_EVERY == 0:
            key, value = next(write_cycle)
            write_attempts += 1
            try:
                await coordinator.async_write(key, value)  # type: ignore[arg-type]
            except HomeAssistantError:
                writes_reported += 1
            else:
                writes_ok += 1
                if sim.value(key) != value:
                    writes_silently_failed += 1
            await hass.async_block_till_done()  # the refresh the write asked for
        if number % EPISODE_EVERY == 0 or number == polls:
            # The module is unplugged for a while, then plugged back with the faults gone.
            faults(False)
            sim.silent = True
            for _ in range(OUTAGE_POLLS):
                outage_polls += 1
                if await poll():
                    wrong_values += 1  # a poll of a silent module cannot succeed
            sim.silent = False
            needed = 0
            while True:
                needed += 1
                if await poll() or needed >= 10:
                    break
            recoveries.append(needed)
            faults(True)
    faults(False)

    results["polls"] = polls
    exchanges = sim.stats.requests + sim.sleeps
    injected = sum(sim.stats.faults.values()) + sim.sleeps
    results["fault_rate"] = round(injected / exchanges, 4) if exchanges else 0.0
    results["faults"] = {**dict(sorted(sim.stats.faults.items())), SLEEP: sim.sleeps}
    results["exchanges"] = exchanges
    results["wrong_values_published"] = wrong_values + wrong_entities
    results["wrong_entity_states"] = wrong_entities
    results["wrong_details"] = wrong_details
    results["unavailable_polls"] = unavailable
    results["outage_polls"] = outage_polls
    results["recovery_polls_max"] = max(recoveries, default=0)
    results["recovery_episodes"] = len(recoveries)
    results["writes"] = write_attempts
    results["writes_verified"] = writes_ok
    results["writes_reported_failed"] = writes_reported
    results["writes_silently_failed"] = writes_silently_failed
    # Every write the module saw (taken or refused) was one the soak asked for, sent once.
    results["unrequested_writes"] = max(0, sim.stats.writes + sim.stats.refused_writes - write_attempts)
    results["client_stats"] = {f.name: getattr(client.stats, f.name) for f in fields(client.stats)}
    results["client_timeout_s"] = timeout

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    await until(lambda: server.connections == 0)
    await until(lambda: not (live_tasks() - tasks_before))
    leaked_tasks = live_tasks() - tasks_before
    fds_after = open_fds()
    leaked_fds = {fd: target for fd, target in fds_after.items() if fds_before.get(fd) != target}
    results["leaked_tasks"] = len(leaked_tasks)
    results["leaked_task_names"] = sorted(str(task.get_coro()) for task in leaked_tasks)
    results["leaked_fds"] = len(leaked_fds)
    results["leaked_fd_targets"] = sorted(leaked_fds.values())
    results["transport_open_after_unload"] = client.transport.is_open
    results["soak_seconds"] = round(time.monotonic() - started, 1)
    await server.close()

    _write_result(results)
