"""Diagnostics, downloaded through Home Assistant's diagnostics API, against the simulator."""

from __future__ import annotations

import json
import logging
from typing import Any

from bleak.exc import BleakError
from homeassistant.components.diagnostics import REDACTED
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_ADDRESS, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from aiodalybalancer.registers import BY_KEY, REGISTERS
from aiodalybalancer.tools.factory import FACTORY, encode_ascii
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
)
from aiodalybalancer.transport_ble import BleTransport
from custom_components.daly_active_balance.checks import RAISE_AFTER
from custom_components.daly_active_balance.const import CONF_UPDATE_INTERVAL, DOMAIN

from .ble_helpers import DALY_ADDRESS, DALY_NAME, inject_advertisement, service_info, use_standin_dongle
from .conftest import add_serial_entry

pytestmark = pytest.mark.usefixtures("socket_enabled")

SERIAL_NUMBER = "DALY2024SN0042"
#: Every address of every secret register (the password), taken from the table.
SECRET_ADDRESSES = {a for reg in REGISTERS if reg.secret for a in range(reg.address, reg.end)}


@pytest.fixture
def simulator(sim_config: SimulatorConfig) -> SimulatedBalancer:
    """A module with a serial number, whose cells are pinned and whose clock stands still.

    Pinned cells and no drift keep the snapshot independent of the simulator's noise model.
    """
    sim = SimulatedBalancer(sim_config, clock=lambda: 0.0)
    for cell in range(1, sim_config.cells + 1):
        sim.set_cell_voltage(cell, 3.300 + cell / 1000)
    serial = BY_KEY["serial_number"]
    for offset, word in enumerate(encode_ascii(SERIAL_NUMBER, serial.count)):
        sim.write_word(serial.address + offset, word)
    return sim


@pytest.fixture
def entry_title() -> str:
    """The module's name as the flow makes it."""
    return "DALY balancer 16S"


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """The update interval shows in the diagnostics."""
    return {CONF_UPDATE_INTERVAL: 5}


def raw_registers(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two raw dumps of a diagnostics result: last read by the polls, and read afresh."""
    dumps = result["raw_registers"]
    return {"last_read": dumps["last_read"], "fresh_read": dumps["fresh_read"].get("registers", {})}


def assert_no_secret(result: dict[str, Any]) -> None:
    """Neither the password nor the serial number, decoded or raw, is in the result."""
    text = json.dumps(result)
    password = FACTORY["password"]
    assert isinstance(password, str) and password == "123456"
    assert password not in text
    assert SERIAL_NUMBER not in text
    assert "password" not in text
    for name, dump in raw_registers(result).items():
        present = {int(address, 16) for address in dump}
        assert not present & SECRET_ADDRESSES, name
        serial = BY_KEY["serial_number"]
        for address in range(serial.address, serial.end):
            assert dump.get(f"0x{address:04X}", REDACTED) == REDACTED, (name, address)


@pytest.mark.freeze_time("2026-06-01 19:00:00+00:00")  # the insights' days are dated
async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    snapshot: SnapshotAssertion,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    init_integration: MockConfigEntry,
) -> None:
    """The whole download: entry, identity, status, settings, counters, both raw dumps and the
    insights' daily summaries."""
    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    assert result["entry"]["data"][CONF_PORT] == sim_server.url  # a port or URL is not secret
    # Home Assistant's extension (kept in ``snapshots/``); the plugin's fixture does not apply it here.
    assert result == snapshot.use_extension(HomeAssistantSnapshotExtension)(exclude=props(CONF_PORT))


async def test_diagnostics_hide_secrets(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The password is read from the module but appears nowhere; the serial number is redacted."""
    coordinator = init_integration.runtime_data
    # The secrets are really there to leak: read at setup, and in the client's raw words.
    assert coordinator.identity.password == "123456"
    assert coordinator.identity.serial_number == SERIAL_NUMBER
    assert coordinator.client.raw.keys() >= SECRET_ADDRESSES

    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    assert_no_secret(result)
    assert result["identity"]["serial_number"] == REDACTED
    assert result["identity"]["software_version"] == simulator.value("software_version")
    # Apart from the secret registers, the raw dumps hold what the module holds.
    dumps = raw_registers(result)
    assert result["raw_registers"]["fresh_read"]["answered"] is True
    for dump in dumps.values():
        for key in ("string_count", "balancer_enabled", "sleep_time"):
            address = BY_KEY[key].address
            assert dump[f"0x{address:04X}"] == simulator.read_word(address)
    cells = BY_KEY["cell_voltages"]
    fresh = dumps["fresh_read"]
    assert [fresh[f"0x{a:04X}"] for a in range(cells.address, cells.end)] == simulator.words[cells.address : cells.end]


async def test_diagnostics_when_module_silent(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """A module that does not answer is reported in the download instead of failing it."""
    client = init_integration.runtime_data.client
    # Time is not frozen here: a short answer timeout keeps the test fast.
    client.timeout = 0.05
    simulator.silent = True

    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    fresh = result["raw_registers"]["fresh_read"]
    assert fresh["answered"] is False
    assert fresh["error"].startswith("DalyTimeoutError: no answer from socket://")
    assert "registers" not in fresh
    assert result["raw_registers"]["last_read"]  # what the polls read is still there
    assert result["status"]["cell_count"] == 16
    assert_no_secret(result)


async def test_diagnostics_list_active_issues(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    simulator: SimulatedBalancer,
    init_integration: MockConfigEntry,
) -> None:
    """The repair issues raised for the entry are part of the download."""
    simulator.set_cell_voltage(3, 0.0)
    for _ in range(RAISE_AFTER):
        await init_integration.runtime_data.async_refresh()

    result = await get_diagnostics_for_config_entry(hass, hass_client, init_integration)

    assert result["issues"] == {
        "cell_out_of_range": {
            "title": "DALY balancer 16S",
            "cells": "3",
            "chemistry": "LiFePO4",  # as the battery type select shows it
            "minimum": "2.00",
            "maximum": "3.80",
        }
    }
    assert result["status"]["cell_voltages"][2] == 0.0


# --- Bluetooth ------------------------------------------------------------------------------


#: Every way the captured dongle's address is written: with colons or dashes, as plain hex in
#: either case (the dongle's advertised name is ``DL-`` + the plain hex).
ADDRESS_SPELLINGS = (
    DALY_ADDRESS,
    DALY_ADDRESS.lower(),
    DALY_ADDRESS.replace(":", "-"),
    DALY_ADDRESS.replace(":", ""),
    DALY_ADDRESS.replace(":", "").lower(),
    DALY_ADDRESS.replace(":", "_"),
    DALY_ADDRESS.replace(":", "_").lower(),
)


def assert_no_address(result: dict[str, Any]) -> None:
    """The Bluetooth address appears in no spelling anywhere in the download."""
    text = json.dumps(result)
    for spelling in ADDRESS_SPELLINGS:
        assert spelling not in text, spelling


@pytest.mark.usefixtures("enable_bluetooth")
async def test_diagnostics_ble_out_of_range_redacts_the_dongle_name(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
) -> None:
    """The dongle out of range (when diagnostics are downloaded): the connect errors name the
    dongle, whose name is its address in hex; no spelling of the address is left, the rest of
    the error stays readable, and the signal strength Home Assistant last heard is there."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info(rssi=-87))
    assert await hass.config_entries.async_setup(ble_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = ble_entry.runtime_data
    # Renamed after the dongle, with a cable fault: the repair's placeholders hold no address either.
    hass.config_entries.async_update_entry(ble_entry, title=f"Pack {DALY_NAME}")
    simulator.set_cell_voltage(4, 0.0)
    for _ in range(RAISE_AFTER):
        await coordinator.async_refresh()
    found = ir.async_get(hass).async_get_issue(DOMAIN, f"cell_out_of_range_{ble_entry.entry_id}")
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["title"] == f"Pack DL-{REDACTED}"
    dongle.fail_connect = True
    dongle.drop_links()
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert DALY_NAME in str(coordinator.last_exception.__cause__)  # the leak this test is about

    result = await get_diagnostics_for_config_entry(hass, hass_client, ble_entry)

    assert_no_address(result)
    assert_no_secret(result)
    fresh = result["raw_registers"]["fresh_read"]
    assert fresh["answered"] is False
    assert f"DL-{REDACTED}" in fresh["error"]
    assert f"DL-{REDACTED}" in result["coordinator"]["last_error"]
    assert result["link"]["rssi"] == -87
    dongle.fail_connect = False
    assert await hass.config_entries.async_unload(ble_entry.entry_id)


@pytest.mark.usefixtures("enable_bluetooth")
async def test_ble_address_in_bluez_spelling_stays_out_of_states_diagnostics_and_logs(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
) -> None:
    """On Linux bleak's errors name the device by its BlueZ path (``dev_40_17_10_01_5C_9B``):
    neither the "Last error" sensor, the diagnostics, the entry's reason nor a log line above
    debug level shows the address in any spelling."""
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    assert await hass.config_entries.async_setup(ble_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = ble_entry.runtime_data
    last_error = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{ble_entry.unique_id}_last_error")
    assert last_error is not None

    path = "/org/bluez/hci0/dev_" + DALY_ADDRESS.replace(":", "_")

    async def connect(self: object, **kwargs: object) -> None:
        raise BleakError(f"[org.bluez.Error.Failed] le-connection-abort-by-local on {path}")

    monkeypatch.setattr(dongle, "connect", connect)
    caplog.clear()
    dongle.drop_links()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert not coordinator.last_update_success
    assert path in str(coordinator.last_exception.__cause__)  # the leak this test is about

    state = hass.states.get(last_error)
    assert state is not None
    assert "org.bluez.Error.Failed" in state.state
    result = await get_diagnostics_for_config_entry(hass, hass_client, ble_entry)
    shown = [state.state, json.dumps(result), coordinator.name]
    shown += [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    for text in shown:
        for spelling in ADDRESS_SPELLINGS:
            assert spelling not in text, text
    monkeypatch.undo()
    assert await hass.config_entries.async_unload(ble_entry.entry_id)


@pytest.mark.usefixtures("enable_bluetooth")
@pytest.mark.parametrize("silent", [False, True], ids=["answering", "silent"])
async def test_diagnostics_ble_address_redacted(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    monkeypatch: pytest.MonkeyPatch,
    simulator: SimulatedBalancer,
    ble_entry: MockConfigEntry,
    silent: bool,
) -> None:
    """A Bluetooth entry's address is redacted everywhere, also inside an error text.

    The dongle is advertised to Home Assistant's bluetooth integration and reached through the
    real BLE transport; only the bleak client at its end is the simulator-backed stand-in.
    """
    dongle = use_standin_dongle(monkeypatch, simulator)
    await inject_advertisement(hass, service_info())
    assert await hass.config_entries.async_setup(ble_entry.entry_id)
    await hass.async_block_till_done()
    assert ble_entry.state is ConfigEntryState.LOADED
    client = ble_entry.runtime_data.client
    assert isinstance(client.transport, BleTransport)
    assert client.transport.description == DALY_ADDRESS
    assert dongle.connects == 1
    if silent:
        client.timeout = 0.05  # time is not frozen here: keep the test fast
        simulator.silent = True

    result = await get_diagnostics_for_config_entry(hass, hass_client, ble_entry)

    assert_no_address(result)
    assert result["entry"]["data"][CONF_ADDRESS] == REDACTED
    assert result["entry"]["unique_id"] == REDACTED
    assert result["link"] == {
        "ble": True,
        "open": True,
        "protocol": "d2",
        "connects": 1,
        "keep_connected": True,
        "rssi": -60,
    }
    fresh = result["raw_registers"]["fresh_read"]
    assert fresh["answered"] is not silent
    if silent:
        assert fresh["error"].startswith(f"DalyTimeoutError: no answer from {REDACTED} within")
    assert_no_secret(result)
    assert await hass.config_entries.async_unload(ble_entry.entry_id)


# --- credentials in a bridge URL --------------------------------------------------------------

#: Credentials a bridge URL may carry (an ESPHome proxy's noise key and API password).
KEY = "c2VjcmV0LW5vaXNlLWtleS0xMjM0NTY3ODkwYWI="
PASSWORD = "hunter2-DALY"


@pytest.fixture
def secret_url_entry(hass: HomeAssistant, sim_server: SimulatorServer) -> MockConfigEntry:
    """An entry whose URL carries credentials in its query (the bridge here ignores them)."""
    url = f"{sim_server.url}?port_name=uart1&key={KEY}&password={PASSWORD}"
    return add_serial_entry(
        hass, url, "DALY balancer 16S", unique_id=sim_server.url, options={CONF_UPDATE_INTERVAL: 3600}
    )


@pytest.mark.parametrize("silent", [False, True], ids=["answering", "silent"])
async def test_diagnostics_redact_url_credentials(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
    simulator: SimulatedBalancer,
    sim_server: SimulatorServer,
    secret_url_entry: MockConfigEntry,
    silent: bool,
) -> None:
    """A URL's key and password appear nowhere in the download (entry data, error texts) nor in
    any log line; the rest of the URL stays readable, and the entry still holds them to connect."""
    caplog.set_level(logging.DEBUG)
    assert await hass.config_entries.async_setup(secret_url_entry.entry_id)
    await hass.async_block_till_done()
    coordinator = secret_url_entry.runtime_data
    if silent:
        coordinator.client.timeout = 0.05  # time is not frozen here: keep the test fast
        simulator.silent = True
        await coordinator.async_refresh()
        assert not coordinator.last_update_success

    result = await get_diagnostics_for_config_entry(hass, hass_client, secret_url_entry)

    text = json.dumps(result)
    for secret in (KEY, PASSWORD):
        assert secret not in text
        assert secret not in caplog.text
    assert result["entry"]["data"][CONF_PORT] == f"{sim_server.url}?port_name=uart1&key={REDACTED}&password={REDACTED}"
    if silent:
        assert f"{sim_server.url}?port_name=uart1&key={REDACTED}" in result["coordinator"]["last_error"]
        assert result["raw_registers"]["fresh_read"]["answered"] is False
    assert KEY in secret_url_entry.data[CONF_PORT]
    assert await hass.config_entries.async_unload(secret_url_entry.entry_id)
