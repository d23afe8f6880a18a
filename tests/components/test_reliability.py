"""Write safety, secrets and bad input through Home Assistant, against the simulator on real links.

Each test's docstring names the bullet of the reliability issue it proves. The integration runs
as in production: a config entry on a ``socket://`` URL (or a pty), the real coordinator and
client, entity services called as the UI calls them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from aiodalybalancer.frames import Direction, ReadRequest, WriteSingle, parse
from aiodalybalancer.registers import BY_KEY, PASSWORD, SETTINGS
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorServer,
    serve_tcp,
)
from custom_components.daly_active_balance.const import CONF_CONNECTION, CONNECTION_SERIAL, DOMAIN
from custom_components.daly_active_balance.writes import BALANCE_START_DELTA, BALANCE_START_VOLTAGE, SLEEP_TIME

from .conftest import EntityIdFinder, select_option, set_number

pytestmark = pytest.mark.usefixtures("socket_enabled")

COMPONENT = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN
#: Short answer timeout for tests where the module stays silent (time is not frozen here).
SHORT = 0.1


def record_requests(sim: SimulatedBalancer) -> list[object]:
    """Every request frame the module receives from now on, in order (parsed from the bytes)."""
    seen: list[object] = []
    original = sim.receive

    def receive(data: bytes) -> list[Any]:
        if len(data) % 8 == 0:
            seen.extend(parse(data[i : i + 8], Direction.REQUEST) for i in range(0, len(data), 8))
        return original(data)

    sim.receive = receive  # type: ignore[method-assign]
    return seen


def persistent_words(sim: SimulatedBalancer) -> list[int]:
    """Every word from the settings block on: only a host's write changes them."""
    return list(sim.words[SETTINGS.start :])


# --- write safety -----------------------------------------------------------------------------


async def test_ignored_select_write_is_an_error_and_shows_the_real_value(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Write safety, "a write the module ignores is reported to the user as an error, and the
    entity shows the real value" (the battery type select; numbers and the switch have their own)."""
    simulator.ignore_writes.add("battery_type")
    select = entity_id("select", "battery_type")
    assert hass.states.get(select).state == "lifepo4"
    with pytest.raises(HomeAssistantError) as caught:
        await select_option(hass, select, "lto", settle=False)
    assert caught.value.translation_key == "write_not_accepted"
    await hass.async_block_till_done()
    assert simulator.value("battery_type") == "lifepo4"
    assert hass.states.get(select).state == "lifepo4"


async def test_out_of_range_number_reaches_nothing(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Write safety, "out-of-range values are refused before anything reaches the wire": through
    the entity service, not one byte of a write arrives at the module (its request log)."""
    requests = record_requests(simulator)
    number = entity_id("number", "balance_start_voltage")
    with pytest.raises(ServiceValidationError):
        await set_number(hass, number, 4.5, settle=False)
    # Bypassing the entity's own range: the coordinator's write still refuses a NaN.
    with pytest.raises(ServiceValidationError):
        await init_integration.runtime_data.async_write(BALANCE_START_VOLTAGE, float("nan"))
    assert not [r for r in requests if isinstance(r, WriteSingle)]
    assert simulator.stats.writes == simulator.stats.refused_writes == 0


async def test_write_whose_answers_were_lost_is_shown_after_the_next_poll(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Write safety, "the entity shows the real value": the module takes a write, then its echo
    and read-back are lost. The user gets an error, and the very next poll re-reads the settings
    so the entity shows what the module now holds (not the old value until the Nth poll)."""
    coordinator = init_integration.runtime_data
    coordinator.client.timeout = SHORT
    number = entity_id("number", "sleep_time")
    assert float(hass.states.get(number).state) == 3600
    original = simulator._write

    def take_then_vanish(request: WriteSingle) -> bytes | None:
        original(request)  # stored ...
        simulator.silent = True  # ... then the link dies before the echo
        return None

    simulator._write = take_then_vanish  # type: ignore[method-assign]
    with pytest.raises(HomeAssistantError) as caught:
        await set_number(hass, number, 1800, settle=False)
    assert caught.value.translation_key == "write_failed"
    assert simulator.value("sleep_time") == 1800
    simulator.silent = False
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert float(hass.states.get(number).state) == 1800


async def test_write_during_a_poll_waits_and_writes_never_interleave(
    entity_id: EntityIdFinder,
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """Write safety, "a write issued during a poll waits for it; two writes never interleave":
    a poll under way and two entity writes at once reach the module as poll, write + read-back,
    write + read-back (the module's own request log)."""
    coordinator = init_integration.runtime_data
    requests = record_requests(simulator)
    voltage = entity_id("number", "balance_start_voltage")
    delta = entity_id("number", "balance_start_delta")
    poll = hass.async_create_task(coordinator.async_refresh())
    for _ in range(1000):  # until the poll's first request has reached the module
        if requests:
            break
        await asyncio.sleep(0)
    assert requests
    await asyncio.gather(poll, set_number(hass, voltage, 3.45, settle=False), set_number(hass, delta, 30, settle=False))
    await hass.async_block_till_done()
    writes = [i for i, r in enumerate(requests) if isinstance(r, WriteSingle)]
    assert len(writes) == 2
    assert writes[0] >= 3  # after the poll's three reads
    for index in writes:
        write = requests[index]
        assert isinstance(write, WriteSingle)
        assert requests[index + 1] == ReadRequest(write.register, 1)
    assert {requests[i].register for i in writes} == {  # type: ignore[attr-defined]
        BY_KEY["balance_start_voltage"].address,
        BY_KEY["balance_start_delta"].address,
    }
    assert simulator.value("balance_start_voltage") == 3.45
    assert simulator.value("balance_start_delta") == 0.03


async def test_nothing_written_during_reconfigure(
    hass: HomeAssistant, simulator: SimulatedBalancer, sim_server: SimulatorServer, init_integration: MockConfigEntry
) -> None:
    """Write safety, "nothing is ever written during ... reconfigure" (setup, reload and options
    changes: ``test_init.test_nothing_written_during_setup_reload_or_options``)."""
    words = persistent_words(simulator)
    other = await serve_tcp(simulator)
    try:
        result = await init_integration.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_PORT: other.url})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert init_integration.state is ConfigEntryState.LOADED
        assert init_integration.data[CONF_PORT] == other.url
        assert simulator.stats.requests > 0
        assert simulator.stats.writes == simulator.stats.refused_writes == 0
        assert persistent_words(simulator) == words
        assert await hass.config_entries.async_unload(init_integration.entry_id)
    finally:
        await other.close()


# --- secrets ----------------------------------------------------------------------------------


async def test_password_never_in_debug_logs_or_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
    simulator: SimulatedBalancer,
    config_entry: MockConfigEntry,
) -> None:
    """Secrets, "the password register (0x00C9…0x00CB) never appears in logs (debug level) or
    diagnostics": setup, polls, a write, a failed write, diagnostics and unload, all logged at
    debug, show neither the password nor its raw words."""
    caplog.set_level(logging.DEBUG)
    words = [simulator.read_word(a) for a in range(PASSWORD.start, PASSWORD.end)]
    password = simulator.value("password")
    assert isinstance(password, str) and password
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = config_entry.runtime_data
    assert coordinator.identity.password == password  # it was read
    await coordinator.async_refresh()
    await coordinator.async_write(BALANCE_START_DELTA, 0.025)
    simulator.ignore_writes.add("sleep_time")
    with pytest.raises(HomeAssistantError):
        await coordinator.async_write(SLEEP_TIME, 600)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, config_entry)
    assert await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()

    logged = caplog.text
    assert "DEBUG" in logged  # debug records were captured
    dumped = json.dumps(diagnostics)
    raw_forms = [
        password,
        ", ".join(str(w) for w in words),
        "".join(f"{w:04x}" for w in words),
        "".join(f"{w:04X}" for w in words),
    ]
    for form in raw_forms:
        assert form not in logged, form
        assert form not in dumped, form
    for address in range(PASSWORD.start, PASSWORD.end):
        assert f"0x{address:04X}" not in dumped


# --- bad input in the config flow -------------------------------------------------------------


def _translations() -> tuple[dict[str, str], dict[str, str]]:
    strings = json.loads((COMPONENT / "strings.json").read_text())["config"]["error"]
    english = json.loads((COMPONENT / "translations" / "en.json").read_text())["config"]["error"]
    return strings, english


async def _refusing_port() -> int:
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


@pytest.mark.parametrize(
    ("port", "error"),
    [
        ("/dev/ttyDALY-nonexistent", "cannot_open"),
        ("socket:/127.0.0.1", "invalid_port"),
        ("socket://{refused}", "cannot_open"),
        ("{bms}", "not_balancer"),
    ],
    ids=["nonexistent-port", "malformed-url", "host-refuses", "not-a-daly-balancer"],
)
async def test_bad_serial_input_gets_a_translated_error_and_creates_nothing(
    hass: HomeAssistant, simulator: SimulatedBalancer, sim_server: SimulatorServer, port: str, error: str
) -> None:
    """Bad input, "config-flow input that is wrong gets a specific translated error and creates
    nothing": each case has its own error key, translated in strings.json and en.json, and no
    entry exists afterwards. (Bluetooth: ``test_config_flow.test_ble_step_typed_address`` and
    ``test_bluetooth_confirm_not_a_balancer``.)"""
    if "{bms}" in port:
        simulator.write_word(BY_KEY["balancer_enabled"].address, 0xFFFF)  # a DALY BMS answers
    port = port.format(refused=f"127.0.0.1:{await _refusing_port()}", bms=sim_server.url)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "serial"})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {CONF_PORT: port})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    strings, english = _translations()
    assert strings[error] and english[error]
    assert list(english.values()).count(english[error]) == 1  # its own text, not a catch-all
    assert hass.config_entries.async_entries(DOMAIN) == []
    hass.config_entries.flow.async_abort(result["flow_id"])
    assert sim_server.connections == 0 or error == "not_balancer"


async def test_entry_with_refusing_bridge_is_not_created_by_setup_either(hass: HomeAssistant) -> None:
    """Bad input, "a host that refuses": an entry that already points at a refusing bridge (made
    before the bridge went away) retries setup quietly; nothing is written or crashes."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="refusing",
        data={CONF_CONNECTION: CONNECTION_SERIAL, CONF_PORT: f"socket://127.0.0.1:{await _refusing_port()}"},
    )
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert "cannot open" in entry.reason
