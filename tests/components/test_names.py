"""What a user sees first: distinct names for every module, entity ids that never collide."""

from __future__ import annotations

from pathlib import Path
import re
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from aiodalybalancer.client import DalyClient
from aiodalybalancer.tools.simulator import (
    SimulatedBalancer,
    SimulatorConfig,
    SimulatorServer,
    serve_tcp,
)
from aiodalybalancer.transport import SerialTransport
from custom_components.daly_active_balance.config_flow import _dongle_label, _serial_label, _title
from custom_components.daly_active_balance.const import DOMAIN
from custom_components.daly_active_balance.ports import port_label

from .conftest import add_serial_entry

pytestmark = pytest.mark.usefixtures("socket_enabled")

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("address", "name", "label"),
    [
        ("40:17:10:01:5C:9B", "DL-401710015C9B", "DL-…5C9B"),  # DALY's own name: the address in hex
        ("40:17:10:01:5C:9B", "dl-401710015c9b", "dl-…5C9B"),
        ("40:17:10:01:5C:9B", "Garage battery", "Garage battery"),  # a renamed dongle keeps its name
        ("40:17:10:01:5C:9B", "40:17:10:01:5C:9B", "…5C9B"),  # some proxies report the address as name
        ("40:17:10:01:5C:9B", None, "…5C9B"),
    ],
)
def test_dongle_label(address: str, name: str | None, label: str) -> None:
    assert _dongle_label(address, name) == label


@pytest.mark.parametrize(
    ("port", "label"),
    [
        ("/dev/ttyUSB0", "ttyUSB0"),
        ("/dev/pts/3", "pts/3"),
        ("/dev/serial/by-id/usb-FTDI_FT232R_A10K1234-if00-port0", "usb-FTDI_FT232R_A10K1234-if00-port0"),
        ("COM3", "COM3"),
        ("socket://192.0.2.10:8899", "192.0.2.10:8899"),
        ("rfc2217://[2001:db8::1]:4000", "[2001:db8::1]:4000"),
        ("esphome://proxy.local?port_name=uart0&key=c2VjcmV0", "proxy.local uart0"),  # never the key
        ("socket://user:pw@192.0.2.10:8899", "192.0.2.10:8899"),
        ("esphome-hass://esphome/01JXYZ?port_name=uart1", "ESPHome uart1"),
    ],
)
def test_port_label(port: str, label: str) -> None:
    assert port_label(port) == label


async def test_esphome_proxy_is_named_after_its_device(hass: HomeAssistant) -> None:
    proxy = MockConfigEntry(domain="esphome", title="Garage proxy")
    proxy.add_to_hass(hass)
    assert _serial_label(hass, f"esphome-hass://esphome/{proxy.entry_id}?port_name=uart1") == "Garage proxy uart1"


async def test_two_modules_get_distinct_names_and_entity_ids(hass: HomeAssistant) -> None:
    """Two 16S modules on two bridges: two device names, and no entity id of the second ends in _2."""
    servers = [await serve_tcp(SimulatedBalancer(SimulatorConfig(cells=16, seed=seed))) for seed in (1, 2)]
    try:
        entries = []
        for server in servers:
            client = DalyClient(SerialTransport(server.url))
            probe = await client.probe()
            await client.close()
            entries.append(add_serial_entry(hass, server.url, _title(probe, port_label(server.url))))
        assert await async_setup_component(hass, DOMAIN, {})  # sets up every entry of the domain
        await hass.async_block_till_done()
        assert [entry.state for entry in entries] == [ConfigEntryState.LOADED] * 2
        devices = dr.async_get(hass)
        entities = er.async_get(hass)
        names = [dr.async_entries_for_config_entry(devices, e.entry_id)[0].name for e in entries]
        assert names == [f"DALY balancer 16S ({s.url.removeprefix('socket://')})" for s in servers]
        ids = [{r.entity_id for r in er.async_entries_for_config_entry(entities, entry.entry_id)} for entry in entries]
        assert len(ids[0]) == len(ids[1]) > 30
        assert not ids[0] & ids[1]
        assert not [entity_id for entity_id in ids[0] | ids[1] if entity_id.endswith("_2")]
        port = servers[1].url.rsplit(":", 1)[1]
        # The entity ids carry the device's name: what the README's automations refer to.
        assert f"sensor.daly_balancer_16s_127_0_0_1_{port}_cell_voltage_difference" in ids[1]
        # No raw-value hints in names: "Sleep time", with "Never sleep" beside it.
        assert f"number.daly_balancer_16s_127_0_0_1_{port}_sleep_time" in ids[1]
        assert f"switch.daly_balancer_16s_127_0_0_1_{port}_never_sleep" in ids[1]
        for entry in entries:
            assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        for server in servers:
            await server.close()


async def test_readme_entity_ids_are_what_home_assistant_makes(
    hass: HomeAssistant, sim_server: SimulatorServer, entity_registry: er.EntityRegistry
) -> None:
    """The README's automations and cards use the ids a module named like its example gets."""
    quoted = set(re.findall(r"\b(?:sensor|binary_sensor|switch|number|select)\.daly_balancer_\w+\b", README))
    quoted = {entity_id for entity_id in quoted if not entity_id.endswith("_")}  # "cell_1_voltage … _cell_16_"
    assert len(quoted) >= 6
    entry = add_serial_entry(hass, sim_server.url, "DALY balancer 16S (DL-…5C9B)")
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    made = {r.entity_id for r in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
    assert quoted <= made, quoted - made
    assert await hass.config_entries.async_unload(entry.entry_id)
