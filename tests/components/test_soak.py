"""The soak's machinery, briefly, on every link (issue: "Reliability on every link").

``scripts/soak`` runs the same code for hundreds of polls per link; here a few polls per link
prove that it works: three links (TCP, a 9600-baud pty, Bluetooth through Home Assistant), two
modules polled at once, faults of every kind, writes, an outage episode on each link, the
restart in the middle of a verified write, and the leak count. The checks that compare what Home
Assistant shows with what the module answered are shown to catch a wrong value too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import habluetooth
from homeassistant.components import bluetooth
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
import pytest

from reliability.soak_harness import soak
from reliability.soak_lanes import (
    DISCONNECT,
    LINKS,
    SLEEP,
    SoakSettings,
    ble_lane,
    entity_errors,
    module_entities,
    status_errors,
    tcp_lane,
)

from .ble_helpers import DALY_ADDRESS

pytestmark = pytest.mark.usefixtures("socket_enabled")

#: Few polls, many faults: every link meets faults, a write and an outage within seconds. With
#: this seed the first Bluetooth request of the soak drops the link (a disconnect mid-poll).
BRIEF = SoakSettings(polls=6, rate=0.3, seed=20261138, write_every=3, episode_every=3, outage_polls=1, progress_every=0)


@pytest.mark.usefixtures("enable_bluetooth")
async def test_soak_machinery_on_every_link(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A brief soak: every figure the full soak reports is there and holds."""
    await hass.async_block_till_done(wait_background_tasks=True)  # bluetooth settled
    result = await soak(hass, BRIEF, folder=tmp_path, monkeypatch=monkeypatch)

    assert list(result["links"]) == list(LINKS)
    assert result["concurrent_modules"] == 2
    for name, link in result["links"].items():
        # 6 polls, 2 outage episodes of 1 poll, each followed by 1 recovery poll.
        assert link["polls"] == 10, name
        assert link["outage_polls"] == 2, name
        assert link["recovery_episodes"] == 2, name
        assert link["recovery_polls_max"] == 1, name
        assert link["fault_rate"] >= 0.2, (name, link["faults"])
        assert link["wrong_values_published"] == 0, (name, link["wrong_details"])
        assert link["writes"] == 2, name
        assert link["writes_unverified"] == 0, name
        assert link["unrequested_writes"] == 0, name
        assert sum(link["faults"].values()) > 0, name
    assert result["links"]["ble"]["faults"][DISCONNECT] >= 1
    assert sum(link["faults"][SLEEP] for link in result["links"].values()) >= 1
    for name, restart in result["restart"].items():
        assert restart["write_on_the_wire_at_stop"], name
        assert not restart["call_claimed_success"], name  # stopped before the write was verified
        assert not restart["link_open_after_stop"], name
        assert restart["loaded_after_restart"], name
        assert restart["wrong_values_after_restart"] == 0, (name, restart)
        assert restart["claimed_never_taken"] == 0, name
    assert result["restart"]["tcp"]["module_took_it"]  # shown after the restart although never verified
    assert not result["restart"]["pty"]["module_took_it"]
    assert result["leaked_tasks"] == 0, result["leaked_task_names"]
    assert result["leaked_fds"] == 0, result["leaked_fd_targets"]


async def test_the_checks_catch_a_wrong_value(hass: HomeAssistant) -> None:
    """A stale answer, a wrong entity state and a value shown while unavailable are all counted."""
    lane = await tcp_lane(hass, dataclasses.replace(BRIEF, rate=0.0))
    try:
        lane.sim.served = []
        assert await lane.poll(hass)
        first = list(lane.sim.served)
        assert await lane.poll(hass)
        assert lane.wrong_values == lane.wrong_entities == 0
        data = lane.coordinator.data
        assert status_errors(data.status, lane.sim.served[len(first) :]) == 0
        lane.sim.advance(600)  # the cells drift: the first poll's answers are now stale
        assert await lane.poll(hass)
        assert status_errors(lane.coordinator.data.status, first) > 0

        entities = module_entities(hass, lane.entry)
        data = lane.coordinator.data
        assert entity_errors(hass, entities, data, available=True) == 0
        cell = entities["cell_voltage_1"]
        state = hass.states.get(cell)
        assert state is not None
        hass.states.async_set(cell, "1234.5", state.attributes)
        assert entity_errors(hass, entities, data, available=True) == 1
        assert entity_errors(hass, entities, data, available=False) == len(entities)
        hass.states.async_set(cell, STATE_UNAVAILABLE, state.attributes)
        assert entity_errors(hass, entities, data, available=False) == len(entities) - 1
    finally:
        await hass.config_entries.async_unload(lane.entry.entry_id)
        for server in lane.servers:
            await server.close()


@pytest.mark.usefixtures("enable_bluetooth")
async def test_the_ble_link_outlives_home_assistant_forgetting_the_dongle(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home Assistant's five-minute sweep forgets a device no scanner reports (as an injected
    advertisement is); the soak shows the dongle advertising before each poll, as a real
    adapter keeps seeing it, so a link dropped afterwards is made again."""
    await hass.async_block_till_done(wait_background_tasks=True)
    lane = await ble_lane(hass, dataclasses.replace(BRIEF, rate=0.0), monkeypatch=monkeypatch)
    try:
        lane.sim.served = []
        assert await lane.poll(hass)
        habluetooth.get_manager()._async_check_unavailable()  # the sweep, now
        assert bluetooth.async_ble_device_from_address(hass, DALY_ADDRESS, connectable=True) is None
        assert lane.sim.drop_link is not None
        lane.sim.drop_link()
        assert await lane.poll(hass)
        assert lane.wrong_values == lane.wrong_entities == 0
    finally:
        await hass.config_entries.async_unload(lane.entry.entry_id)


def test_a_soak_over_one_link_is_not_failed_for_polling_one_module_at_once() -> None:
    """`scripts/soak --links tcp` soaks one module: "modules at once" asks for as many as links."""
    from reliability.soak import _failures

    link = {
        "wrong_values_published": 0,
        "writes_unverified": 0,
        "unrequested_writes": 0,
        "fault_rate": 0.5,
        "recovery_polls_max": 1,
    }
    clean = {"restart": {}, "leaked_tasks": 0, "leaked_fds": 0, "harness_passed": True}
    fuzz = {"fuzz_unexpected_exceptions": 0, "bad_crc_accepted": 0}
    assert _failures({**clean, "links": {"tcp": link}, "concurrent_modules": 1}, fuzz) == []
    assert _failures({**clean, "links": {"tcp": link, "pty": link}, "concurrent_modules": 1}, fuzz) == [
        "only 1 module(s) polled at once"
    ]
