"""Home Assistant benchmark, in the real HA test harness (pytest-homeassistant-custom-component).

Run by ``scripts/bench``; never part of the test suite (``scripts/test`` collects ``tests/``).

* ``test_update_cost``: the event-loop time of one coordinator update (poll, decode, the pack
  checks and the pack insights' observation, entity state writes) for 4, 8, 16 and 24 cells. Measured as the CPU time of the event loop's thread
  (``time.thread_time``) from the start of ``coordinator.async_refresh()`` until it and all the
  work it scheduled are done (``hass.async_block_till_done()``). The simulated module runs in
  another process, so waiting for its bytes costs nothing and its own work is not counted;
  executor threads are not counted either (the integration uses none for a poll).
* ``test_ten_modules``: ten 24-cell modules polled every 5 s in one HA instance for
  ``DALY_BENCH_MINUTES`` minutes of real time (no time travel): whether every update landed
  within its interval, and the CPU time of the whole HA process per minute.

The harness turns on asyncio's debug mode for every test; both tests turn it off again, as Home
Assistant runs without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import cProfile
import itertools
import os
from pathlib import Path
import time
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry  # type: ignore[import-untyped]

from custom_components.daly_active_balance.const import (
    CONF_CONNECTION,
    CONF_UPDATE_INTERVAL,
    CONNECTION_SERIAL,
    DOMAIN,
)
from custom_components.daly_active_balance.coordinator import DalyCoordinator

from .common import (
    CELL_COUNTS,
    DEFAULT_MINUTES,
    MINUTES_ENV,
    MODULE_CELLS,
    MODULES,
    MODULES_START,
    PROFILE_ENV,
    UNPACED_INDEX,
    SimProcess,
    median,
    record,
)

pytestmark = pytest.mark.usefixtures("socket_enabled")

WARMUP: Final = 3
ROUNDS: Final = 30
INTERVAL_S: Final = 5
#: An update is in time when it lands at most this long after the previous one (or the start).
FRESH_LIMIT_S: Final = INTERVAL_S * 1.1
MINUTES: Final = float(os.environ.get(MINUTES_ENV) or DEFAULT_MINUTES)
LAG_PROBE_S: Final = 0.1


def _entry(url: str, title: str, options: dict[str, object] | None = None) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=title,
        unique_id=url,
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: url},
        options=options or {},
    )


def _enabled_entities(hass: HomeAssistant, entry: MockConfigEntry) -> int:
    registry = er.async_get(hass)
    return sum(1 for e in er.async_entries_for_config_entry(registry, entry.entry_id) if e.disabled_by is None)


async def _measure(
    hass: HomeAssistant, coordinator: DalyCoordinator, rounds: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Loop-thread CPU of whole refreshes, of their listeners and insights, and wall time (ms).

    The pack insights' observation runs inside the refresh: its share is counted apart too.
    """
    listener_cpu = insights_cpu = 0.0
    observations = 0
    original: Callable[[], None] = coordinator.async_update_listeners
    insights = coordinator.insights
    observe = insights.observe

    def timed_listeners() -> None:
        nonlocal listener_cpu
        start = time.thread_time()
        original()
        listener_cpu += time.thread_time() - start

    def timed_observe(*args: Any) -> None:
        nonlocal insights_cpu, observations
        start = time.thread_time()
        observe(*args)
        insights_cpu += time.thread_time() - start
        observations += 1

    coordinator.async_update_listeners = timed_listeners  # type: ignore[method-assign]
    insights.observe = timed_observe  # type: ignore[method-assign]
    totals: list[float] = []
    listeners: list[float] = []
    observed: list[float] = []
    walls: list[float] = []
    try:
        for _ in range(rounds):
            listener_cpu = insights_cpu = 0.0
            observations = 0
            wall = time.perf_counter()
            cpu = time.thread_time()
            await coordinator.async_refresh()
            await hass.async_block_till_done()
            totals.append((time.thread_time() - cpu) * 1000)
            walls.append((time.perf_counter() - wall) * 1000)
            listeners.append(listener_cpu * 1000)
            observed.append(insights_cpu * 1000)
            assert coordinator.last_update_success, coordinator.last_exception
            assert observations == 1, "each refresh feeds the pack insights one observation"
    finally:
        del coordinator.async_update_listeners
        del insights.observe
    return totals, listeners, observed, walls


def _dump(profiler: cProfile.Profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(path)


@pytest.mark.parametrize(
    ("index", "cells", "suffix"),
    [
        *((index, cells, "") for index, cells in enumerate(CELL_COUNTS)),
        (UNPACED_INDEX, MODULE_CELLS, "_unpaced"),
        (0, MODULE_CELLS, "_bytewise"),
    ],
    ids=[*(f"{cells}S" for cells in CELL_COUNTS), f"{MODULE_CELLS}S-unpaced", f"{MODULE_CELLS}S-bytewise"],
)
async def test_update_cost(
    hass: HomeAssistant, sims: SimProcess, bytewise_sim: SimProcess, *, index: int, cells: int, suffix: str
) -> None:
    """Event-loop CPU of one coordinator update with every default entity of all platforms.

    Paced modules hand over 8 bytes at a time, the ``bytewise`` one a byte at a time (a
    CP210x/CH340 adapter), the ``unpaced`` one each reply in one piece (a buffering bridge).
    """
    asyncio.get_running_loop().set_debug(False)
    server = (bytewise_sim if suffix == "_bytewise" else sims).servers[index]
    assert server["cells"] == cells
    entry = _entry(server["url"], f"bench {cells}S")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    coordinator: DalyCoordinator = entry.runtime_data
    assert len(coordinator.data.status.cell_voltages) == cells
    try:
        await _measure(hass, coordinator, WARMUP)
        totals, listeners, observed, walls = await _measure(hass, coordinator, ROUNDS)
        profile_dir = os.environ.get(PROFILE_ENV)
        if profile_dir and cells == MODULE_CELLS and not suffix:
            profiler = cProfile.Profile()
            profiler.enable()
            await _measure(hass, coordinator, ROUNDS)
            profiler.disable()
            _dump(profiler, Path(profile_dir) / "ha_update_24s.prof")
        key = f"{cells}s{suffix}"
        record(
            {
                f"ha_update_ms_{key}": median(totals),
                f"ha_update_listeners_ms_{key}": median(listeners),
                f"ha_update_insights_ms_{key}": median(observed),
                f"ha_update_wall_ms_{key}": median(walls),
                f"ha_entities_{key}": _enabled_entities(hass, entry),
            }
        )
    finally:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


async def _lag_probe(worst: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        worst[0] = max(worst[0], loop.time() - start - LAG_PROBE_S)


def _gaps(start: float, stamps: list[float], end: float) -> list[float]:
    points = [start, *stamps, end]
    return [b - a for a, b in itertools.pairwise(points)]


@pytest.mark.timeout(int(MINUTES * 60 + 240))
async def test_ten_modules(hass: HomeAssistant, sims: SimProcess) -> None:
    """Ten 24-cell modules at a 5 s interval for a few minutes of real time."""
    asyncio.get_running_loop().set_debug(False)
    servers = sims.servers[MODULES_START : MODULES_START + MODULES]
    assert len(servers) == MODULES
    entries = [
        _entry(server["url"], f"module {number}", {CONF_UPDATE_INTERVAL: INTERVAL_S})
        for number, server in enumerate(servers, 1)
    ]
    for entry in entries:
        entry.add_to_hass(hass)
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()
    assert all(entry.state is ConfigEntryState.LOADED for entry in entries)
    coordinators: list[DalyCoordinator] = [entry.runtime_data for entry in entries]
    stamps: list[list[float]] = [[] for _ in coordinators]
    failures = [0]
    unsubscribes = []
    for coordinator, own in zip(coordinators, stamps, strict=True):

        def listener(coordinator: DalyCoordinator = coordinator, own: list[float] = own) -> None:
            if coordinator.last_update_success:
                own.append(time.monotonic())
            else:
                failures[0] += 1

        unsubscribes.append(coordinator.async_add_listener(listener))
    worst_lag = [0.0]
    probe = asyncio.get_running_loop().create_task(_lag_probe(worst_lag))
    failed_before = [c.client.stats.timeouts + c.client.stats.link_errors for c in coordinators]
    start, cpu = time.monotonic(), time.process_time()
    try:
        await asyncio.sleep(MINUTES * 60)
    finally:
        end, cpu_used = time.monotonic(), time.process_time() - cpu
        probe.cancel()
        for unsubscribe in unsubscribes:
            unsubscribe()
    link_failures = sum(c.client.stats.timeouts + c.client.stats.link_errors for c in coordinators) - sum(failed_before)
    gaps = [gap for own in stamps for gap in _gaps(start, own, end)]
    all_fresh = failures[0] == 0 and link_failures == 0 and max(gaps) <= FRESH_LIMIT_S
    record(
        {
            "modules_10_all_fresh": all_fresh,
            "modules_10_cpu_s_per_min": cpu_used / ((end - start) / 60),
            "modules_10_minutes": (end - start) / 60,
            "modules_10_updates": sum(len(own) for own in stamps),
            "modules_10_failed_updates": failures[0] + link_failures,
            "modules_10_max_gap_s": max(gaps),
            "modules_10_max_loop_lag_ms": worst_lag[0] * 1000,
        }
    )
    for entry in entries:
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
